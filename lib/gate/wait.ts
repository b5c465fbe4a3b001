/**
 * install --wait: rounds of the trial this install started until it is
 * decided, a status line redrawn on a terminal meanwhile (nothing in a pipe
 * or a log but a line when a probe starts or stops failing). The decision is
 * the one check-health would make: the same advanceTrial, under the same lock.
 *
 * The trial waited on is the one the install wrote (its trialId): if another
 * install replaces it, or a rollback moves current, the wait ends with that
 * trial's own end (superseded), never with another release's verdict.
 */
import { createStatusLine } from '../cli/progress.ts';
import { log, verbosity } from '../cli/output.ts';
import { ContainaiError } from '../errors.ts';
import type { InstallLayout } from '../release/layout.ts';
import { printableText } from '../text.ts';
import { formatSpan } from './span.ts';
import { type GateState, readGateState } from './state.ts';
import { advanceTrial, type AdvanceResult, type GateDeps } from './trial.ts';

/** The line a person watches: time left, and which probes fail. */
function statusLine(state: GateState, now: number): string {
  const left = Date.parse(state.deadline) - now;
  const failing = state.probes.filter((p) => p.status === 'fail');
  const passing = state.probes.filter((p) => p.status === 'pass').length;
  const when = left > 0 ? `${formatSpan(left)} left` : 'past the deadline';
  const how = failing.length
    ? `failing: ${failing.map((p) => `"${p.name}" (grace ${formatSpan(Math.max(0, Date.parse(p.failingSince ?? state.start) + p.graceMs - now))} left)`).join(', ')}`
    : `${passing} of ${state.probes.length} probes passing`;
  return printableText(`gate: ${state.version} on trial, ${when}; ${how}`);
}

/** What the wait came to, for the command to print or refuse. */
export interface WaitOutcome {
  result: AdvanceResult;
  /** The trial waited on, as it ended (undefined only when gate.json went away). */
  trial?: GateState;
}

/** Rounds until the trial with this id is decided. */
export async function waitForTrial(layout: InstallLayout, trialId: string, deps: GateDeps): Promise<WaitOutcome> {
  // --quiet: no progress at all (the verdict is the result, or the error).
  const line = verbosity() === 'quiet' ? { update() {}, done() {} } : createStatusLine();
  const failingBefore = new Set<string>();
  try {
    for (;;) {
      const r = await advanceTrial(layout, deps);
      if (!r.state || r.state.trialId !== trialId) {
        line.done();
        return { result: { ...r, status: 'superseded', decidedNow: false, message: r.state ? `the trial was replaced: ${r.message}` : 'the trial is gone (state/gate.json was removed)' } };
      }
      const state = r.state;
      const failing = new Set(state.probes.filter((p) => p.status === 'fail').map((p) => p.name));
      for (const p of state.probes) {
        if (failing.has(p.name) && !failingBefore.has(p.name)) {
          line.done();
          log().warn(printableText(`probe "${p.name}" fails: ${p.message} (it fails the gate if it still fails after ${formatSpan(p.graceMs)})`));
        } else if (!failing.has(p.name) && failingBefore.has(p.name)) {
          line.done();
          log().info(printableText(`probe "${p.name}" passes again`));
        }
      }
      failingBefore.clear();
      for (const name of failing) failingBefore.add(name);
      if (r.status !== 'on-trial') {
        line.done();
        return { result: r, trial: state };
      }
      line.update(statusLine(state, deps.now?.() ?? Date.now()));
      await Bun.sleep(r.nextRoundInMs ?? 1_000);
    }
  } finally {
    line.done();
  }
}

/** The trial install just wrote for releases/<dirName>, or undefined (--no-gate, or already current and decided). */
export async function trialOf(layout: InstallLayout, dirName: string): Promise<GateState | undefined> {
  const state = await readGateState(layout);
  return state && state.dir === dirName ? state : undefined;
}

/** A wait that did not end in a pass, as the refusal install --wait exits 1 with. */
export function gateRefusal(version: string, outcome: WaitOutcome): ContainaiError {
  const { result, trial } = outcome;
  const d = trial?.decision;
  const details = { version, gate: { status: result.status, decision: d } };
  if (result.status === 'failed' && d?.rolledBackTo) {
    return new ContainaiError('UNHEALTHY', result.message, {
      hint: `install refuses ${version} until --force; containai-host gate status shows every probe`,
      details,
    });
  }
  if (result.status === 'failed') {
    return new ContainaiError('UNHEALTHY', result.message, { hint: 'install a good release, or roll back by hand once previous verifies (containai-host gate status says why it could not)', details });
  }
  return new ContainaiError('STATE', `${version} was not decided by its gate: ${result.message}`, { hint: 'containai-host status shows what is current; containai-host gate status shows the last trial', details });
}
