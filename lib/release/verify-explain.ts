/**
 * What to do about a release that does not verify, said by its real cause:
 * a tree that differs from its manifest is tampering (name the entries); a
 * signature that does not verify under the policy given is a policy question,
 * not tampering; a verification that could not run (a key file, permissions)
 * keeps its own hint. check-health's fix line and install --verify-only's hint
 * are this one function.
 */
import type { RefusalReason } from '../manifest/refusal.ts';
import type { ReleaseVerification } from './verify-installed.ts';

/** Findings that mean the release on disk differs from what was signed: only these are called tampering. */
const CHANGED: ReadonlySet<RefusalReason> = new Set(['digest', 'mode', 'link', 'type', 'unlisted', 'missing']);

/**
 * The fix line names the real cause: a tree that differs from its manifest (name the entries), a
 * signature that does not verify under the policy given (a policy that does not match the signer
 * is not tampering), or a verification that could not run (a key file, permissions).
 */
export function fixForVerification(verification: ReleaseVerification, version: string, signer: string | undefined, flagsGiven: boolean): string {
  if (verification.error) return verification.error.hint ?? 'fix the cause above and run again';
  const reasons = new Set(verification.refusals.map((r) => r.reason));
  const changed = verification.refusals.filter((r) => CHANGED.has(r.reason)).map((r) => r.entry ?? '.');
  if (changed.length > 0) {
    return `the release was changed after install (${changed.slice(0, 3).join(', ')}${changed.length > 3 ? ', …' : ''}): install ${version} again with --force, or roll back with containai-host rollback`;
  }
  if (reasons.has('signature')) {
    return flagsGiven
      ? `its kept signature does not verify under the policy flags given (it was installed as signed by ${signer ?? 'an unknown signer'}): pass the policy install used, or check the pinned keys and roots`
      : `its kept signature does not verify under the signer install.json records (${signer ?? 'unknown'}): check the trust dir still pins that key or root`;
  }
  return `the release's manifest is damaged: install ${version} again with --force, or roll back with containai-host rollback`;
}

