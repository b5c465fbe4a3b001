/**
 * The trial of a newly activated release (SPEC "The health gate"), the API
 * install, check-health and the gate command call:
 *
 * - startTrial: install calls it with the install lock held, after the
 *   release is placed in releases/ and BEFORE the switch, so a crash between
 *   the two leaves a trial whose release never became current: the next
 *   advance sees that and ends it as superseded. It first completes a decision
 *   a crash interrupted, and refuses bad probe files before anything is written.
 * - settleTrial: the same first step, for an install with --no-gate.
 * - advanceTrial: one round of probes (without the lock: probes take seconds),
 *   then, with the lock, the results folded in and a decision made when one is
 *   due. check-health calls it once per run; install --wait calls it until the
 *   trial is decided (waitForDecision).
 * - endTrialByHand: gate pass | gate fail.
 *
 * A new install during a trial supersedes it: the old trial ends undecided
 * (neither passed nor bad, one event), its release becomes previous as with
 * any install, and the new release's trial begins.
 */
import { randomBytes } from 'node:crypto';
import { join, resolve } from 'node:path';
import { ContainaiError } from '../errors.ts';
import { readReleaseLink } from '../release/activate.ts';
import { CURRENT_LINK, type InstallLayout, PREVIOUS_LINK, versionOfDir } from '../release/layout.ts';
import { acquireLock } from '../release/lock.ts';
import { forgetBadVersion } from './bad.ts';
import { describeTrial } from './report.ts';
import { completeDecision, type DecideDeps, recordDecision } from './decide.ts';
import { DEFAULT_OPERATOR_PROBE_DIR, DEFAULT_PROBE_GRACE_MS, loadProbes } from './load.ts';
import { logSupersededOnce } from './log.ts';
import { checkProbes, GATE_HEALTH_CHECKS } from './probes/checks.ts';
import { judge, mergeRound, nextRoundInMs, type RoundDeps, runRound, trialProbes } from './round.ts';
import { formatSpan, MAX_GATE_MS } from './span.ts';
import { type GateState, readGateState, writeGateState } from './state.ts';
import type { Probe, ProbeOutcome } from './types.ts';

export interface GateDeps extends DecideDeps, RoundDeps {
  /** How long to wait for the install lock when a decision or a round's results are written (default 30 s). */
  lockWaitMs?: number;
  /** The clock (ms since the epoch); tests move it instead of sleeping. */
  now?: () => number;
}

export type TrialStatus = 'none' | 'on-trial' | 'passed' | 'failed' | 'superseded';

export interface AdvanceResult {
  status: TrialStatus;
  /** This call decided the trial, or completed a decision a crash interrupted. */
  decidedNow: boolean;
  state?: GateState;
  /** One line for a person. */
  message: string;
  /** While on trial: when to run the next round. */
  nextRoundInMs?: number;
}

export interface TrialRequest {
  version: string;
  /** The folder under releases/ that is about to become current. */
  dirName: string;
  spanMs: number;
}

const clock = (deps: GateDeps) => deps.now?.() ?? Date.now();
const iso = (ms: number) => new Date(ms).toISOString();

function statusOf(state: GateState): TrialStatus {
  if (!state.decision) return 'on-trial';
  return state.decision.outcome === 'pass' ? 'passed' : state.decision.outcome === 'fail' ? 'failed' : 'superseded';
}

function result(state: GateState, decidedNow: boolean, now: number): AdvanceResult {
  const status = statusOf(state);
  return { status, decidedNow, state, message: describeTrial(state, now), nextRoundInMs: status === 'on-trial' ? nextRoundInMs(state, now) : undefined };
}

function assertSpan(spanMs: number): void {
  if (!Number.isInteger(spanMs) || spanMs <= 0 || spanMs > MAX_GATE_MS) {
    throw new ContainaiError('USAGE', `a gate of ${spanMs} ms is out of range (1 ms to ${formatSpan(MAX_GATE_MS)})`, { hint: 'use --gate 10min, or --no-gate' });
  }
}

/**
 * Completes a decision a crash interrupted, and ends an undecided trial as
 * superseded. Call with the install lock held, before any switch of current.
 */
