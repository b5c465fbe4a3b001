import { defineCommand } from 'citty';
import { printJson, printResult } from '../../lib/cli/output.ts';
import { usageError } from '../../lib/errors.ts';
import { assertInstallRootAllowed } from '../../lib/release/guard.ts';
import { pruneReleases } from '../../lib/release/prune.ts';
import { installRootArgs, jsonArgs, lockArgs, lockWaitMs, nonrootArgs } from './_release.ts';

export default defineCommand({
  meta: { name: 'prune', description: 'Remove old releases, keeping the newest N; never current or previous.' },
  args: {
    keep: { type: 'string', description: 'how many of the newest releases to keep (current and previous are always kept)', default: '3', valueHint: 'N' },
    ...installRootArgs,
    ...nonrootArgs,
    ...lockArgs,
    ...jsonArgs,
  },
  async run({ args }) {
    const keep = Number(args.keep);
    if (!/^\d+$/.test(args.keep) || keep > 10_000) {
      throw usageError(`--keep "${args.keep}" is not a valid number: give how many releases to keep, a whole number from 0 to 10000`, 'for example --keep 3 (current and previous are always kept)');
    }
    const installRoot = await assertInstallRootAllowed(args['install-root'], { allowNonroot: Boolean(args['allow-nonroot']) });
    const result = await pruneReleases(installRoot, { keep, lockWaitMs: lockWaitMs(args['lock-wait']) });
    printResult(result.removed.length ? `removed ${result.removed.map((d) => `releases/${d}`).join(', ')}` : 'nothing to remove', { json: args.json });
    if (args.json) printJson({ ok: true, ...result });
  },
});
