/**
 * What the gate says without changing anything: for `gate status`,
 * check-health's gate check and the metrics. Reads gate.json and bad.json
 * only (no lock, no probe, no verifier loaded): gate status answers in
 * well under 50 ms.
 */
import { isContainaiError } from '../errors.ts';
import type { InstallLayout } from '../release/layout.ts';
import { versionOfDir } from '../release/layout.ts';
import { printableText } from '../text.ts';
import { formatSpan } from './span.ts';
import { type BadEntry, type GateState, type ProbeResult, readBadList, readGateState } from './state.ts';

export type GateReportState = 'none' | 'on-trial' | 'deciding' | 'passed' | 'failed' | 'stuck' | 'superseded' | 'damaged';

export const GATE_REPORT_STATES: readonly GateReportState[] = ['none', 'on-trial', 'deciding', 'passed', 'failed', 'stuck', 'superseded', 'damaged'];

export interface GateReport {
  state: GateReportState;
  /** One line for a person. */
  message: string;
  version?: string;
  dir?: string;
  previous?: string;
  start?: string;
  deadline?: string;
  /** While on trial. */
  remainingMs?: number;
  probes: ProbeResult[];
  decision?: GateState['decision'];
  bad: BadEntry[];
  /** Why a state file could not be read. */
  problem?: string;
}

/** Where a trial stands, from its file alone. */
export function stateOf(trial: GateState): GateReportState {
  const d = trial.decision;
  if (!d) return 'on-trial';
  if (!d.complete) return 'deciding';
  if (d.outcome === 'pass') return 'passed';
  if (d.outcome === 'superseded') return 'superseded';
  return d.rolledBackTo ? 'failed' : 'stuck';
}

/** One line for a person: the one wording of a trial's state, for gate status, check-health and the API's results. */
export function describeTrial(trial: GateState, now: number): string {
  const d = trial.decision;
  switch (stateOf(trial)) {
    case 'on-trial': {
      const left = Date.parse(trial.deadline) - now;
      const failing = trial.probes.filter((p) => p.status === 'fail');
      const when = left > 0 ? `until ${trial.deadline} (${formatSpan(left)} left)` : `past its deadline ${trial.deadline}, held by a probe within its grace`;
      const how = failing.length ? `${failing.length} failing: ${failing.map((p) => `"${p.name}" since ${p.failingSince}`).join(', ')}` : `${trial.probes.filter((p) => p.status === 'pass').length} of ${trial.probes.length} probes passing`;
      return `${trial.version} is on trial ${when}; ${how}`;
    }
    case 'deciding':
      return `${trial.version}'s trial was decided (${d!.outcome} at ${d!.at}: ${d!.reason}) and the decision is being carried out; the next check-health or gate command completes it`;
    case 'passed':
      return `${trial.version} passed its health gate at ${d!.at}: ${d!.reason}`;
    case 'superseded':
      return `${trial.version}'s trial ended undecided at ${d!.at}: ${d!.reason}`;
    case 'failed':
      return `${trial.version} failed its health gate at ${d!.at}: ${d!.reason}; ${versionOfDir(d!.rolledBackTo!)} is current again and ${trial.version} is on the bad list`;
    default:
      return `${trial.version} failed its health gate at ${d!.at}: ${d!.reason}; it stays current, as it could not be rolled back (${d!.rollbackProblem ?? 'unknown'})`;
  }
}

export async function gateReport(layout: InstallLayout, now = Date.now()): Promise<GateReport> {
  let trial: GateState | undefined;
  let bad: BadEntry[] = [];
  const problems: string[] = [];
  const [t, b] = await Promise.allSettled([readGateState(layout), readBadList(layout)]);
  if (t.status === 'fulfilled') trial = t.value;
  else problems.push(isContainaiError(t.reason) ? t.reason.message : String(t.reason));
  if (b.status === 'fulfilled') bad = b.value;
  else problems.push(isContainaiError(b.reason) ? b.reason.message : String(b.reason));
  if (problems.length > 0) return { state: 'damaged', message: problems.join('; '), probes: trial?.probes ?? [], bad, problem: problems.join('; ') };
  if (!trial) return { state: 'none', message: 'no release has been on trial here', probes: [], bad };
  const state = stateOf(trial);
  return {
    state,
    message: describeTrial(trial, now),
    version: trial.version,
    dir: trial.dir,
    previous: trial.previous?.version,
    start: trial.start,
    deadline: trial.deadline,
    remainingMs: state === 'on-trial' ? Math.max(0, Date.parse(trial.deadline) - now) : undefined,
    probes: trial.probes,
    decision: trial.decision,
    bad,
  };
}

/** The report as gate status prints it: a headline, one line per probe, the bad list. */
export function formatGateReport(report: GateReport): string {
  const lines = [`gate: ${report.message}`];
  if (report.previous && (report.state === 'on-trial' || report.state === 'deciding')) lines.push(`  previous: ${report.previous} (where a failure rolls back to)`);
  const width = Math.max(0, ...report.probes.map((p) => p.name.length));
  for (const p of report.probes) {
    const mark = p.status === 'pass' ? 'ok  ' : p.status === 'fail' ? 'FAIL' : 'wait';
    const since = p.status === 'fail' && p.failingSince ? ` (failing since ${p.failingSince}, grace ${formatSpan(p.graceMs)})` : '';
    lines.push(`  ${mark}  ${p.name.padEnd(width)}  ${p.message}${since}`);
  }
  for (const b of report.bad) lines.push(`  bad: ${b.version} failed its gate at ${b.at}: ${b.reason}`);
  return printableText(lines.join('\n'));
}
