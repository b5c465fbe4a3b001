import { type ArgsDef, defineCommand } from 'citty';
import { dirname, join, resolve } from 'node:path';
import { assertSafeVersion, bundleFileName, PAYLOAD_ARCHIVE, PAYLOAD_SHA256, SBOM_FILE } from '../../lib/bundle/layout.ts';
import { formatBytes } from '../../lib/cli/progress.ts';
import { log, printJson } from '../../lib/cli/output.ts';
import { usageError } from '../../lib/errors.ts';
import { discardWork, type ExtraMember, prepareRelease, publishRelease, RELEASE_STEPS, type SbomSource } from '../../lib/payload/release.ts';
import type { PayloadSources } from '../../lib/payload/stage.ts';
import { defaultVersion } from '../../lib/payload/version.ts';
import { runSteps } from '../../lib/steps.ts';
import { jsonArgs, releaseOutArgs } from '../_shared.ts';

/** The optional bundle members, as the seed's package.sh took them; repack takes the same words. */
export const bundleExtraArgs = {
  attestation: { type: 'string', description: 'add attestation.intoto.jsonl (as `gh attestation download` writes it)', valueHint: 'FILE' },
  'cosign-asset': { type: 'string', description: 'add the cosign binary, shipped as "cosign"', valueHint: 'FILE' },
  'trusted-root': { type: 'string', description: 'add the Sigstore trusted_root.json CI used (recorded, never trusted)', valueHint: 'FILE' },
} as const satisfies ArgsDef;

export function extraMembers(args: { attestation?: string; 'cosign-asset'?: string; 'trusted-root'?: string }): Partial<Record<ExtraMember, string>> {
  const members: Partial<Record<ExtraMember, string>> = {};
  if (args.attestation) members['attestation.intoto.jsonl'] = resolve(args.attestation);
  if (args['cosign-asset']) members.cosign = resolve(args['cosign-asset']);
  if (args['trusted-root']) members['trusted_root.json'] = resolve(args['trusted-root']);
  return members;
}

/** Where the payload's contents come from. */
export const payloadSourceArgs = {
  'host-dir': { type: 'string', description: 'the host tree; README.md and LICENSE are taken from its parent folder', default: 'host', valueHint: 'DIR' },
  'host-binary': { type: 'string', description: 'the containai-host shipped as tools/containai-host (default: beside containai-build)', valueHint: 'FILE' },
} as const satisfies ArgsDef;

export function payloadSources(args: { 'host-dir': string; 'host-binary'?: string }): PayloadSources {
  const hostDir = resolve(args['host-dir']);
  return {
    hostDir,
    // README.md and LICENSE come from the project the host tree belongs to.
    projectDir: dirname(hostDir),
    hostBinary: resolve(args['host-binary'] ?? join(dirname(process.execPath), 'containai-host')),
  };
}

export default defineCommand({
  meta: {
    name: 'package',
    description:
      'Build dist/<version>/: payload.tar.gz (host/, README.md, LICENSE, release.json, sbom.json, tools/containai-host, SHA256SUMS), payload.sha256, sbom.json and the bundle. Reproducible: entries carry SOURCE_DATE_EPOCH as mtime (1980-01-01 when unset).',
  },
  args: {
    ...releaseOutArgs,
    sbom: { type: 'string', description: 'embed this pre-generated CycloneDX JSON instead of running syft', valueHint: 'FILE' },
    'skip-sbom': { type: 'boolean', description: 'DEVELOPMENT ONLY: ship a minimal SBOM that lists no components (refused for PROFILE=prod)' },
    ...bundleExtraArgs,
    ...payloadSourceArgs,
    ...jsonArgs,
  },
  async run({ args }) {
    const version = assertSafeVersion(args.version ?? (await defaultVersion()));
    if (args.sbom && args['skip-sbom']) throw usageError('--sbom and --skip-sbom exclude each other', 'pass one of them, or neither to run syft');
    const sbom: SbomSource = args.sbom ? { kind: 'file', path: args.sbom } : args['skip-sbom'] ? { kind: 'skip' } : { kind: 'syft' };

    const ctx = await prepareRelease({
      version,
      outDir: resolve(args.out),
      sources: payloadSources(args),
      sbom,
      extras: extraMembers(args),
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
    log().success(`${join(args.out, version)}/ ready: ${PAYLOAD_ARCHIVE} ${formatBytes(payload.bytes)} (sha256 ${payload.sha256.slice(0, 12)}…, ${ctx.files} files), ${bundleFileName(version)}`);
    if (args.json) {
      printJson({
        ok: true,
        version,
        dir,
        payload: { path: join(dir, PAYLOAD_ARCHIVE), sha256: payload.sha256, bytes: payload.bytes, files: ctx.files },
        payloadSha256: join(dir, PAYLOAD_SHA256),
        sbom: { path: join(dir, SBOM_FILE), source: sbom.kind },
        bundle: join(dir, bundleFileName(version)),
        steps,
      });
    }
  },
});
