import { defineCommand } from 'citty';
import { log, printJson } from '../../lib/cli/output.ts';
import { installHealthTimer, uninstallHealthTimer, type SystemdResult } from '../../lib/systemd/install.ts';
import { assertUnitSafePath, DEFAULT_INTERVAL, DEFAULT_UNIT_DIR, parseInterval } from '../../lib/systemd/units.ts';
import { installRootArgs, jsonArgs } from '../_shared.ts';

const unitDirArgs = {
  'unit-dir': { type: 'string', description: 'where the unit files go', default: DEFAULT_UNIT_DIR, valueHint: 'DIR' },
} as const;

function tell(result: SystemdResult, json: boolean, action: 'wrote' | 'removed'): void {
  log().success(`${action} ${result.files.join(', ')}`);
  if (!result.ran) log().info(`systemd is not running here; run:\n${result.commands.map((c) => `  systemctl ${c.join(' ')}`).join('\n')}`);
  if (json) printJson({ ok: true, ...result });
}

const install = defineCommand({
  meta: { name: 'install', description: 'Write containai-health.service and .timer (check-health --json every --interval), then enable the timer.' },
  args: {
    interval: { type: 'string', description: 'how often to run, a systemd time span', default: DEFAULT_INTERVAL, valueHint: 'SPAN' },
    ...unitDirArgs,
    ...installRootArgs,
    ...jsonArgs,
  },
  async run({ args }) {
    const units = {
      interval: parseInterval(args.interval),
      installRoot: assertUnitSafePath(args['install-root'], '--install-root'),
    };
    const result = await installHealthTimer(units, { unitDir: args['unit-dir'] });
    tell(result, args.json === true, 'wrote');
  },
});

const uninstall = defineCommand({
  meta: { name: 'uninstall', description: 'Disable the health timer and remove its units.' },
  args: { ...unitDirArgs, ...jsonArgs },
  async run({ args }) {
    tell(await uninstallHealthTimer({ unitDir: args['unit-dir'] }), args.json === true, 'removed');
  },
});

export default defineCommand({
  meta: { name: 'systemd', description: 'Install or remove the systemd timer that runs check-health.' },
  subCommands: { install, uninstall },
});
