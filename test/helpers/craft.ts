/**
 * Releases of the current format made byte by byte (tar headers from
 * archives.ts), so a test can hold what containai-build never writes: a
 * manifest that lies, an entry it does not list, a payload in another order, a
 * signature by another key. craftRelease builds the good release from a tree
 * spec; its options bend one thing at a time. Signing uses test keys and the
 * test CA (signing.ts), checked by the production verifier as it is.
 */
import { createHash, sign } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatReleaseJson, type ReleaseEntry } from '../../lib/manifest/release-json.ts';
import { buildTarGz, type TarSpec } from './archives.ts';
import type { AttestOptions, TestCA, TestKeyPair } from './signing.ts';

/** A file (content, or content and mode), a folder, or a symlink; parents are made implicitly. */
export type CraftSpec = Record<string, string | { content: string | Uint8Array; mode: number } | { symlink: string } | { dir: true }>;

export const SMALL_TREE: CraftSpec = {
  'README.md': '# ContainAI\n',
  'host/profile.env': 'PROFILE=dev\nIMAGE_PREFIX=containai-dev\nIMAGE_TAG=devlocal\n',
  'host/utils/health.sh': { content: '#!/bin/sh\necho healthy\n', mode: 0o755 },
  'host/utils/README.txt': 'helper scripts\n',
  'host/utils/latest': { symlink: 'health.sh' },
};

export interface CraftOptions {
  version: string;
  tree?: CraftSpec;
  /** Sign SHA256SUMS with this key (SHA256SUMS.sigstore.json and SHA256SUMS.sig). */
  key?: TestKeyPair;
  /** Attest SHA256SUMS with this test CA (attestation.intoto.jsonl). */
  ca?: TestCA;
  attest?: AttestOptions;
  /** The version release.json names (default: version): a replayed old release. */
  releaseJsonVersion?: string;
  /** Change release.json's entries after they were computed (before SHA256SUMS is). */
  editEntries?: (entries: Map<string, ReleaseEntry>) => void;
  /** Change release.json's text after it was written and before SHA256SUMS is computed (its line then matches it). */
  editReleaseJson?: (text: string) => string;
  /** Change SHA256SUMS's text after it was computed and before it is signed. */
  editSums?: (text: string) => string;
  /** Change the payload's tar entries after everything was computed and signed (the signature stays). */
  editPayload?: (entries: TarSpec[]) => TarSpec[];
  /**
   * Make payload.tar.gz's bytes from its entries (after editPayload) instead of buildTarGz: for a
   * payload whose tail is raw bytes (a gzip bomb after the manifest's two files).
   */
  payloadBytes?: (entries: TarSpec[]) => Buffer;
  /** Extra bundle members, or members replaced (e.g. a stray SHA256SUMS.sig). */
  members?: Record<string, string | Uint8Array>;
  /** Bundle members left out (e.g. payload.sha256). */
  omit?: string[];
}

export interface Crafted {
  version: string;
  bundle: string;
  sums: string;
  sumsSha256: string;
  payload: Buffer;
  releaseJson: string;
}

const sha256 = (data: string | Uint8Array) => createHash('sha256').update(data).digest('hex');
const bytes = (c: string | Uint8Array) => (typeof c === 'string' ? Buffer.from(c) : Buffer.from(c));

