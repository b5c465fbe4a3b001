/** lib/release and lib/github/download in-process: floor, names, links, lock, redirects, sums comparison. */
import { afterAll, describe, expect, test } from 'bun:test';
import { mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { parseBaseUrl, redirectAllowed, releaseAssetUrl } from '../../lib/github/download.ts';
import { activateRelease, readReleaseLink } from '../../lib/release/activate.ts';
import { downgradeReason } from '../../lib/release/floor.ts';
import { compareExtractedWithSums } from '../../lib/release/install.ts';
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

describe('SHA256SUMS against extracted files', () => {
  const h = (c: string) => c.repeat(64);
  const extracted = {
    files: [
      { path: 'a', size: 1, mode: 0o644, sha256: h('a') },
      { path: 'd/b', size: 1, mode: 0o644, sha256: h('b') },
      { path: 'SHA256SUMS', size: 1, mode: 0o644, sha256: h('c') },
    ],
    directories: ['d'],
    symlinks: [{ path: 'd/link', target: '../a' }, { path: 'dirlink', target: 'd' }],
    bytes: 3,
  };
  test('all listed and equal passes; links to listed files or folders need no line', () => {
    expect(compareExtractedWithSums(extracted, `${h('a')}  a\n${h('b')}  d/b\n`, ['install.json'])).toEqual([]);
  });
  test('a mismatch, an unlisted file, a missing file and a reserved name are each named', () => {
    const problems = compareExtractedWithSums(
      { ...extracted, files: [...extracted.files, { path: 'install.json', size: 1, mode: 0o644, sha256: h('e') }] },
      `${h('f')}  a\n${h('b')}  d/b\n${h('0')}  gone\n`,
      ['install.json'],
    );
    expect(problems.join('\n')).toContain('a: content does not match');
    expect(problems.join('\n')).toContain('install.json: the payload may not hold this name');
    expect(problems.join('\n')).toContain('install.json: not listed');
    expect(problems.join('\n')).toContain('gone: listed in SHA256SUMS but missing');
  });
});
