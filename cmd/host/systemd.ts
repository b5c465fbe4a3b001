import { defineCommand } from 'citty';
import { printJson, printResult } from '../../lib/cli/output.ts';
import { homeFolders } from '../../lib/release/guard.ts';
import { checkHealthPolicyArgs, timerBinary } from '../../lib/systemd/binary.ts';
import { assertServiceInstallRoot } from '../../lib/systemd/sandbox.ts';
import { installHealthTimer, uninstallHealthTimer, type SystemdResult } from '../../lib/systemd/install.ts';
import { assertUnitSafePath, DEFAULT_INTERVAL, DEFAULT_UNIT_DIR, parseInterval, SERVICE_NAME, TIMER_NAME } from '../../lib/systemd/units.ts';
import { installRootArgs, jsonArgs, policyArgs, readPolicyFlags, trustDirArgs } from '../_shared.ts';

const unitDirArgs = {
  'unit-dir': { type: 'string', description: 'where the unit files go', default: DEFAULT_UNIT_DIR, valueHint: 'DIR' },
} as const;

function tell(result: SystemdResult, json: boolean, action: 'wrote' | 'removed'): void {
  const lines = [result.files.length > 0 ? `${action} ${result.files.join(', ')}` : `nothing to uninstall: no ${TIMER_NAME} or ${SERVICE_NAME} in ${result.unitDir}`];
  if (!result.ran && result.commands.length > 0) lines.push(`systemd is not running here; run:\n${result.commands.map((c) => `  systemctl ${c.join(' ')}`).join('\n')}`);
  printResult(lines.join('\n'), { json });
  if (json) printJson({ ok: true, ...result });
}

const install = defineCommand({
  meta: {
    name: 'install',
    description:
      'Write containai-health.service and .timer (check-health --json every --interval, under the policy flags given here), then enable the timer. The service runs this binary (or --binary), which must live outside the install root.',
  },
  args: {
    interval: { type: 'string', description: 'how often to run, a systemd time span', default: DEFAULT_INTERVAL, valueHint: 'SPAN' },
    binary: { type: 'string', description: 'the containai-host the timer runs, outside the install root (default: this one, by its real path)', valueHint: 'FILE' },
    ...unitDirArgs,
    ...installRootArgs,
    ...policyArgs,
    ...trustDirArgs,
    ...jsonArgs,
  },
  async run({ args, rawArgs }) {
    const { policy } = readPolicyFlags(args, rawArgs);
    const installRoot = assertUnitSafePath(args['install-root'], '--install-root');
    // Everything the unit names is checked before a file is written: it must exist and stay visible in the service's sandbox.
    assertServiceInstallRoot(installRoot, await homeFolders());
    const units = {
      interval: parseInterval(args.interval),
      installRoot,
      binary: timerBinary(args.binary, installRoot),
      policyArgs: checkHealthPolicyArgs(policy, installRoot, { trustDirGiven: rawArgs.some((a) => a === '--trust-dir' || a.startsWith('--trust-dir=')) }),
    };
    const result = await installHealthTimer(units, { unitDir: args['unit-dir'] });
    tell(result, args.json === true, 'wrote');
  },
});

const uninstall = defineCommand({
  meta: { name: 'uninstall', description: 'Disable the health timer and remove its units; with none installed, says so and exits 0.' },
  args: { ...unitDirArgs, ...jsonArgs },
  async run({ args }) {
    tell(await uninstallHealthTimer({ unitDir: args['unit-dir'] }), args.json === true, 'removed');
  },
});

export default defineCommand({
  meta: { name: 'systemd', description: 'Install or remove the systemd timer that runs check-health.' },
  subCommands: { install, uninstall },
});