export async function settleTrial(layout: InstallLayout, deps: GateDeps, forVersion = 'another release'): Promise<GateState | undefined> {
  let state = await readGateState(layout);
  if (!state) return undefined;
  if (state.superseded) {
    await logSupersededOnce(layout, state.superseded, deps.by, state.version);
    state = { ...state, superseded: undefined };
    await writeGateState(layout, state);
  }
  if (state.decision) return completeDecision(layout, state, deps);
  const now = clock(deps);
  state = await recordDecision(layout, state, { outcome: 'superseded', at: iso(now), by: deps.by, reason: `${forVersion} was installed before the trial was decided` });
  return completeDecision(layout, state, deps);
}

/** Writes the trial of request's release. Call with the install lock held, after placing the release, before the switch. */
export async function startTrial(layout: InstallLayout, request: TrialRequest, deps: GateDeps): Promise<GateState> {
  assertSpan(request.spanMs);
  const releaseDir = join(layout.releases, request.dirName);
  // Refused before anything is written: install shows it and activates nothing.
  const operatorDir = resolve(deps.operatorDir ?? DEFAULT_OPERATOR_PROBE_DIR);
  const files = await loadProbes(releaseDir, operatorDir, request.spanMs);
  let old = await readGateState(layout);
  if (old?.superseded) await logSupersededOnce(layout, old.superseded, deps.by, old.version);
  if (old?.decision && !old.decision.complete) old = await completeDecision(layout, old, deps);
  const now = clock(deps);
  // An operator forced a bad version back in (install --force): it is on trial again, not refused.
  await forgetBadVersion(layout, request.version);
  // What activateRelease will leave as previous: the old current, unless it holds the same version.
  const current = await readReleaseLink(layout, CURRENT_LINK);
  const previousLink = await readReleaseLink(layout, PREVIOUS_LINK);
  const before = current.kind === 'release' && versionOfDir(current.dirName) !== request.version ? current : previousLink.kind === 'release' ? previousLink : undefined;
  const probes: Probe[] = [...checkProbes(deps.healthChecks ?? GATE_HEALTH_CHECKS, Math.min(DEFAULT_PROBE_GRACE_MS, request.spanMs)), ...files];
  const state: GateState = {
    format: 1,
    trialId: randomBytes(8).toString('hex'),
    version: request.version,
    dir: request.dirName,
    previous: before ? { version: versionOfDir(before.dirName), dir: before.dirName } : undefined,
    start: iso(now),
    deadline: iso(now + request.spanMs),
    spanMs: request.spanMs,
    operatorDir,
    rounds: 0,
    probes: probes.map((p) => ({ name: p.name, kind: p.kind, source: p.source, graceMs: p.graceMs, status: 'pending', message: 'not run yet', rounds: 0, failures: 0 })),
    superseded: old && !old.decision ? { trialId: old.trialId, version: old.version, at: iso(now) } : undefined,
  };
  await writeGateState(layout, state);
  if (state.superseded) await logSupersededOnce(layout, state.superseded, deps.by, state.version);
  return state;
}

