import { defineCommand } from 'citty';
import { printJson, printResult } from '../../lib/cli/output.ts';
import { assertInstallRootAllowed } from '../../lib/release/guard.ts';
import { versionOfDir } from '../../lib/release/layout.ts';
import { rollbackRelease } from '../../lib/release/rollback.ts';
import { readPolicyFlags } from '../_shared.ts';
import { installRootArgs, jsonArgs, lockArgs, lockWaitMs, nonrootArgs, policyArgs, trustDirArgs } from './_release.ts';

export default defineCommand({
  meta: {
    name: 'rollback',
    description:
      'Make the previous release current again (and the current one previous), once it verifies in full. Without policy flags it must verify under the signer its install.json recorded; an unsigned one needs --allow-unsigned.',
  },
  args: { ...installRootArgs, ...nonrootArgs, ...lockArgs, ...policyArgs, ...trustDirArgs, ...jsonArgs },
  async run({ args, rawArgs }) {
    // --allow-unsigned alone still verifies a signed previous under its recorded signer.
    const flags = readPolicyFlags(args, rawArgs, { notChoosing: ['allow-unsigned'] });
    const policy = flags.chosen ? flags.policy : undefined;
    const installRoot = await assertInstallRootAllowed(args['install-root'], { allowNonroot: Boolean(args['allow-nonroot']) });
    const result = await rollbackRelease(installRoot, {
      lockWaitMs: lockWaitMs(args['lock-wait']),
      policy,
      trustDir: args['trust-dir'],
      allowUnsigned: args['allow-unsigned'] === true,
    });
    const previous = result.previous ? versionOfDir(result.previous) : undefined;
    printResult(`rolled back: ${versionOfDir(result.current)} is current${previous ? `, ${previous} is previous` : ''}`, { json: args.json });
    if (args.json) printJson({ ok: true, current: versionOfDir(result.current), previous });
  },
});
