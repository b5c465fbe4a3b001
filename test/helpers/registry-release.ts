/**
 * A small dist/<version>/ of the current release format (DESIGN.md), written
 * directly, for the registry tests: payload.tar.gz (payload/SHA256SUMS and
 * payload/release.json inside), SHA256SUMS and release.json beside it, the
 * two agent files and their sums, and stand-ins for the signature material.
 * The bytes are not a signed release (the registry tests check transport,
 * digests and refusals; the install tests check trust end to end), but every
 * digest and the manifest format are real.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { writeTarGz, type ArchiveEntry } from '../../lib/archive/write.ts';
import {
  AGENT_SUMS_FILE,
  AGENT_SUMS_SIG_FILE,
  AGENT_SUMS_SIGSTORE_FILE,
  ATTESTATION_FILE,
  PAYLOAD_ARCHIVE,
  PAYLOAD_SHA256,
  RELEASE_FILE,
  SUMS_FILE,
  SUMS_SIG_FILE,
  SUMS_SIGSTORE_FILE,
  agentAssetName,
} from '../../lib/bundle/layout.ts';
import { formatSums, sha256Bytes } from '../../lib/digest.ts';
import { formatReleaseJson, type ReleaseEntry } from '../../lib/manifest/release-json.ts';
import { tempDir } from './cli.ts';

export interface RegistryReleaseOptions {
  version?: string;
  /** The folder of releases (default: a new temp folder). */
  out?: string;
  /** Bytes of incompressible data in payload/host/data.bin, to make the payload blob large. */
  payloadBytes?: number;
  /** Write the signature stand-ins (default true). */
  signatures?: boolean;
}

export interface RegistryRelease {
  version: string;
  out: string;
  dir: string;
  payload: string;
  sums: string;
  releaseJson: string;
}

export function makeRegistryRelease(options: RegistryReleaseOptions = {}): Promise<RegistryRelease> {
  return writeRegistryRelease(options);
}

async function writeRegistryRelease(options: RegistryReleaseOptions): Promise<RegistryRelease> {
  const version = options.version ?? 'v1.2.3';
  const out = options.out ?? tempDir('cai-oci-release-');
  const dir = join(out, version);
  const stage = join(tempDir('cai-oci-stage-'), 'payload');
  mkdirSync(dir, { recursive: true });

  const files: Record<string, { content: Uint8Array | string; mode: number }> = {
    'README.md': { content: `# containai ${version}\n`, mode: 0o644 },
    'host/profile.env': { content: 'PROFILE=dev\nIMAGE_PREFIX=containai-dev\nIMAGE_TAG=devlocal\n', mode: 0o644 },
    'host/utils/health.sh': { content: '#!/bin/sh\necho healthy\n', mode: 0o755 },
  };
  if (options.payloadBytes) files['host/data.bin'] = { content: randomBytes(options.payloadBytes), mode: 0o644 };

  const entries = new Map<string, ReleaseEntry>();
  for (const [path, file] of Object.entries(files)) {
    const target = join(stage, path);
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, file.content);
    chmodSync(target, file.mode);
    entries.set(path, { type: 'file', mode: file.mode === 0o755 ? '0755' : '0644' });
    for (let p = dirname(path); p !== '.'; p = dirname(p)) entries.set(p, { type: 'dir', mode: '0755' });
  }
  entries.set(SUMS_FILE, { type: 'file', mode: '0644' });
  entries.set(RELEASE_FILE, { type: 'file', mode: '0644' });
  const releaseJson = formatReleaseJson(version, entries);
  writeFileSync(join(stage, RELEASE_FILE), releaseJson);
  const sums = formatSums([
    ...Object.entries(files).map(([path, f]) => ({ path, sha256: sha256Bytes(f.content) })),
    { path: RELEASE_FILE, sha256: sha256Bytes(releaseJson) },
  ]);
  writeFileSync(join(stage, SUMS_FILE), sums);

  const archive: ArchiveEntry[] = [{ path: 'payload', type: 'directory', mode: 0o755 }];
  for (const [path, entry] of entries) {
    archive.push(entry.type === 'dir' ? { path: `payload/${path}`, type: 'directory', mode: 0o755 } : { path: `payload/${path}`, type: 'file', source: join(stage, path), mode: entry.type === 'file' && entry.mode === '0755' ? 0o755 : 0o644 });
  }
  const payload = join(dir, PAYLOAD_ARCHIVE);
  const written = await writeTarGz(archive, payload, { mtime: 315_532_800 });
  writeFileSync(join(dir, PAYLOAD_SHA256), `${written.sha256}  ${PAYLOAD_ARCHIVE}\n`);
  writeFileSync(join(dir, SUMS_FILE), sums);
  writeFileSync(join(dir, RELEASE_FILE), releaseJson);

  const agentSums: Array<{ path: string; sha256: string }> = [];
  for (const arch of ['x64', 'arm64'] as const) {
    const content = `#!/bin/sh\necho "containai-host ${version} ${arch} (test stand-in)"\n`;
    writeFileSync(join(dir, agentAssetName(arch)), content, { mode: 0o755 });
    agentSums.push({ path: agentAssetName(arch), sha256: sha256Bytes(content) });
  }
  writeFileSync(join(dir, AGENT_SUMS_FILE), formatSums(agentSums));

  if (options.signatures !== false) {
    const bundle = (subject: string) => `${JSON.stringify({ mediaType: 'application/vnd.dev.sigstore.bundle.v0.3+json', testStandIn: subject })}\n`;
    writeFileSync(join(dir, ATTESTATION_FILE), bundle(`attestation of ${SUMS_FILE} ${version}`));
    writeFileSync(join(dir, SUMS_SIGSTORE_FILE), bundle(`signature of ${SUMS_FILE} ${version}`));
    writeFileSync(join(dir, SUMS_SIG_FILE), Buffer.from(`sig ${version}`).toString('base64'));
    writeFileSync(join(dir, AGENT_SUMS_SIGSTORE_FILE), bundle(`signature of ${AGENT_SUMS_FILE} ${version}`));
    writeFileSync(join(dir, AGENT_SUMS_SIG_FILE), Buffer.from(`agent sig ${version}`).toString('base64'));
  }
  return { version, out, dir, payload, sums: join(dir, SUMS_FILE), releaseJson: join(dir, RELEASE_FILE) };
}