/** One round and, when due, the decision. See the module comment. */
export async function advanceTrial(layout: InstallLayout, deps: GateDeps): Promise<AdvanceResult> {
  const seen = await readGateState(layout);
  if (!seen) return { status: 'none', decidedNow: false, message: 'no release is on trial' };
  if (seen.decision?.complete && !seen.superseded) return result(seen, false, clock(deps));
  let round: { probes: Probe[]; outcomes: Map<string, ProbeOutcome> } | undefined;
  if (!seen.decision) {
    const current = await readReleaseLink(layout, CURRENT_LINK);
    if (current.kind === 'release' && current.dirName === seen.dir) {
      const probes = await trialProbes(layout, seen, deps);
      round = { probes, outcomes: await runRound(layout, seen, probes, deps) };
    }
  }
  const lock = await acquireLock(layout, `containai-host ${deps.by} (health gate)`, deps.lockWaitMs ?? 30_000);
  try {
    let state = await readGateState(layout);
    if (!state) return { status: 'none', decidedNow: false, message: 'no release is on trial' };
    if (state.superseded) {
      await logSupersededOnce(layout, state.superseded, deps.by, state.version);
      state = { ...state, superseded: undefined };
      await writeGateState(layout, state);
    }
    if (state.decision) {
      const wasComplete = state.decision.complete;
      return result(await completeDecision(layout, state, deps), !wasComplete, clock(deps));
    }
    const current = await readReleaseLink(layout, CURRENT_LINK);
    if (current.kind !== 'release' || current.dirName !== state.dir) {
      const now = current.kind === 'release' ? `${versionOfDir(current.dirName)} is current` : 'no release is current';
      state = await recordDecision(layout, state, {
        outcome: 'superseded',
        at: iso(clock(deps)),
        by: deps.by,
        reason: `${now}, not ${state.version} (its install did not reach the switch, or a rollback or another install moved current)`,
      });
      return result(await completeDecision(layout, state, deps), true, clock(deps));
    }
    // A round run for another trial (or before current settled) says nothing about this one.
    if (!round || state.trialId !== seen.trialId) return result(state, false, clock(deps));
    const now = clock(deps);
    state = mergeRound(state, round.probes, round.outcomes, now);
    const verdict = judge(state, now);
    if (verdict.kind === 'continue') {
      await writeGateState(layout, state);
      return result(state, false, now);
    }
    state = await recordDecision(layout, state, {
      outcome: verdict.kind,
      at: iso(now),
      by: deps.by,
      reason: verdict.reason,
      probe: verdict.kind === 'fail' ? verdict.probe : undefined,
    });
    return result(await completeDecision(layout, state, deps), true, now);
  } finally {
    lock.release();
  }
}

/** Rounds until the trial is decided (install --wait); onRound sees each result. */
export async function waitForDecision(layout: InstallLayout, deps: GateDeps, onRound?: (r: AdvanceResult) => void): Promise<AdvanceResult> {
  for (;;) {
    const r = await advanceTrial(layout, deps);
    onRound?.(r);
    if (r.status !== 'on-trial') return r;
    await Bun.sleep(r.nextRoundInMs ?? 1_000);
  }
}

/** gate pass | gate fail: ends the trial by hand, as a decision due now would (a failure rolls back). */
export async function endTrialByHand(layout: InstallLayout, outcome: 'pass' | 'fail', reason: string | undefined, deps: GateDeps): Promise<AdvanceResult> {
  const lock = await acquireLock(layout, `containai-host gate ${outcome}`, deps.lockWaitMs ?? 30_000);
  try {
    let state = await readGateState(layout);
    if (!state) throw new ContainaiError('STATE', 'no release is on trial (there is no state/gate.json)', { hint: 'containai-host gate status shows the last trial; nothing was changed' });
    if (state.superseded) {
      await logSupersededOnce(layout, state.superseded, deps.by, state.version);
      state = { ...state, superseded: undefined };
      await writeGateState(layout, state);
    }
    if (state.decision) {
      const finished = await completeDecision(layout, state, deps);
      const d = finished.decision!;
      throw new ContainaiError('STATE', `the trial of ${state.version} is already decided (${d.outcome} at ${d.at}): ${describeTrial(finished, clock(deps))}`, {
        hint: 'a decided trial is not decided again; to leave a release that passed, install another or run containai-host rollback',
      });
    }
    const current = await readReleaseLink(layout, CURRENT_LINK);
    if (current.kind !== 'release' || current.dirName !== state.dir) {
      state = await recordDecision(layout, state, { outcome: 'superseded', at: iso(clock(deps)), by: deps.by, reason: `${state.version} is no longer current` });
      await completeDecision(layout, state, deps);
      throw new ContainaiError('STATE', `${state.version} is no longer current: its trial ended undecided`, { hint: 'containai-host status shows what is current' });
    }
    const now = clock(deps);
    const why = reason ? `by hand: ${reason}` : 'by hand';
    state = await recordDecision(layout, state, { outcome, at: iso(now), by: deps.by, reason: why });
    return result(await completeDecision(layout, state, deps), true, now);
  } finally {
    lock.release();
  }
}
