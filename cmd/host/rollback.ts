import { defineCommand } from 'citty';
import { log, printJson } from '../../lib/cli/output.ts';
import { assertInstallRootAllowed } from '../../lib/release/guard.ts';
import { versionOfDir } from '../../lib/release/layout.ts';
import { rollbackRelease } from '../../lib/release/rollback.ts';
import { policyFromArgs } from '../../lib/trust/policy.ts';
import { installRootArgs, jsonArgs, lockArgs, lockWaitMs, nonrootArgs } from './_release.ts';

export default defineCommand({
  meta: { name: 'rollback', description: 'Make the previous release current again (and the current one previous).' },
  args: { ...installRootArgs, ...nonrootArgs, ...lockArgs, ...jsonArgs },
  async run({ args }) {
    const installRoot = await assertInstallRootAllowed(args['install-root'], { allowNonroot: Boolean(args['allow-nonroot']) });
    const result = await rollbackRelease(installRoot, { lockWaitMs: lockWaitMs(args['lock-wait']), policy: policyFromArgs({}) });
    const previous = result.previous ? versionOfDir(result.previous) : undefined;
    log().success(`rolled back: ${versionOfDir(result.current)} is current${previous ? `, ${previous} is previous` : ''}`);
    if (args.json) printJson({ ok: true, current: versionOfDir(result.current), previous });
  },
});
