/**
 * The installed release, verified again by lib/release/installed.ts (links
 * inside releases/, SHA256SUMS all match and nothing unlisted, the kept bundle
 * still the one recorded and still verifying under the trust policy). On top,
 * the health rule: a prod host must not run an UNSIGNED release.
 *
 * Which policy: the policy flags when given; otherwise the signer install.json
 * recorded (its workflow SAN with ref, or its repository; a key signature
 * checks against the pinned keys of the trust dir). That record is the host's
 * own, written after verifying under the operator's policy at install time,
 * never taken from the bundle, so a timer with no flags still proves that the
 * kept bundle is the one the same signer signed. But install.json lies under
 * the install root, which is all an attacker may be able to write: the timer
 * that `systemd install` writes therefore passes the policy flags, and a
 * record that says UNSIGNED is believed only on a host whose trust dir pins
 * nothing (an operator who pinned a key or a root expects signed releases).
 */
import { ContainaiError } from '../errors.ts';
import { assertLayoutFolders } from '../release/guard.ts';
import { installLayout } from '../release/layout.ts';
import { DEFAULT_RECORD_POLICY, policyFromRecord } from '../release/record-policy.ts';
import type { TrustPolicy } from '../trust/policy.ts';
import { fixForVerification } from '../release/verify-explain.ts';
import type { HealthCheck, HealthContext } from './types.ts';

/** How old the last full verification may be before check-health hashes everything again. */
export const FULL_VERIFY_EVERY_MS = 24 * 60 * 60 * 1000;

async function isProd(ctx: HealthContext): Promise<boolean> {
  return ctx.profile().then((p) => p.PROFILE === 'prod', () => false);
}

export const releaseCheck: HealthCheck = {
  id: 'release',
  title: 'installed release',
  timeoutMs: 30_000,
  async run(ctx) {
    // Loaded on use: verification pulls in tar and sigstore, which a report that fails early never needs.
    const [{ inspectInstalledRelease }, { verifyInstalledRelease }, { describeSigner }] = await Promise.all([
      import('../release/installed.ts'),
      import('../release/verify-installed.ts'),
      import('../release/record.ts'),
    ]);
    // A releases/ or state/ that is a symlink would have the release read, and the stamp written, outside the root; thrown, it fails the check.
    await assertLayoutFolders(installLayout(ctx.installRoot));
    const state = await inspectInstalledRelease(ctx.installRoot);
    const current = state.current;
    if (!current) {
      return {
        status: 'fail',
        message: state.problems[0] ?? `no release installed under ${ctx.installRoot} (no current link)`,
        fix: 'install one: containai-host install --version vX.Y.Z',
      };
    }
    const record = current.record;
    const defaults = { ...DEFAULT_RECORD_POLICY, trustDir: ctx.trustDir };
    let policy: TrustPolicy;
    try {
      policy = ctx.policy ?? (record ? policyFromRecord(record, defaults) : defaults);
    } catch (err) {
      if (!(err instanceof ContainaiError)) throw err;
      return { status: 'fail', message: `${current.version}: ${err.message}`, fix: err.hint ?? 'pass the policy flags', details: { version: current.version, dir: current.dirName } };
    }
    // The stamp spares unchanged files a re-hash between full verifications (at least daily, or --full).
    const verification = await verifyInstalledRelease(ctx.installRoot, { policy, stamp: { maxAgeMs: ctx.fullVerify ? 0 : FULL_VERIFY_EVERY_MS } });
    const problems = [...new Set([...state.problems, ...verification.problems])];
    const details = {
      version: current.version,
      dir: current.dirName,
      previous: state.previous?.dirName,
      filesChecked: verification.filesChecked,
      filesHashed: verification.filesHashed,
      signer: record ? describeSigner(record.signer) : undefined,
    };
    if (problems.length > 0) {
      return {
        status: 'fail',
        message: `${current.version}: ${problems.slice(0, 3).join('; ')}${problems.length > 3 ? ` (+${problems.length - 3} more)` : ''}`,
        fix: fixForVerification(verification, current.version, details.signer, ctx.policy !== undefined),
        details: { ...details, problems, reasons: [...new Set(verification.refusals.map((r) => r.reason))] },
      };
    }
    if (record?.signer === 'UNSIGNED') {
      if (await isProd(ctx)) {
        return { status: 'fail', message: `${current.version} was installed UNSIGNED on a prod host`, fix: 'install a signed release (from the release workflow) in its place', details };
      }
      return { status: 'warn', message: `${current.version} is UNSIGNED (dev profile); ${verification.filesChecked} files match SHA256SUMS`, fix: 'fine for development; prod hosts must install signed releases', details };
    }
    return { status: 'pass', message: `${current.version} signed by ${details.signer}; ${verification.filesChecked} files, every mode and link, match the signed manifest`, details };
  },
};
