/**
 * check-health (the timer) advances the trial: after its report, one round of
 * the trial's probes with the report's own results standing in for the health
 * checks (they are not run twice), the install lock taken only to write the
 * round and, when one is due, the decision and its switch. Then the gate
 * check is made again, so the report and the metrics file say what the run
 * did: a trial still on, or decided now.
 *
 * A decision that rolled back changes what is current: the report described
 * the failed release, so it is made again for the release now current.
 *
 * Whatever stops the advance (the lock held by an install past lockWaitMs, a
 * probe file of the operator's that became invalid, a state/ this user cannot
 * write) is the gate check's warning, never a broken report: the next run
 * tries again.
 */
import { resolve } from 'node:path';
import { describeCause, isContainaiError } from '../errors.ts';
import { gateCheck } from '../health/gate.ts';
import { runCheck } from '../health/runner.ts';
import type { CheckResult, CheckStatus, HealthContext, HealthReport } from '../health/types.ts';
import { installLayout } from '../release/layout.ts';
import type { TrustPolicy } from '../trust/policy.ts';
import { readGateState } from './state.ts';
import type { AdvanceResult } from './trial.ts';

/** How long check-health waits for the install lock: an install that holds it longer ends the trial anyway. */
export const CHECK_HEALTH_LOCK_WAIT_MS = 10_000;

export interface AdvanceFromReportOptions {
  /** The policy flags given to check-health; undefined: the signer each release's install.json recorded. */
  policy?: TrustPolicy;
  trustDir?: string;
  env?: Record<string, string | undefined>;
  lockWaitMs?: number;
  /** Makes the report again (after a rollback). */
  rerun: () => Promise<HealthReport>;
  /** The context the gate check is run again with. */
  context: HealthContext;
}

export interface AdvancedReport {
  report: HealthReport;
  /** The round's result; undefined when no trial was undecided (nothing to advance) or the advance failed. */
  advance?: AdvanceResult;
  /** Why the trial could not be advanced. */
  problem?: string;
}

function withCheck(report: HealthReport, result: CheckResult): HealthReport {
  const checks = report.checks.map((c) => (c.id === result.id ? result : c));
  const summary: Record<CheckStatus, number> = { pass: 0, warn: 0, fail: 0, skip: 0 };
  for (const c of checks) summary[c.status] += 1;
  return { ...report, checks, summary, ok: summary.fail === 0 };
}

/** One advance of the trial from check-health's report, and the report as it stands after it. */
export async function advanceFromReport(report: HealthReport, options: AdvanceFromReportOptions): Promise<AdvancedReport> {
  // Absolute: a probe's argv[0] is resolved inside the release folder, and compared with it.
  const layout = installLayout(resolve(report.installRoot));
  const started = performance.now();
  let advance: AdvanceResult | undefined;
  let problem: { message: string; hint?: string } | undefined;
  try {
    const state = await readGateState(layout);
    // Nothing on trial and nothing half-done: the common case costs one small read.
    if (!state || (state.decision?.complete && !state.superseded)) return { report };
    const { advanceTrial } = await import('./trial.ts');
    advance = await advanceTrial(layout, {
      by: 'check-health',
      healthResults: report.checks,
      policy: options.policy,
      trustDir: options.trustDir,
      env: options.env,
      lockWaitMs: options.lockWaitMs ?? CHECK_HEALTH_LOCK_WAIT_MS,
    });
  } catch (err) {
    // A damaged gate.json is the gate check's own failure already; anything else is said here.
    problem = isContainaiError(err) ? { message: err.message, hint: err.hint } : { message: describeCause(err) };
  }
  const advanceMs = Math.round(performance.now() - started);
  let out = report;
  if (advance?.decidedNow && advance.state?.decision?.rolledBackTo) out = await options.rerun();
  const gate = await runCheck(gateCheck, options.context);
  // A damaged state file is the gate check's own failure, said once.
  if (problem && gate.details?.state === 'damaged') return { report: withCheck(out, gate), problem: problem.message };
  if (problem) {
    out = withCheck(out, {
      ...gate,
      status: gate.status === 'fail' ? 'fail' : 'warn',
      message: `${gate.message}; this run could not advance the trial: ${problem.message}`,
      fix: `${problem.hint ? `${problem.hint}; ` : ''}the trial waits, undecided, and the next check-health tries again (containai-host gate fail ends it by hand)`,
      details: { ...gate.details, advanced: false, problem: problem.message },
    });
    return { report: out, problem: problem.message };
  }
  const decided = advance?.decidedNow ? `decided by this run: ` : '';
  out = withCheck(out, { ...gate, message: `${decided}${gate.message}`, durationMs: gate.durationMs + advanceMs, details: { ...gate.details, advanced: true, decidedNow: advance?.decidedNow ?? false } });
  return { report: out, advance };
}
