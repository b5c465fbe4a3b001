import { defineCommand } from 'citty';
import { z } from 'zod';
import { printJson, printResult } from '../../lib/cli/output.ts';
import { gateSpanMs } from '../../lib/gate/span.ts';
import { usageError } from '../../lib/errors.ts';
import { assertTag, parseRegistryReference } from '../../lib/oci/reference.ts';
import { assertInstallRootAllowed } from '../../lib/release/guard.ts';
import { machineIdFile } from '../../lib/rollout/bucket.ts';
import { runUpdate, UpdateRefusal, type UpdateResult } from '../../lib/rollout/update.ts';
import { policyFromArgs } from '../../lib/trust/policy.ts';
import { probeDirArgs } from '../_shared.ts';
import { installRootArgs, jsonArgs, lockArgs, lockWaitMs, nonrootArgs, policyArgs, trustDirArgs } from './_release.ts';

export default defineCommand({
  meta: {
    name: 'update',
    description:
      'Follow a rollout channel (what the update timer runs): one HEAD on the channel tag; when it moved, verify its rollout statement (a lower sequence than seen is refused); then current, halted, expired, wait (the ramp has not reached this host), skip (bad or below the floor) or install with the health gate.',
  },
  args: {
    from: { type: 'string', description: 'the release repository, oci://REGISTRY/REPO (no tag)', required: true, valueHint: 'oci://REGISTRY/REPO' },
    channel: { type: 'string', description: 'the channel tag to follow, e.g. stable', required: true, valueHint: 'C' },
    gate: { type: 'string', description: 'how long a release it installs stays on trial (a systemd time span)', default: '10min', valueHint: 'SPAN' },
    'no-gate': { type: 'boolean', description: 'activate what it installs without a trial' },
    'rollout-signer-workflow': {
      type: 'string',
      description: 'the workflow that attests rollout statements, [HOST/]OWNER/REPO/PATH[@REF] (default: --signer-workflow); with --repo or --owner',
      valueHint: '[HOST/]OWNER/REPO/PATH',
    },
    ...probeDirArgs,
    ...installRootArgs,
    ...nonrootArgs,
    ...lockArgs,
    ...policyArgs,
    ...trustDirArgs,
    ...jsonArgs,
  },
  async run({ args, rawArgs }) {
    // The timer runs this on every host every interval: each state file and statement is parsed once per
    // process, so zod's JIT would compile schemas for a single use (as gate status found).
    z.config({ jitless: true });
    const policy = policyFromArgs(args);
    const rolloutSignerWorkflow = args['rollout-signer-workflow'] ? policyFromArgs({ ...args, 'signer-workflow': args['rollout-signer-workflow'] }).signerWorkflow : undefined;
    const from = parseRegistryReference(args.from, '--from');
    const channel = assertTag(args.channel, '--channel');
    // citty reads --no-gate as gate=false; the flag is declared for --help and the reference.
    const noGate = rawArgs.includes('--no-gate');
    if (noGate && rawArgs.some((a) => a === '--gate' || a.startsWith('--gate='))) throw usageError('give --gate SPAN or --no-gate, not both');
    const gate = noGate ? ('off' as const) : { spanMs: gateSpanMs(String(args.gate)) };
    const installRoot = await assertInstallRootAllowed(args['install-root'], { allowNonroot: Boolean(args['allow-nonroot']) });
    const json = args.json === true;
    try {
      const result = await runUpdate({ installRoot, from, channel, policy, rolloutSignerWorkflow, gate, probeDir: args['probe-dir'], lockWaitMs: lockWaitMs(args['lock-wait']), machineIdFile: machineIdFile() });
      report(result, json);
    } catch (err) {
      if (!(err instanceof UpdateRefusal)) throw err;
      if (json) printJson(err.result);
      throw err.error;
    }
  },
});

function report(result: UpdateResult, json: boolean): void {
  const s = result.statement;
  const what = s ? ` (${s.version}, sequence ${s.sequence}${result.moved ? '' : ', unchanged'})` : '';
  printResult(`${result.channel}: ${result.decision}${what}: ${result.reason}`, { json });
  if (json) printJson(result);
}
