/**
 * The report as a person reads it: one line per check, its fix beneath, a summary last. A check's
 * message and fix may quote what they found (a name, an engine's answer): each is kept to its line,
 * every control character escaped, so nothing found can forge a line of the report or drive a terminal.
 */
import { printableName } from '../text.ts';
import type { CheckStatus, HealthReport } from './types.ts';

const MARK: Record<CheckStatus, string> = { pass: 'ok  ', warn: 'WARN', fail: 'FAIL', skip: 'skip' };

export function formatReport(report: HealthReport): string {
  const width = Math.max(...report.checks.map((c) => c.id.length));
  const lines: string[] = [];
  for (const check of report.checks) {
    lines.push(`${MARK[check.status]}  ${printableName(check.id).padEnd(width)}  ${printableName(check.message)}`);
    if (check.fix && (check.status === 'warn' || check.status === 'fail')) lines.push(`${' '.repeat(6 + width)}  fix: ${printableName(check.fix)}`);
  }
  const { pass, warn, fail, skip } = report.summary;
  lines.push(
    `${report.ok ? 'healthy' : 'UNHEALTHY'}: ${pass} passed, ${warn} warning${warn === 1 ? '' : 's'}, ${fail} failed${skip ? `, ${skip} skipped` : ''} (${report.durationMs} ms)`,
  );
  return lines.join('\n');
}
