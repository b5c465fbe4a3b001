/**
 * An installed release built by hand after SPEC "The host", for tests and the
 * benchmark that need one before (or without) running `containai-host install`:
 * releases/<v>/ holding the payload tree with SHA256SUMS and release.json (every
 * entry with its type, mode or link target), and .containai/ with install.json
 * (format 2, manifestSha256) and, when signed, the signature material over
 * SHA256SUMS; `current` pointing at it. The same verifier that judges a real
 * install judges it (check-health, the gate, --verify-only).
 */
import { chmodSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { comparePaths, formatSums, sha256Bytes } from '../../lib/digest.ts';
import { formatReleaseJson, type ReleaseEntry } from '../../lib/manifest/release-json.ts';
import { keySignature } from './craft.ts';
import type { TestKeyPair } from './signing.ts';

/** A file's content, or its content and mode (0644 or 0755), or a symlink. */
export type HandFile = string | { content: string; mode: number } | { symlink: string };

export interface HandInstallOptions {
  version?: string;
  profile?: string;
  /** Files of the payload tree, relative path → content (added to, or replacing, the default ones). */
  files?: Record<string, HandFile>;
  /** A binary placed at tools/containai-host (the benchmark times the real agent from the release). */
  hostBinary?: string;
  /** Sign SHA256SUMS with this key: .containai/ keeps SHA256SUMS.sigstore.json and SHA256SUMS.sig. UNSIGNED otherwise. */
  key?: TestKeyPair;
  /** The version release.json names (default: version); null leaves release.json out (and out of SHA256SUMS). */
  payloadVersion?: string | null;
}

export const DEV_PROFILE = 'PROFILE=dev\nIMAGE_PREFIX=containai\nIMAGE_TAG=devlocal\n';

const keyId = (key: TestKeyPair) => sha256Bytes(key.publicKey.export({ type: 'spki', format: 'der' }) as Buffer);

export function handInstall(root: string, options: HandInstallOptions = {}): { dir: string; version: string } {
  const version = options.version ?? 'v1.0.0';
  const payloadVersion = options.payloadVersion === undefined ? version : options.payloadVersion;
  const files: Record<string, HandFile> = {
    'host/profile.env': options.profile ?? DEV_PROFILE,
    'host/README.md': 'ContainAI host tree\n',
    'host/utils/health.sh': { content: '#!/bin/sh\necho healthy\n', mode: 0o755 },
    'host/utils/latest': { symlink: 'health.sh' },
    ...options.files,
  };
  const dir = join(root, 'releases', version);
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  chmodSync(dir, 0o755);
  const entries = new Map<string, ReleaseEntry>();
  const addParents = (rel: string) => {
    for (let parent = dirname(rel); parent !== '.'; parent = dirname(parent)) {
      if (entries.has(parent)) break;
      mkdirSync(join(dir, parent), { recursive: true, mode: 0o755 });
      entries.set(parent, { type: 'dir', mode: '0755' });
    }
  };
  const writeFile = (rel: string, content: string | Buffer, mode: number) => {
    addParents(rel);
    writeFileSync(join(dir, rel), content, { mode });
    chmodSync(join(dir, rel), mode);
    entries.set(rel, { type: 'file', mode: mode === 0o755 ? '0755' : '0644' });
  };
  for (const [rel, spec] of Object.entries(files)) {
    if (typeof spec === 'string') writeFile(rel, spec, 0o644);
    else if ('symlink' in spec) {
      addParents(rel);
      symlinkSync(spec.symlink, join(dir, rel));
      entries.set(rel, { type: 'symlink', target: spec.symlink });
    } else writeFile(rel, spec.content, spec.mode);
  }
  if (options.hostBinary) writeFile('tools/containai-host', readFileSync(options.hostBinary), 0o755);
  entries.set('SHA256SUMS', { type: 'file', mode: '0644' });
  if (payloadVersion !== null) {
    entries.set('release.json', { type: 'file', mode: '0644' });
    writeFileSync(join(dir, 'release.json'), formatReleaseJson(payloadVersion, entries), { mode: 0o644 });
  }
  const listed = [...entries].filter(([rel, e]) => e.type === 'file' && rel !== 'SHA256SUMS').map(([rel]) => rel).sort(comparePaths);
  const sums = formatSums(listed.map((path) => ({ path, sha256: sha256Bytes(readFileSync(join(dir, path))) })));
  writeFileSync(join(dir, 'SHA256SUMS'), sums, { mode: 0o644 });

  const kept = join(dir, '.containai');
  mkdirSync(kept, { mode: 0o755 });
  if (options.key) {
    const signed = keySignature(options.key, sums);
    writeFileSync(join(kept, 'SHA256SUMS.sigstore.json'), signed.sigstoreBundle, { mode: 0o644 });
    writeFileSync(join(kept, 'SHA256SUMS.sig'), signed.sig, { mode: 0o644 });
  }
  writeFileSync(
    join(kept, 'install.json'),
    `${JSON.stringify({
      format: 2,
      version,
      source: `/srv/releases/containai-${version}.tar.gz`,
      signer: options.key ? { kind: 'key', keyId: keyId(options.key) } : 'UNSIGNED',
      installedAt: '2026-11-27T00:00:00Z',
      installedBy: 'test',
      manifestSha256: sha256Bytes(Buffer.from(sums)),
    }, null, 2)}\n`,
    { mode: 0o644 },
  );
  symlinkSync(`releases/${version}`, join(root, 'current'));
  return { dir, version };
}

/**
 * Changes a file of an installed release and rewrites its line in the
 * release's SHA256SUMS to match: the tampering a check of the tree against its
 * own SHA256SUMS cannot see. With `andRecord`, install.json's manifestSha256 is
 * rewritten too, as whoever can write the release can: then only the kept
 * signature over SHA256SUMS can tell.
 */
export function tamperWithSums(releaseDir: string, rel: string, text: string, options: { andRecord?: boolean } = {}): void {
  writeFileSync(join(releaseDir, rel), text);
  const sumsPath = join(releaseDir, 'SHA256SUMS');
  const lines = readFileSync(sumsPath, 'utf8').split('\n');
  const at = lines.findIndex((line) => line.endsWith(`  ${rel}`));
  if (at < 0) throw new Error(`${rel} is not listed in ${sumsPath}`);
  lines[at] = `${sha256Bytes(Buffer.from(text))}  ${rel}`;
  writeFileSync(sumsPath, lines.join('\n'));
  if (options.andRecord) {
    const recordPath = join(releaseDir, '.containai', 'install.json');
    const record = JSON.parse(readFileSync(recordPath, 'utf8'));
    writeFileSync(recordPath, JSON.stringify({ ...record, manifestSha256: sha256Bytes(readFileSync(sumsPath)) }, null, 2));
  }
}
