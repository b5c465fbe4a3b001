import { defineCommand } from 'citty';
import { resolve } from 'node:path';
import { printJson, printResult } from '../../lib/cli/output.ts';
import { ContainaiError } from '../../lib/errors.ts';
import { advanceFromReport } from '../../lib/gate/advance-report.ts';
import { HEALTH_CHECKS } from '../../lib/health/checks.ts';
import { createHealthContext } from '../../lib/health/context.ts';
import { formatReport } from '../../lib/health/report.ts';
import { runHealthChecks } from '../../lib/health/runner.ts';
import { installRootArgs, jsonArgs, policyArgs, readPolicyFlags, trustDirArgs } from '../_shared.ts';

export default defineCommand({
  meta: {
    name: 'check-health',
    description:
      'Check the engine (Docker, not Podman) and its security options, the installed release, the profile and its images, disk and registry, trust and the update channel, and advance the health gate of a release on trial (decided when due). Exit 0 healthy, 1 unhealthy. Without policy flags the kept signature of the release is verified under the signer its install.json records.',
  },
  args: {
    ...installRootArgs,
    ...jsonArgs,
    offline: { type: 'boolean', description: 'skip the registry check (air-gapped hosts)' },
    full: { type: 'boolean', description: 'hash every file of the release now (otherwise files unchanged since the last full verification are re-hashed at least daily)' },
    'metrics-file': { type: 'string', description: 'also write the report as node_exporter textfile metrics, replaced atomically (e.g. /var/lib/node_exporter/textfile_collector/containai.prom)', valueHint: 'FILE' },
    ...policyArgs,
    ...trustDirArgs,
  },
  async run({ args, rawArgs }) {
    // Policy flags verify under that policy; without them, under the signer install.json recorded.
    const { policy, chosen } = readPolicyFlags(args, rawArgs);
    const context = () =>
      createHealthContext({
        installRoot: args['install-root'],
        offline: args.offline === true,
        policy: chosen ? policy : undefined,
        trustDir: args['trust-dir'],
        fullVerify: args.full === true,
      });
    const ctx = context();
    // The report, then the trial of a new release advanced with it (and decided when due): lib/gate/advance-report.ts.
    const { report } = await advanceFromReport(await runHealthChecks(HEALTH_CHECKS, ctx), {
      policy: chosen ? policy : undefined,
      trustDir: args['trust-dir'],
      context: ctx,
      rerun: () => runHealthChecks(HEALTH_CHECKS, context()),
    });
    printResult(formatReport(report), { json: args.json });
    if (args['metrics-file']) {
      const { writeHealthMetrics } = await import('../../lib/health/metrics.ts');
      await writeHealthMetrics(resolve(args['metrics-file']), report);
    }
    if (args.json) printJson(report);
    if (!report.ok) {
      // The report has said what failed; the error only sets the exit code and a one-line summary.
      throw new ContainaiError('UNHEALTHY', `${report.summary.fail} health check${report.summary.fail === 1 ? '' : 's'} failed: ${report.checks.filter((c) => c.status === 'fail').map((c) => c.id).join(', ')}`);
    }
  },
});