/** Every entry of the tree with parents made explicit, sorted by path. */
function normalise(tree: CraftSpec): Map<string, CraftSpec[string]> {
  const out = new Map<string, CraftSpec[string]>();
  for (const [path, value] of Object.entries(tree)) {
    const parts = path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      if (!out.has(dir)) out.set(dir, { dir: true });
    }
    out.set(path, value);
  }
  return new Map([...out].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/**
 * A key signature of SHA256SUMS's bytes as `containai-build sign` writes it: SHA256SUMS.sigstore.json
 * (a Sigstore bundle v0.3 with a message signature and the key's hint) and SHA256SUMS.sig (base64).
 */
export function keySignature(key: TestKeyPair, sums: string | Uint8Array): { sigstoreBundle: string; sig: string } {
  const signature = sign(key.privateKey.asymmetricKeyType === 'ed25519' ? null : 'sha256', Buffer.from(sums), key.privateKey).toString('base64');
  const hint = sha256(key.publicKey.export({ type: 'spki', format: 'der' }) as Buffer);
  const bundle = {
    mediaType: 'application/vnd.dev.sigstore.bundle.v0.3+json',
    verificationMaterial: { publicKey: { hint }, tlogEntries: [], timestampVerificationData: { rfc3161Timestamps: [] } },
    messageSignature: { messageDigest: { algorithm: 'SHA2_256', digest: Buffer.from(sha256(sums), 'hex').toString('base64') }, signature },
  };
  return { sigstoreBundle: `${JSON.stringify(bundle)}\n`, sig: signature };
}

export function craftRelease(dir: string, options: CraftOptions): Crafted {
  const tree = normalise(options.tree ?? SMALL_TREE);
  const entries = new Map<string, ReleaseEntry>();
  const tar: TarSpec[] = [];
  const fileBodies = new Map<string, Buffer>();
  for (const [path, value] of tree) {
    if (typeof value === 'string' || 'content' in value) {
      const mode = typeof value === 'string' ? 0o644 : value.mode;
      const body = bytes(typeof value === 'string' ? value : value.content);
      entries.set(path, { type: 'file', mode: (mode & 0o111) !== 0 ? '0755' : '0644' });
      fileBodies.set(path, body);
      tar.push({ name: `payload/${path}`, body, mode });
    } else if ('symlink' in value) {
      entries.set(path, { type: 'symlink', target: value.symlink });
      tar.push({ name: `payload/${path}`, type: 'symlink', linkname: value.symlink, mode: 0o777 });
    } else {
      entries.set(path, { type: 'dir', mode: '0755' });
      tar.push({ name: `payload/${path}/`, type: 'dir', mode: 0o755 });
    }
  }
  entries.set('SHA256SUMS', { type: 'file', mode: '0644' });
  entries.set('release.json', { type: 'file', mode: '0644' });
  options.editEntries?.(entries);
  let releaseJson = formatReleaseJson(options.releaseJsonVersion ?? options.version, entries);
  if (options.editReleaseJson) releaseJson = options.editReleaseJson(releaseJson);
  fileBodies.set('release.json', Buffer.from(releaseJson));
  const lines = [...fileBodies].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([p, b]) => `${sha256(b)}  ${p}\n`);
  let sums = lines.join('');
  if (options.editSums) sums = options.editSums(sums);
  let payloadEntries: TarSpec[] = [
    { name: 'payload/', type: 'dir', mode: 0o755 },
    { name: 'payload/SHA256SUMS', body: sums, mode: 0o644 },
    { name: 'payload/release.json', body: releaseJson, mode: 0o644 },
    ...tar,
  ];
  if (options.editPayload) payloadEntries = options.editPayload(payloadEntries);
  const payload = options.payloadBytes ? options.payloadBytes(payloadEntries) : buildTarGz(payloadEntries);
  let members: Array<[string, string | Uint8Array]> = [['SHA256SUMS', sums]];
  if (options.ca) members.push(['attestation.intoto.jsonl', `${JSON.stringify(options.ca.attest(sha256(sums), { ...options.attest }))}\n`]);
  if (options.key) {
    const signed = keySignature(options.key, sums);
    members.push(['SHA256SUMS.sigstore.json', signed.sigstoreBundle], ['SHA256SUMS.sig', signed.sig]);
  }
  members.push(['payload.sha256', `${sha256(payload)}  payload.tar.gz\n`], ['payload.tar.gz', payload]);
  for (const [name, body] of Object.entries(options.members ?? {})) {
    const at = members.findIndex(([n]) => n === name);
    if (at >= 0) members[at] = [name, body];
    else members.splice(members.length - 2, 0, [name, body]);
  }
  members = members.filter(([name]) => !options.omit?.includes(name));
  mkdirSync(dir, { recursive: true });
  const bundlePath = join(dir, `containai-${options.version}.tar.gz`);
  writeFileSync(bundlePath, buildTarGz(members.map(([name, body]) => ({ name, body }))));
  return { version: options.version, bundle: bundlePath, sums, sumsSha256: sha256(sums), payload, releaseJson };
}
