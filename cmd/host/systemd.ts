import { defineCommand } from 'citty';
import { printJson, printResult } from '../../lib/cli/output.ts';
import { homeFolders } from '../../lib/release/guard.ts';
import { usageError } from '../../lib/errors.ts';
import { assertTag, formatReference, parseRegistryReference } from '../../lib/oci/reference.ts';
import { checkHealthPolicyArgs, timerBinary, unitWord } from '../../lib/systemd/binary.ts';
import { policyFromArgs } from '../../lib/trust/policy.ts';
import { assertServiceInstallRoot } from '../../lib/systemd/sandbox.ts';
import { installHealthTimer, uninstallHealthTimer, type SystemdResult } from '../../lib/systemd/install.ts';
import { assertUnitSafePath, DEFAULT_INTERVAL, DEFAULT_UNIT_DIR, DEFAULT_UPDATE_INTERVAL, parseInterval, SERVICE_NAME, TIMER_NAME, type UpdateUnitOptions } from '../../lib/systemd/units.ts';
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
      'Write containai-health.service and .timer (check-health --json every --interval, under the policy flags given here), and with --update-from also containai-update.service and .timer (update from the channel every --update-interval, jittered), then enable the timers. The services run this binary (or --binary), which must live outside the install root.',
  },
  args: {
    interval: { type: 'string', description: 'how often to run, a systemd time span', default: DEFAULT_INTERVAL, valueHint: 'SPAN' },
    binary: { type: 'string', description: 'the containai-host the timer runs, outside the install root (default: this one, by its real path)', valueHint: 'FILE' },
    'update-from': { type: 'string', description: 'also write containai-update.service and .timer, running update from this repository, oci://REGISTRY/REPO', valueHint: 'oci://REGISTRY/REPO' },
    channel: { type: 'string', description: 'the channel the update timer follows (with --update-from)', valueHint: 'C' },
    'update-interval': { type: 'string', description: 'how often the update timer polls the channel, a systemd time span (jittered by up to half, at most 30min)', default: DEFAULT_UPDATE_INTERVAL, valueHint: 'SPAN' },
    'rollout-signer-workflow': { type: 'string', description: 'the workflow that attests rollout statements, passed to update (with --update-from)', valueHint: '[HOST/]OWNER/REPO/PATH' },
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
    const result = await installHealthTimer(units, { unitDir: args['unit-dir'] }, updateUnits(args, units));
    tell(result, args.json === true, 'wrote');
  },
});

/** The update units' options, when --update-from asks for them; every value checked before a file is written. */
function updateUnits(
  args: { 'update-from'?: string; channel?: string; 'update-interval': string; 'rollout-signer-workflow'?: string; repo?: string; owner?: string },
  units: { installRoot: string; binary: string; policyArgs: string[] },
): UpdateUnitOptions | undefined {
  const given = [args.channel !== undefined && '--channel', args['rollout-signer-workflow'] !== undefined && '--rollout-signer-workflow'].filter(Boolean);
  if (args['update-from'] === undefined) {
    if (given.length) throw usageError(`${given.join(' and ')} ${given.length === 1 ? 'is' : 'are'} for the update timer: give --update-from oci://REGISTRY/REPO too`);
    return undefined;
  }
  const from = parseRegistryReference(args['update-from'], '--update-from');
  if (from.tag || from.digest) throw usageError(`--update-from names a tag or digest (${formatReference(from)}); the channel is given with --channel`, 'e.g. --update-from oci://ghcr.io/acme/containai-release --channel stable');
  if (args.channel === undefined) throw usageError('--update-from needs --channel C, the channel the hosts follow', 'e.g. --channel stable');
  const channel = assertTag(args.channel, '--channel');
  const policyArgs = [...units.policyArgs];
  if (args['rollout-signer-workflow'] !== undefined) {
    // Validated as the policy flag it becomes (with --repo or --owner), then written as a unit word.
    const { signerWorkflow } = policyFromArgs({ ...args, 'signer-workflow': args['rollout-signer-workflow'] });
    policyArgs.push('--rollout-signer-workflow', unitWord(signerWorkflow as string, '--rollout-signer-workflow'));
  }
  return { installRoot: units.installRoot, binary: units.binary, interval: parseInterval(args['update-interval'], '--update-interval'), from: unitWord(formatReference(from), '--update-from'), channel, policyArgs };
}

const uninstall = defineCommand({
  meta: { name: 'uninstall', description: 'Disable the health and update timers and remove their units; with none installed, says so and exits 0.' },
  args: { ...unitDirArgs, ...jsonArgs },
  async run({ args }) {
    tell(await uninstallHealthTimer({ unitDir: args['unit-dir'] }), args.json === true, 'removed');
  },
});

export default defineCommand({
  meta: { name: 'systemd', description: 'Install or remove the systemd timers that run check-health and update.' },
  subCommands: { install, uninstall },
});
