/**
 * rollback: previous becomes current and current becomes previous. The
 * release going live is verified first, as fully as install --verify-only does
 * (lib/release/verify-installed.ts: its kept signature over its manifest under
 * the trust policy, then every entry against the manifest, whichever format
 * it is): a rollback must not put a tampered tree live, and an attacker who
 * can write under the install root can rewrite SHA256SUMS but not re-sign.
 * Without policy flags the policy is the one previous's install.json records
 * (as check-health does), except that an UNSIGNED previous needs
 * --allow-unsigned, as install does.
 * With no usable previous it refuses and changes nothing. The swap itself is
 * one atomic exchange where Linux allows it (lib/fs/exchange.ts).
 */
import { ContainaiError, describeCause } from '../errors.ts';
import { pointLink, readReleaseLink, removeLink, swapCurrentAndPrevious } from './activate.ts';
import { removeLeftovers } from './cleanup.ts';
import { appendEvent } from './events.ts';
import { verifyInstalledRelease } from './verify-installed.ts';
import { CURRENT_LINK, installLayout, PREVIOUS_LINK, versionOfDir } from './layout.ts';
import { acquireLock } from './lock.ts';
import { readInstallRecord } from './record.ts';
import { policyForInstalled } from './record-policy.ts';
import type { TrustPolicy as ReleasePolicy } from '../trust/policy.ts';

export interface RollbackResult {
  current: string;
  previous?: string;
}

export interface RollbackOptions {
  lockWaitMs: number;
  /** The policy from the flags; without one, the signer previous's install.json records. */
  policy?: ReleasePolicy;
  /** Where pinned keys and roots live, for the recorded signer's policy. */
  trustDir?: string;
  /** --allow-unsigned: with no policy flags, whether an UNSIGNED previous may go live. */
  allowUnsigned?: boolean;
}

/** The policy previous must verify under: the flags', or its recorded signer's. */
async function previousPolicy(dir: string, options: Omit<RollbackOptions, 'lockWaitMs'>): Promise<ReleasePolicy | string> {
  if (options.policy) return options.policy;
  const read = await readInstallRecord(dir);
  if (typeof read === 'string') return read;
  try {
    return policyForInstalled(read.record, undefined, { trustDir: options.trustDir, allowUnsigned: options.allowUnsigned === true });
  } catch (err) {
    return err instanceof ContainaiError ? err.message : describeCause(err);
  }
}

export async function rollbackRelease(installRoot: string, options: RollbackOptions): Promise<RollbackResult> {
  const layout = installLayout(installRoot);
  const lock = await acquireLock(layout, 'containai-host rollback', options.lockWaitMs);
  try {
    return await rollbackLocked(installRoot, options);
  } finally {
    lock.release();
  }
}

/**
 * The rollback itself, for a caller that already holds the install lock (the gate's decision).
 * Verifies previous, then swaps; refuses and changes nothing when previous does not verify.
 */
export async function rollbackLocked(installRoot: string, options: Omit<RollbackOptions, 'lockWaitMs'>, reason = 'rollback'): Promise<RollbackResult> {
  const layout = installLayout(installRoot);
  {
    await removeLeftovers(layout);
    const current = await readReleaseLink(layout, CURRENT_LINK);
    const previous = await readReleaseLink(layout, PREVIOUS_LINK);
    if (previous.kind !== 'release') {
      const reason = previous.kind === 'absent' ? 'there is no previous release' : previous.reason;
      await appendEvent(layout, { action: 'rollback', outcome: 'refused', reason });
      throw new ContainaiError('STATE', `cannot roll back: ${reason}`, { hint: 'install the release you want with install --version (nothing was changed)' });
    }
    const policy = await previousPolicy(previous.dir, options);
    const check = typeof policy === 'string'
      ? { ok: false, problems: [policy] }
      : await verifyInstalledRelease(installRoot, { link: PREVIOUS_LINK, policy });
    if (!check.ok) {
      const reason = `the previous release does not verify: ${check.problems.slice(0, 3).join('; ')}`;
      await appendEvent(layout, { action: 'rollback', version: versionOfDir(previous.dirName), outcome: 'refused', reason });
      throw new ContainaiError('VERIFY', `cannot roll back: ${reason}`, {
        hint: 'install a good release with install --version, or pass the policy flags install took (--allow-unsigned for an unsigned one; nothing was changed)',
      });
    }
    let swap: 'exchange' | 'renames';
    if (current.kind === 'release') {
      swap = await swapCurrentAndPrevious(layout, current.dirName, previous.dirName).catch((err: unknown) => {
        throw new ContainaiError('STATE', `cannot swap current and previous: ${describeCause(err)}`, {
          hint: 'check the install root with status; run rollback again',
          cause: err,
        });
      });
    } else {
      // No release is current: nothing to keep as previous.
      await pointLink(layout, CURRENT_LINK, previous.dirName);
      await removeLink(layout, PREVIOUS_LINK);
      swap = 'renames';
    }
    await appendEvent(layout, {
      action: 'rollback',
      version: versionOfDir(previous.dirName),
      outcome: 'ok',
      from: current.kind === 'release' ? versionOfDir(current.dirName) : undefined,
      swap,
      ...(reason === 'rollback' ? {} : { reason }),
    });
    return { current: previous.dirName, previous: current.kind === 'release' ? current.dirName : undefined };
  }
}
