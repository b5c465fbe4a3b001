import { defineCommand } from 'citty';
import { resolve } from 'node:path';
import { z } from 'zod';
import { printJson, printResult } from '../../lib/cli/output.ts';
import { ContainaiError, usageError } from '../../lib/errors.ts';
import { formatGateReport, gateReport } from '../../lib/gate/report.ts';
import { assertInstallRootAllowed } from '../../lib/release/guard.ts';
import { installLayout } from '../../lib/release/layout.ts';
import { policyFromArgs } from '../../lib/trust/policy.ts';
import { policyChoiceGiven } from '../_shared.ts';
import { installRootArgs, jsonArgs, lockArgs, lockWaitMs, nonrootArgs, policyArgs, trustDirArgs } from './_release.ts';

const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

function reasonOf(value: unknown): string | undefined {
  if (value === undefined || value === '') return undefined;
  const text = String(value);
  if (text.length > 500 || CONTROL.test(text)) throw usageError('--reason must be one line of at most 500 characters');
  return text;
}

const status = defineCommand({
  meta: { name: 'status', description: 'Show the release on trial (or how the last trial ended), its probes, and the versions that failed their gate.' },
  args: { ...installRootArgs, ...jsonArgs },
  async run({ args }) {
    // One parse of each state file in this process: zod's JIT would compile the schemas for a single use
    // (measured ~4 ms of a ~30 ms run in the compiled binary). Process-wide, and this process does nothing else.
    z.config({ jitless: true });
    const report = await gateReport(installLayout(resolve(args['install-root'])));
    if (report.state === 'damaged') {
      throw new ContainaiError('STATE', report.problem ?? report.message, { hint: 'look at state/gate.json and state/bad.json; a damaged gate.json can be removed to end the trial undecided' });
    }
    printResult(formatGateReport(report), { json: args.json });
    if (args.json) printJson({ ok: report.state !== 'stuck', ...report });
  },
});

function endCommand(outcome: 'pass' | 'fail') {
  return defineCommand({
    meta: {
      name: outcome,
      description:
        outcome === 'pass'
          ? 'End the trial now: the release on trial passes its gate.'
          : 'End the trial now: the release on trial fails its gate, the previous release is verified and made current again, and the failed version is refused by install until --force.',
    },
    args: {
      reason: { type: 'string', description: 'why, recorded with the decision (and in bad.json for fail)', valueHint: 'TEXT' },
      ...installRootArgs,
      ...nonrootArgs,
      ...lockArgs,
      ...policyArgs,
      ...trustDirArgs,
      ...jsonArgs,
    },
    async run({ args, rawArgs }) {
      const reason = reasonOf(args.reason);
      const installRoot = await assertInstallRootAllowed(args['install-root'], { allowNonroot: Boolean(args['allow-nonroot']) });
      // Without policy flags, previous verifies under the signer its install.json recorded, as rollback does.
      const policy = policyChoiceGiven(rawArgs, ['allow-unsigned']) ? policyFromArgs(args) : undefined;
      const { endTrialByHand } = await import('../../lib/gate/trial.ts');
      const result = await endTrialByHand(installLayout(installRoot), outcome, reason, {
        by: `gate ${outcome}`,
        policy,
        trustDir: args['trust-dir'],
        lockWaitMs: lockWaitMs(args['lock-wait']),
      });
      const d = result.state?.decision;
      if (outcome === 'fail' && !d?.rolledBackTo) {
        throw new ContainaiError('STATE', result.message, { hint: 'install a good release, or roll back by hand once previous verifies', details: { decision: d } });
      }
      printResult(result.message, { json: args.json });
      if (args.json) printJson({ ok: true, status: result.status, message: result.message, decision: d, version: result.state?.version });
    },
  });
}

export default defineCommand({
  meta: { name: 'gate', description: 'Show the health gate, or end the trial of the release on it by hand.' },
  subCommands: { status, pass: endCommand('pass'), fail: endCommand('fail') },
});
