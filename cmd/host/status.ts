import { defineCommand } from 'citty';
import { resolve } from 'node:path';
import { formatBytes } from '../../lib/cli/progress.ts';
import { printJson, printResult } from '../../lib/cli/output.ts';
import { readStatus } from '../../lib/release/status.ts';
import { installRootArgs, jsonArgs } from './_release.ts';

export default defineCommand({
  meta: { name: 'status', description: 'Show the current, previous and installed releases.' },
  args: { ...installRootArgs, ...jsonArgs },
  async run({ args }) {
    const status = await readStatus(resolve(args['install-root']));
    if (args.json) {
      printJson({ ok: status.problems.length === 0, ...status });
    }
    const lines = [`install root: ${status.installRoot}`, `current:  ${status.current ?? '(none)'}`, `previous: ${status.previous ?? '(none)'}`];
    for (const r of status.releases) {
      const mark = r.current ? '*' : r.previous ? '-' : ' ';
      lines.push(`${mark} ${r.version.padEnd(16)} ${(r.installedAt ?? 'unknown time').padEnd(24)} ${formatBytes(r.bytes).padStart(10)}  ${r.signerText}${r.format === 1 ? '  [first format]' : ''}${r.problem ? `  (${r.problem})` : ''}`);
    }
    for (const problem of status.problems) lines.push(`warning: ${problem}`);
    printResult(lines.join('\n'), { json: args.json });
  },
});
