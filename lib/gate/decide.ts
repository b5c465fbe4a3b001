/**
 * Carrying out a decision, so that a kill at any instant leaves a state the
 * next run completes, and the trial is decided once:
 *
 *   1. the decision is written to gate.json (atomically): from here on the
 *      trial is decided, and every later run only completes it;
 *   2. on a failure, the release that was current before the trial is
 *      verified (the one verifier, lib/release/verify-installed.ts) and made
 *      current again: one rename of current, then previous removed (it would
 *      name the failed release, and a rollback must never put that live again);
 *   3. the failed version goes into bad.json, only once it is no longer current;
 *   4. the event, once (lib/gate/log.ts);
 *   5. gate.json marks the decision complete.
 *
 * Each step looks at the disk, not at a note of its own: current still naming
 * the failed release means the switch has not happened. A failed trial with
 * nothing to roll back to (no previous, or one that does not verify or is bad
 * itself) leaves the failed release current, since it is the only verified one,
 * and off the bad list; check-health fails the gate check until a person acts.
 * Call with the install lock held.
 */
import { lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { ContainaiError, describeCause } from '../errors.ts';
import { pointLink, readReleaseLink, removeLink } from '../release/activate.ts';
import { CURRENT_LINK, type InstallLayout, PREVIOUS_LINK, versionOfDir } from '../release/layout.ts';
import type { TrustPolicy } from '../trust/policy.ts';
import { addBadVersion } from './bad.ts';
import { logDecisionOnce } from './log.ts';
import { type Decision, type GateState, readBadList, writeGateState } from './state.ts';

/** verifyInstalledRelease's shape (lib/release/verify-installed.ts): the seam tests may fill. */
export type VerifyRelease = (installRoot: string, options: { dirName: string; policy: TrustPolicy }) => Promise<{ ok: boolean; problems: string[] }>;

export interface DecideDeps {
  /** Who decides, recorded with the decision: "check-health", "install --wait", "gate fail". */
  by: string;
  /** The policy previous must verify under; default: the signer its install.json recorded. */
  policy?: TrustPolicy;
  /** Where pinned keys and roots live, for that recorded signer's policy. */
  trustDir?: string;
  verifyRelease?: VerifyRelease;
}

const verifyInstalled: VerifyRelease = async (installRoot, options) => {
  // Loaded on use: verification pulls in tar and sigstore, which gate status never needs.
  const { verifyInstalledRelease } = await import('../release/verify-installed.ts');
  return verifyInstalledRelease(installRoot, options);
};

/** The policy the release in dir must verify under, or why there is none (as rollback decides it). */
async function policyFor(dir: string, deps: DecideDeps): Promise<TrustPolicy | string> {
  if (deps.policy) return deps.policy;
  const [{ readInstallRecord }, { DEFAULT_RECORD_POLICY, policyFromRecord }] = await Promise.all([import('../release/record.ts'), import('../release/record-policy.ts')]);
  const read = await readInstallRecord(dir);
  if (typeof read === 'string') return read;
  try {
    return policyFromRecord(read.record, { ...DEFAULT_RECORD_POLICY, trustDir: deps.trustDir });
  } catch (err) {
    return err instanceof ContainaiError ? err.message : describeCause(err);
  }
}

/**
 * Where a failed trial goes back to: the release that was current when the trial started
 * (gate.json's previous), while its folder is there. The previous link alone is not enough:
 * install moves current before previous, so a kill between the two renames leaves previous on an
 * older release, or on none. The link is the fallback (a folder since removed by hand).
 */
async function rollbackTarget(layout: InstallLayout, state: GateState): Promise<{ dirName: string } | { problem: string }> {
  if (state.previous) {
    const info = await lstat(join(layout.releases, state.previous.dir)).catch(() => undefined);
    if (info?.isDirectory()) return { dirName: state.previous.dir };
  }
  const previous = await readReleaseLink(layout, PREVIOUS_LINK);
  if (previous.kind === 'absent') return { problem: 'there is no previous release to roll back to' };
  if (previous.kind === 'invalid') return { problem: previous.reason };
  return { dirName: previous.dirName };
}

/** Makes the release before the trial current again, verified first: the folder now current, or why not (nothing changed then). */
async function rollBack(layout: InstallLayout, state: GateState, deps: DecideDeps): Promise<{ to: string } | { problem: string }> {
  const target = await rollbackTarget(layout, state);
  if ('problem' in target) return target;
  const { dirName } = target;
  const version = versionOfDir(dirName);
  if (dirName === state.dir || version === state.version) return { problem: `previous is ${state.version} itself` };
  const bad = (await readBadList(layout)).find((e) => e.version === version);
  if (bad) return { problem: `previous ${version} is itself on the bad list (failed its gate at ${bad.at})` };
  const policy = await policyFor(join(layout.releases, dirName), deps);
  if (typeof policy === 'string') return { problem: `previous ${version}: ${policy}` };
  const check = await (deps.verifyRelease ?? verifyInstalled)(layout.root, { dirName, policy });
  if (!check.ok) return { problem: `previous ${version} does not verify: ${check.problems.slice(0, 3).join('; ')}` };
  await pointLink(layout, CURRENT_LINK, dirName);
  await removeLink(layout, PREVIOUS_LINK);
  return { to: dirName };
}

/** Step 1: the decision, on disk before anything it causes. */
export async function recordDecision(layout: InstallLayout, state: GateState, decision: Omit<Decision, 'complete'>): Promise<GateState> {
  if (state.decision) throw new ContainaiError('INTERNAL', `the trial of ${state.version} is already decided (${state.decision.outcome})`);
  const next: GateState = { ...state, decision: { ...decision, complete: false } };
  await writeGateState(layout, next);
  return next;
}

/** Steps 2 to 5, each done only if the disk shows it is not done yet. */
export async function completeDecision(layout: InstallLayout, state: GateState, deps: DecideDeps): Promise<GateState> {
  const decision = state.decision;
  if (!decision || decision.complete) return state;
  let { rolledBackTo, rollbackProblem } = decision;
  if (decision.outcome === 'fail') {
    let current = await readReleaseLink(layout, CURRENT_LINK);
    if (current.kind === 'release' && current.dirName === state.dir) {
      const result = await rollBack(layout, state, deps);
      if ('to' in result) rolledBackTo = result.to;
      else rollbackProblem = result.problem;
      current = await readReleaseLink(layout, CURRENT_LINK);
    } else if (current.kind === 'release') {
      // Switched before a crash (or moved by someone since): the failed release is not current.
      rolledBackTo = current.dirName;
    }
    if (current.kind !== 'release' || current.dirName !== state.dir) {
      // Never leave a link that a rollback could follow back to the failed release.
      const previous = await readReleaseLink(layout, PREVIOUS_LINK);
      if (previous.kind === 'release' && (previous.dirName === state.dir || (current.kind === 'release' && previous.dirName === current.dirName))) {
        await removeLink(layout, PREVIOUS_LINK);
      }
      await addBadVersion(layout, { version: state.version, at: decision.at, reason: decision.reason, trialId: state.trialId });
    }
  }
  const done: GateState = { ...state, decision: { ...decision, rolledBackTo, rollbackProblem } };
  await logDecisionOnce(layout, done);
  const complete: GateState = { ...done, decision: { ...done.decision!, complete: true } };
  await writeGateState(layout, complete);
  return complete;
}
