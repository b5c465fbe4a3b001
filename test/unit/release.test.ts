/** lib/release and lib/github/download in-process: floor, names, links, lock, redirects; entries judged against the manifest. */
import { afterAll, describe, expect, test } from 'bun:test';
import { mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { parseBaseUrl, redirectAllowed, releaseAssetUrl } from '../../lib/github/download.ts';
import { activateRelease, readReleaseLink } from '../../lib/release/activate.ts';
import { downgradeReason } from '../../lib/release/floor.ts';
import { formatSums, sha256Bytes } from '../../lib/digest.ts';
import { formatReleaseJson, type ReleaseEntry } from '../../lib/manifest/release-json.ts';
import { EntryJudge, readManifest, type SeenEntry } from '../../lib/manifest/verify.ts';
import { freeReleaseDirName, installLayout, versionOfDir } from '../../lib/release/layout.ts';
import { acquireLock } from '../../lib/release/lock.ts';
import { describeSigner } from '../../lib/release/record.ts';
import { removeDir, tempDir } from '../helpers/cli.ts';

const dirs: string[] = [];
afterAll(() => dirs.forEach(removeDir));

describe('downgrade floor', () => {
  test('semver: below the highest ever installed is refused; equal or above is not', () => {
    const floor = { highest: 'v1.4.0', installs: { 'v1.4.0': '2026-01-02', 'v1.2.0': '2026-01-01' } };
    expect(downgradeReason(floor, 'v1.3.9')).toContain('older than v1.4.0');
    expect(downgradeReason(floor, 'v1.4.0')).toBeUndefined();
    expect(downgradeReason(floor, 'v2.0.0-rc.1')).toBeUndefined();
    expect(downgradeReason({ installs: {} }, 'v1.0.0', ['v1.1.0'])).toContain('older than v1.1.0');
  });
  test('not semver: a version installed before another one is older', () => {
    const floor = { installs: { 'nightly-a': '2026-01-01T00:00:00Z', 'nightly-b': '2026-01-02T00:00:00Z' } };
    expect(downgradeReason(floor, 'nightly-a')).toContain('by install time');
    expect(downgradeReason(floor, 'nightly-b')).toBeUndefined();
    expect(downgradeReason(floor, 'nightly-c')).toBeUndefined();
  });
});

describe('signer descriptions', () => {
  test("a workflow SAN that carries its ref is not given the ref twice; a repository is given it once", () => {
    const san = 'https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.0.0';
    expect(describeSigner({ kind: 'attestation', workflow: san, ref: 'refs/tags/v1.0.0' })).toBe(san);
    expect(describeSigner({ kind: 'attestation', sourceRepository: 'https://github.com/acme/app', ref: 'refs/tags/v1.0.0' })).toBe('https://github.com/acme/app@refs/tags/v1.0.0');
    expect(describeSigner({ kind: 'key', keyId: 'abc' })).toBe('key abc');
    expect(describeSigner('UNSIGNED')).toBe('UNSIGNED');
  });
});

describe('layout names', () => {
  test('a forced reinstall gets the next free copy name; the version is read back from it', () => {
    expect(freeReleaseDirName('v1', new Set())).toBe('v1');
    expect(freeReleaseDirName('v1', new Set(['v1']))).toBe('v1@2');
    expect(freeReleaseDirName('v1', new Set(['v1', 'v1@2']))).toBe('v1@3');
    expect(versionOfDir('v1.2.3@2')).toBe('v1.2.3');
  });
});

describe('links', () => {
  test('activate moves previous only to a different version; links out of releases/ are invalid', async () => {
    const root = tempDir('cai-unit-release-');
    dirs.push(root);
    const layout = installLayout(root);
    for (const d of ['v1', 'v2', 'v2@2']) mkdirSync(join(layout.releases, d), { recursive: true });
    await activateRelease(layout, 'v1');
    await activateRelease(layout, 'v2');
    await activateRelease(layout, 'v2@2');
    expect(await readReleaseLink(layout, 'current')).toMatchObject({ kind: 'release', dirName: 'v2@2' });
    expect(await readReleaseLink(layout, 'previous')).toMatchObject({ kind: 'release', dirName: 'v1' });
    symlinkSync('/etc', join(root, 'evil'));
    const { rmSync } = await import('node:fs');
    rmSync(join(root, 'previous'));
    symlinkSync('releases/../../etc', join(root, 'previous'));
    expect((await readReleaseLink(layout, 'previous')).kind).toBe('invalid');
  });
});

describe('lock', () => {
  test('a second holder is refused with the first one named; release frees it', async () => {
    const root = tempDir('cai-unit-lock-');
    dirs.push(root);
    const layout = installLayout(root);
    const first = await acquireLock(layout, 'first', 0);
    await expect(acquireLock(layout, 'second', 150)).rejects.toThrow(`locked by pid ${process.pid} (first`);
    first.release();
    const second = await acquireLock(layout, 'second', 0);
    second.release();
  });
});

describe('download URLs and redirects', () => {
  test('the base URL is https, or http on loopback only', () => {
    expect(parseBaseUrl('https://github.com').host).toBe('github.com');
    expect(parseBaseUrl('http://127.0.0.1:8080').port).toBe('8080');
    expect(() => parseBaseUrl('http://github.com')).toThrow('must be https://');
    expect(() => parseBaseUrl('https://user:pw@github.com')).toThrow('credentials');
  });
  test('asset URL and repo check', () => {
    expect(releaseAssetUrl(new URL('https://github.com'), 'acme/app', 'v1.0.0', 'containai-v1.0.0.tar.gz').href).toBe(
      'https://github.com/acme/app/releases/download/v1.0.0/containai-v1.0.0.tar.gz',
    );
    expect(() => releaseAssetUrl(new URL('https://github.com'), '../x', 'v1', 'a')).toThrow('OWNER/REPO');
  });
  test('never from https to http; http only between loopback addresses', () => {
    const https = new URL('https://github.com/a');
    expect(redirectAllowed(https, new URL('https://objects.githubusercontent.com/x'))).toBeUndefined();
    expect(redirectAllowed(https, new URL('http://objects.githubusercontent.com/x'))).toContain('plain http');
    expect(redirectAllowed(https, new URL('http://127.0.0.1/x'))).toContain('plain http');
    expect(redirectAllowed(new URL('http://127.0.0.1:1/a'), new URL('http://127.0.0.1:2/b'))).toBeUndefined();
    expect(redirectAllowed(new URL('http://127.0.0.1:1/a'), new URL('http://example.com/b'))).toContain('plain http');
    expect(redirectAllowed(https, new URL('file:///etc/passwd'))).toContain('file:');
  });
});

describe('entries against the manifest (EntryJudge: the one verifier, install and disk alike)', () => {
  // a, d/b and release.json have lines in SHA256SUMS; folders and links are in release.json only.
  const bodies: Record<string, string> = { a: 'A\n', 'd/b': 'B\n' };
  function manifestOf(extra: Record<string, ReleaseEntry> = {}, extraFiles: Record<string, string> = {}) {
    const entries = new Map<string, ReleaseEntry>([
      ['a', { type: 'file', mode: '0644' }],
      ['d', { type: 'dir', mode: '0755' }],
      ['d/b', { type: 'file', mode: '0755' }],
      ['d/link', { type: 'symlink', target: '../a' }],
      ['dirlink', { type: 'symlink', target: 'd' }],
      ['SHA256SUMS', { type: 'file', mode: '0644' }],
      ['release.json', { type: 'file', mode: '0644' }],
      ...Object.entries(extra),
    ]);
    const releaseJson = formatReleaseJson('v1.0.0', entries);
    const files = { ...bodies, ...extraFiles, 'release.json': releaseJson };
    const sums = formatSums(Object.entries(files).map(([path, body]) => ({ path, sha256: sha256Bytes(body) })));
    return readManifest(Buffer.from(sums), Buffer.from(releaseJson), 'v1.0.0');
  }
  const good: SeenEntry[] = [
    { path: 'a', type: 'file', mode: 0o644 },
    { path: 'd', type: 'dir', mode: 0o755 },
    { path: 'd/b', type: 'file', mode: 0o755 },
    { path: 'd/link', type: 'symlink', mode: 0o777, target: '../a' },
    { path: 'dirlink', type: 'symlink', mode: 0o777, target: 'd' },
    { path: 'SHA256SUMS', type: 'file', mode: 0o644 },
    { path: 'release.json', type: 'file', mode: 0o644 },
  ];

  test('all listed with their type, mode, target and digest passes; links to listed files or folders need no line', () => {
    const manifest = manifestOf();
    const judge = new EntryJudge(manifest);
    expect(good.map((e) => judge.entry(e))).toEqual(good.map(() => undefined));
    expect(judge.digest('a', sha256Bytes(bodies.a as string))).toBeUndefined();
    expect(judge.digest('d/b', sha256Bytes(bodies['d/b'] as string))).toBeUndefined();
    expect(judge.digest('SHA256SUMS', manifest.sumsSha256)).toBeUndefined();
    expect(judge.missing()).toEqual([]);
  });

  test('a digest mismatch, an unlisted entry, a missing one, another mode, type or link target are each named', () => {
    const judge = new EntryJudge(manifestOf());
    const problems = [
      judge.entry({ path: 'a', type: 'file', mode: 0o644 }),
      judge.digest('a', sha256Bytes('changed\n')),
      judge.entry({ path: 'install.json', type: 'file', mode: 0o644 }),
      judge.entry({ path: 'd', type: 'dir', mode: 0o775 }),
      judge.entry({ path: 'd/b', type: 'symlink', mode: 0o777, target: '../a' }),
      judge.entry({ path: 'd/link', type: 'symlink', mode: 0o777, target: 'b' }),
      judge.entry({ path: 'a', type: 'file', mode: 0o644 }),
      ...judge.missing(),
    ].map((r) => r?.message);
    expect(problems).toEqual([
      undefined,
      'a: content does not match SHA256SUMS',
      'install.json: not listed in the signed manifest',
      'd: has mode 0775; the manifest says 0755',
      'd/b: is a symlink; the manifest says file',
      'd/link: points to "b"; the manifest says "../a"',
      'a: appears twice',
      'SHA256SUMS: the manifest lists this file, and it is not there',
      'dirlink: the manifest lists this symlink, and it is not there',
      'release.json: the manifest lists this file, and it is not there',
    ]);
  });

  test('a manifest holding a name the install reserves (.containai/) is refused whole', () => {
    expect(() => manifestOf({ '.containai': { type: 'dir', mode: '0755' }, '.containai/install.json': { type: 'file', mode: '0644' } }, { '.containai/install.json': '{}' })).toThrow(
      '.containai: a name the install reserves for itself',
    );
  });
});
