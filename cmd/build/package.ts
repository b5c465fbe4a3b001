import { defineCommand } from 'citty';
import { dirname, join, resolve } from 'node:path';
import {
  AGENT_ARCHES,
  AGENT_SUMS_FILE,
  agentAssetName,
  assertSafeVersion,
  bundleFileName,
  PAYLOAD_ARCHIVE,
  PAYLOAD_SHA256,
  RELEASE_FILE,
  SBOM_FILE,
  SUMS_FILE,
} from '../../lib/bundle/layout.ts';
import { formatBytes } from '../../lib/cli/progress.ts';
import { log, printJson } from '../../lib/cli/output.ts';
import { usageError } from '../../lib/errors.ts';
import { discardWork, prepareRelease, publishRelease, RELEASE_STEPS, type SbomSource } from '../../lib/payload/release.ts';
import { defaultVersion } from '../../lib/payload/version.ts';
import { runSteps } from '../../lib/steps.ts';
import { bundleExtraArgs, extraMembers, jsonArgs, payloadSourceArgs, payloadSources, releaseOutArgs } from '../_shared.ts';

export default defineCommand({
  meta: {
    name: 'package',
    description:
      'Build dist/<version>/: payload.tar.gz (SHA256SUMS, release.json, host/, README.md, LICENSE, sbom.json), SHA256SUMS, release.json, payload.sha256, sbom.json, the agents containai-host-linux-x64 and -arm64 with containai-host.SHA256SUMS, and the bundle. Reproducible: entries carry SOURCE_DATE_EPOCH as mtime (1980-01-01 when unset).',
  },
  args: {
    ...releaseOutArgs,
    sbom: { type: 'string', description: 'embed this pre-generated CycloneDX JSON instead of running syft', valueHint: 'FILE' },
    'skip-sbom': { type: 'boolean', description: 'DEVELOPMENT ONLY: ship a minimal SBOM that lists no components (refused for PROFILE=prod)' },
    'agent-dir': {
      type: 'string',
      description: 'the folder holding containai-host-linux-x64 and containai-host-linux-arm64 (default: the folder of containai-build)',
      valueHint: 'DIR',
    },
    ...bundleExtraArgs,
    ...payloadSourceArgs,
    ...jsonArgs,
  },
  async run({ args }) {
    const version = assertSafeVersion(args.version ?? (await defaultVersion()));
    if (args.sbom && args['skip-sbom']) throw usageError('--sbom and --skip-sbom exclude each other', 'pass one of them, or neither to run syft');
    const sbom: SbomSource = args.sbom ? { kind: 'file', path: args.sbom } : args['skip-sbom'] ? { kind: 'skip' } : { kind: 'syft' };
    // `bun scripts/build.ts` leaves the agents beside containai-build in dist/.
    const agentDir = args['agent-dir'] ? resolve(args['agent-dir']) : dirname(process.execPath);
    const where = args['agent-dir'] ? `--agent-dir ${agentDir}` : `the folder of containai-build (${agentDir})`;

    const ctx = await prepareRelease({
      version,
      outDir: resolve(args.out),
      sources: payloadSources(args),
      sbom,
      extras: extraMembers(args),
      agents: { dir: agentDir, where },
    });
    let dir: string;
    let steps;
    try {
      steps = await runSteps(RELEASE_STEPS, ctx);
      dir = await publishRelease(ctx);
    } finally {
      await discardWork(ctx);
    }

    const payload = ctx.payload as { sha256: string; bytes: number };
    log().success(
      `${join(args.out, version)}/ ready: ${PAYLOAD_ARCHIVE} ${formatBytes(payload.bytes)} (${ctx.files} files), ${SUMS_FILE} sha256 ${ctx.sumsSha256?.slice(0, 12)}…, the agents, ${bundleFileName(version)}`,
    );
    if (args.json) {
      printJson({
        ok: true,
        version,
        dir,
        payload: { path: join(dir, PAYLOAD_ARCHIVE), sha256: payload.sha256, bytes: payload.bytes, files: ctx.files },
        payloadSha256: join(dir, PAYLOAD_SHA256),
        sums: { path: join(dir, SUMS_FILE), sha256: ctx.sumsSha256 },
        release: join(dir, RELEASE_FILE),
        sbom: { path: join(dir, SBOM_FILE), source: sbom.kind },
        agents: Object.fromEntries(AGENT_ARCHES.map((arch) => [arch, join(dir, agentAssetName(arch))])),
        agentSums: join(dir, AGENT_SUMS_FILE),
        bundle: join(dir, bundleFileName(version)),
        steps,
      });
    }
  },
});
