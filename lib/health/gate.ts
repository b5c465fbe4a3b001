/**
 * The health gate (lib/gate): a release on trial, and how its last trial
 * ended. Reads state/gate.json and bad.json only; advancing the trial is
 * check-health's own step, before the report. A release that failed and was
 * rolled back warns (the host runs the previous release, healthy, but someone
 * should look); one that failed with nothing to roll back to fails.
 */
import { gateReport } from '../gate/report.ts';
import { formatSpan } from '../gate/span.ts';
import { installLayout } from '../release/layout.ts';
import type { HealthCheck } from './types.ts';

export const gateCheck: HealthCheck = {
  id: 'gate',
  title: 'health gate',
  timeoutMs: 3_000,
  async run(ctx) {
    const report = await gateReport(installLayout(ctx.installRoot));
    const details = { state: report.state, version: report.version, deadline: report.deadline, bad: report.bad.map((b) => b.version) };
    const badNote = report.bad.length ? `; refused until --force: ${report.bad.map((b) => b.version).join(', ')}` : '';
    switch (report.state) {
      case 'none':
      case 'passed':
      case 'superseded':
        return { status: 'pass', message: `${report.message}${badNote}`, details };
      case 'on-trial': {
        const failing = report.probes.filter((p) => p.status === 'fail');
        if (failing.length === 0) return { status: 'pass', message: report.message, details };
        const first = failing[0]!;
        return {
          status: 'warn',
          message: report.message,
          fix: `probe "${first.name}" (${first.message}) fails the gate after ${formatSpan(first.graceMs)}: fix it or end the trial by hand (containai-host gate fail)`,
          details,
        };
      }
      case 'deciding':
        return { status: 'warn', message: report.message, fix: 'run containai-host gate status (or wait for the next check-health) to complete it', details };
      case 'failed':
        return { status: 'warn', message: report.message, fix: `fix ${report.version} and release a newer version (install --force takes ${report.version} again)`, details };
      case 'stuck':
        return { status: 'fail', message: report.message, fix: 'install a good release (containai-host install --version …), or roll back by hand once previous verifies', details };
      default:
        return { status: 'fail', message: report.message, fix: 'look at state/gate.json and state/bad.json (containai-host gate status)', details };
    }
  },
};
