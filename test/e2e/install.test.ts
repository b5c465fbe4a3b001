/**
 * containai-host install / rollback / status / prune through the compiled
 * binary, with releases of the current format (test/helpers/craft.ts). Every
 * refusal also checks that nothing was lost or half-written: current still
 * names the old complete release (checked against its own manifest here,
 * independently of the code under test) and no staging is left.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { chmodSync, chownSync, existsSync, linkSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { garbage, gzipBomb, hostilePayloads, type TarSpec, truncate } from '../helpers/archives.ts';
import { expectNoStack, host, removeDir, tempDir } from '../helpers/cli.ts';
import { craftRelease, type CraftSpec } from '../helpers/craft.ts';
import { expectIntact, makeTestBundle, testTree } from '../helpers/release-server.ts';
import { tamperWithSums } from '../helpers/installed-release.ts';
import { acquireLock } from '../../lib/release/lock.ts';
import { installLayout } from '../../lib/release/layout.ts';

const dirs: string[] = [];
afterAll(() => dirs.forEach(removeDir));
function scratch(): string {
  const d = tempDir('cai-install-');
  dirs.push(d);
  return d;
}

let assets: string;
beforeAll(() => {
  assets = scratch();
  for (const v of ['v1.0.0', 'v1.1.0', 'v1.2.0', 'v2.0.0']) makeTestBundle(assets, v);
});

const UNSIGNED = ['--allow-unsigned', '--allow-nonroot'];
const sha256 = (bytes: Uint8Array | string) => createHash('sha256').update(bytes).digest('hex');

function install(root: string, version: string, ...extra: string[]) {
  return host(['install', '--version', version, '--asset-dir', assets, '--install-root', root, ...UNSIGNED, ...extra]);
}

function events(root: string): Array<Record<string, unknown>> {
  return readFileSync(join(root, 'state', 'events.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
}

async function freshRoot(version = 'v1.0.0'): Promise<string> {
  const root = join(scratch(), 'opt');
  const r = await install(root, version);
  expect(r.code, r.stderr).toBe(0);
  return root;
}

/** A member of a bundle, read with the system's tar (not the code under test). */
function bundleMember(bundle: string, member: string): Buffer {
  const r = Bun.spawnSync(['tar', '-xzOf', bundle, member], { stdout: 'pipe', stderr: 'pipe' });
  if (r.exitCode !== 0) throw new Error(`tar -xzOf ${bundle} ${member}: ${r.stderr.toString()}`);
  return r.stdout;
}

describe('install', () => {
  test('installs from --asset-dir, keeps the manifest and install.json in .containai/ (not the bundle), logs the event', async () => {
    const root = join(scratch(), 'opt');
    const r = await install(root, 'v1.0.0', '--json');
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc).toMatchObject({ ok: true, outcome: 'installed', version: 'v1.0.0', signer: 'UNSIGNED', format: 2 });
    expect(doc.steps.map((s: { name: string }) => s.name)).toEqual(['fetch', 'verify', 'decide', 'extract', 'keep', 'sync', 'floor', 'place', 'activate']);
    expectIntact(root, 'v1.0.0');
    expect(lstatSync(join(root, 'current')).isSymbolicLink()).toBe(true);
    expect(existsSync(join(root, 'previous'))).toBe(false);
    const bundle = join(assets, 'containai-v1.0.0.tar.gz');
    const record = JSON.parse(readFileSync(join(root, 'releases/v1.0.0/.containai/install.json'), 'utf8'));
    expect(record).toMatchObject({ format: 2, version: 'v1.0.0', signer: 'UNSIGNED', source: bundle });
    // What is recorded and kept is the manifest the bundle carried, not the bundle: the tree's
    // SHA256SUMS is the bundle's, byte for byte, and no copy of the bundle stays behind.
    expect(record.manifestSha256).toBe(sha256(bundleMember(bundle, 'SHA256SUMS')));
    expect(readFileSync(join(root, 'releases/v1.0.0/SHA256SUMS')).equals(bundleMember(bundle, 'SHA256SUMS'))).toBe(true);
    expect(readdirSync(join(root, 'releases/v1.0.0/.containai'))).toEqual(['install.json']);
    expect(readdirSync(join(root, 'releases/v1.0.0')).filter((n) => n.endsWith('.tar.gz'))).toEqual([]);
    expect(events(root).at(-1)).toMatchObject({ action: 'install', version: 'v1.0.0', outcome: 'ok' });
  });

  test('a second version becomes current and the first previous; status lists both', async () => {
    const root = await freshRoot();
    expect((await install(root, 'v1.1.0')).code).toBe(0);
    expectIntact(root, 'v1.1.0');
    expect(readlinkSync(join(root, 'previous'))).toBe('releases/v1.0.0');
    const status = await host(['status', '--install-root', root, '--json']);
    expect(status.code).toBe(0);
    const doc = JSON.parse(status.stdout);
    expect(doc.current).toBe('v1.1.0');
    expect(doc.previous).toBe('v1.0.0');
    expect(doc.releases.map((r: { version: string }) => r.version)).toEqual(['v1.0.0', 'v1.1.0']);
    expect(doc.releases[0].signerText).toBe('UNSIGNED');
    expect(doc.releases[0].bytes).toBeGreaterThan(0);
    const human = await host(['status', '--install-root', root]);
    expect(human.stdout).toContain('current:  v1.1.0');
    expect(human.stdout).toContain('UNSIGNED');
  });

  test('the version already current is verified and left untouched; --force replaces it atomically', async () => {
    const root = await freshRoot();
    expect((await install(root, 'v1.1.0')).code).toBe(0);
    const before = lstatSync(join(root, 'releases/v1.1.0')).ino;
    const again = await install(root, 'v1.1.0');
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('already current');
    expect(lstatSync(join(root, 'releases/v1.1.0')).ino).toBe(before);
    const forced = await install(root, 'v1.1.0', '--force');
    expect(forced.code, forced.stderr).toBe(0);
    expect(readlinkSync(join(root, 'current'))).toBe('releases/v1.1.0@2');
    expect(readlinkSync(join(root, 'previous'))).toBe('releases/v1.0.0');
    expect(existsSync(join(root, 'releases/v1.1.0'))).toBe(false);
    expectIntact(root, 'v1.1.0');
    // A tampered current is not reported as fine.
    writeFileSync(join(root, 'current', 'README.md'), 'tampered');
    const bad = await install(root, 'v1.1.0');
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('--force');
  });

  test('a downgrade is refused unless --allow-downgrade, and deleting releases does not lower the floor', async () => {
    const root = await freshRoot('v1.2.0');
    const r = await install(root, 'v1.0.0');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('downgrade');
    expectIntact(root, 'v1.2.0');
    // Even with every release gone the floor remains.
    expect((await install(root, 'v2.0.0')).code).toBe(0);
    rmSync(join(root, 'releases/v1.2.0'), { recursive: true });
    rmSync(join(root, 'previous'));
    expect((await install(root, 'v1.1.0')).code).toBe(1);
    expectIntact(root, 'v2.0.0');
    const allowed = await install(root, 'v1.1.0', '--allow-downgrade');
    expect(allowed.code, allowed.stderr).toBe(0);
    expectIntact(root, 'v1.1.0');
    expect(events(root).some((e) => e.outcome === 'refused' && String(e.reason).includes('downgrade'))).toBe(true);
  });

  test('unsigned bundles are refused without --allow-unsigned', async () => {
    const root = await freshRoot();
    const r = await host(['install', '--version', 'v1.1.0', '--asset-dir', assets, '--install-root', root, '--allow-nonroot']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('SHA256SUMS is unsigned');
    expectIntact(root, 'v1.0.0');
  });

  test('stale staging folders and temp links from a crash are removed by the next run', async () => {
    const root = await freshRoot();
    mkdirSync(join(root, 'releases/.staging-v9-abc/tree'), { recursive: true });
    symlinkSync('releases/v1.0.0', join(root, '.tmp-current-1-dead'));
    expect((await install(root, 'v1.1.0')).code).toBe(0);
    expectIntact(root, 'v1.1.0');
  });
});

/** A payload's manifest entries as craftRelease writes them: the top folder, SHA256SUMS, release.json. */
const MANIFEST_ENTRIES = 3;

/**
 * A release of the current format whose payload opens with a good manifest (SHA256SUMS and
 * release.json, both as signed) and then holds the hostile entries: the extractor's structural
 * policy judges each entry before the manifest's checks do, so the hostile entry meets it first.
 */
function hostileRelease(dir: string, hostile: readonly TarSpec[], tree?: CraftSpec): string {
  const rest = hostile.filter((e) => e.name !== 'payload/');
  return craftRelease(dir, {
    version: 'v1.2.0',
    tree: tree ?? testTree('v1.2.0'),
    editPayload: (entries) => [...entries.slice(0, MANIFEST_ENTRIES), ...rest, ...entries.slice(MANIFEST_ENTRIES)],
  }).bundle;
}

describe('bad input changes nothing', () => {
  const outsideDir = () => {
    const d = join(scratch(), 'outside');
    mkdirSync(d);
    writeFileSync(join(d, 'target.txt'), 'original');
    return d;
  };

  /** Each case writes containai-v1.2.0.tar.gz into dir and returns its path; the refusal it must meet. */
  const cases: Array<[string, (dir: string, outside: string) => string, RegExp]> = [
    ['path traversal (../)', (d, o) => hostileRelease(d, hostilePayloads.traversal(o)), /"\.\." component/],
    ['an absolute path', (d, o) => hostileRelease(d, hostilePayloads.absolute(o)), /absolute path|outside the top folder/],
    ['a symlink out of the release, then a file written through it', (d, o) => hostileRelease(d, hostilePayloads.symlinkThenWrite(o)), /points to an absolute path/],
    [
      // Listed in the signed manifest too, so no "not listed" can stop it first: release.json itself is refused.
      'a symlink that leaves the release',
      (d) => craftRelease(d, { version: 'v1.2.0', tree: { ...testTree('v1.2.0'), passwd: { symlink: '../../../../../../etc/passwd' } } }).bundle,
      /passwd: -> "\.\.\/\.\.\/\.\.\/\.\.\/\.\.\/\.\.\/etc\/passwd" .*(outside|leaves)/,
    ],
    ['a hardlink to a file outside', (d, o) => hostileRelease(d, hostilePayloads.hardlinkOutside(o)), /is a hardlink/],
    ['a character device', (d) => hostileRelease(d, hostilePayloads.charDevice()), /is a character device/],
    ['a FIFO', (d) => hostileRelease(d, hostilePayloads.fifo()), /is a FIFO/],
    ['a setuid file', (d) => hostileRelease(d, hostilePayloads.setuid()), /setuid bit/],
    ['a setgid file', (d) => hostileRelease(d, hostilePayloads.setgid()), /setgid bit/],
    ['an entry declaring a huge size', (d) => hostileRelease(d, hostilePayloads.hugeDeclaredSize()), /declares 1099511627776 bytes/],
    ['a path 2,000 folders deep', (d) => hostileRelease(d, hostilePayloads.deepPath(2000)), /longer than 1024 bytes/],
    // a.txt is listed, so its first entry passes every check; the second is the same name again.
    ['the same name twice', (d) => hostileRelease(d, hostilePayloads.duplicateFile().slice(2), { ...testTree('v1.2.0'), 'a.txt': 'first' }), /appears twice/],
    [
      // Every one of them listed in the signed manifest: only the entry limit stops it.
      '100,000 tiny entries',
      (d) => craftRelease(d, { version: 'v1.2.0', tree: { ...testTree('v1.2.0'), ...Object.fromEntries(Array.from({ length: 100_000 }, (_, i) => [`many/f${i}`, ''])) } }).bundle,
      /more than 100000 entries/,
    ],
    [
      'a gzip bomb',
      (d) => craftRelease(d, { version: 'v1.2.0', tree: testTree('v1.2.0'), payloadBytes: (entries) => gzipBomb(2 ** 35, entries.slice(0, MANIFEST_ENTRIES)) }).bundle,
      /declares 34359738368 bytes/,
    ],
    ['a bundle with a member SPEC does not name', (d) => makeTestBundle(d, 'v1.2.0', { members: { 'install.sh': '#!/bin/sh\n' } }), /"install.sh" is not a member SPEC names/],
    [
      'a truncated bundle',
      (d) => {
        const path = makeTestBundle(d, 'v1.2.0');
        writeFileSync(path, truncate(readFileSync(path)));
        return path;
      },
      /truncated|unexpected end|cannot be unpacked/,
    ],
    ['a bundle without payload.sha256', (d) => makeTestBundle(d, 'v1.2.0', { omit: 'payload.sha256' }), /lacks payload.sha256/],
    ['a bundle without payload.tar.gz', (d) => makeTestBundle(d, 'v1.2.0', { omit: 'payload.tar.gz' }), /lacks payload.tar.gz/],
    [
      // The first format trusted payload.sha256; now SHA256SUMS is the anchor: another build's payload, with a
      // payload.sha256 that matches it, is refused because its SHA256SUMS is not the one the bundle verified.
      "another build's payload.tar.gz, with a payload.sha256 that matches it",
      (d) => {
        const other = craftRelease(join(d, 'other'), { version: 'v1.2.0', tree: testTree('v1.2.0', { 'host/profile.env': 'IMAGE_PREFIX=mallory\n' }) }).payload;
        return makeTestBundle(d, 'v1.2.0', { members: { 'payload.tar.gz': other, 'payload.sha256': `${sha256(other)}  payload.tar.gz\n` } });
      },
      /SHA256SUMS: is not the SHA256SUMS whose signature was verified/,
    ],
    [
      'garbage',
      (d) => {
        const path = join(d, 'containai-v1.2.0.tar.gz');
        writeFileSync(path, garbage());
        return path;
      },
      /not valid gzip|cannot be unpacked/,
    ],
  ];

  let root: string;
  beforeAll(async () => {
    root = await freshRoot('v1.0.0');
    expect((await install(root, 'v1.1.0')).code).toBe(0);
  });

  test.each(cases)('%s', async (_name, make, message) => {
    const outside = outsideDir();
    const file = make(scratch(), outside);
    const r = await host(['install', '--version', 'v1.2.0', '--bundle', file, '--install-root', root, ...UNSIGNED]);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(message);
    expectNoStack(r.stderr);
    expectIntact(root, 'v1.1.0');
    expect(readlinkSync(join(root, 'previous'))).toBe('releases/v1.0.0');
    expect(existsSync(join(root, 'releases/v1.2.0'))).toBe(false);
    expect(readdirSync(outside)).toEqual(['target.txt']);
    expect(readFileSync(join(outside, 'target.txt'), 'utf8')).toBe('original');
    expect(events(root).at(-1)).toMatchObject({ action: 'install', version: 'v1.2.0', outcome: 'refused' });
  }, 60_000);

  test.each([
    ['a file whose content is not its SHA256SUMS line', { sumsMismatch: true }, 'README.md: content does not match SHA256SUMS'],
    ['a file the manifest does not list', { unlisted: { 'host/extra.sh': 'echo sneaky\n' } }, 'host/extra.sh: not listed in the signed manifest'],
    // install.json lives in .containai/ now: a payload may not hold that name at all.
    ['a payload that writes .containai/install.json itself', { files: { '.containai/install.json': '{}' } }, '.containai: a name the install reserves for itself'],
  ] as const)('%s', async (_name, options, message) => {
    const dir = scratch();
    makeTestBundle(dir, 'v1.2.0', options);
    const r = await host(['install', '--version', 'v1.2.0', '--asset-dir', dir, '--install-root', root, ...UNSIGNED]);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain(message);
    expectIntact(root, 'v1.1.0');
  });

  test('a missing bundle names the file', async () => {
    const r = await host(['install', '--version', 'v7.0.0', '--asset-dir', assets, '--install-root', root, ...UNSIGNED]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('containai-v7.0.0.tar.gz');
    expectIntact(root, 'v1.1.0');
  });

  test('an unsafe --version is refused before anything is read', async () => {
    const r = await host(['install', '--version', '../v1', '--asset-dir', assets, '--install-root', root, ...UNSIGNED]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('safe version');
  });
});

describe('verify-only', () => {
  test('passes on an intact release, fails on a tampered or extra file, and changes nothing', async () => {
    const root = await freshRoot();
    const ok = await host(['install', '--verify-only', '--install-root', root, '--allow-unsigned', '--json']);
    expect(ok.code, ok.stderr).toBe(0);
    // README.md, VERSION, host/profile.env, host/utils/run.sh, release.json and SHA256SUMS itself.
    expect(JSON.parse(ok.stdout)).toMatchObject({ ok: true, filesChecked: 6 });
    // Installed unsigned: without --allow-unsigned that is a problem.
    const strict = await host(['install', '--verify-only', '--install-root', root]);
    expect(strict.code).toBe(1);
    expect(strict.stderr).toContain('unsigned');
    writeFileSync(join(root, 'current', 'host', 'extra'), 'x');
    const extra = await host(['install', '--verify-only', '--install-root', root, '--allow-unsigned']);
    expect(extra.code).toBe(1);
    expect(extra.stderr).toContain('releases/v1.0.0/host/extra: not listed in the signed manifest');
    rmSync(join(root, 'current', 'host', 'extra'));
    writeFileSync(join(root, 'current', 'host', 'profile.env'), 'IMAGE_PREFIX=evil\n');
    const tampered = await host(['install', '--verify-only', '--install-root', root, '--allow-unsigned']);
    expect(tampered.code).toBe(1);
    expect(tampered.stderr).toContain('releases/v1.0.0/host/profile.env: content does not match SHA256SUMS');
    expect(readlinkSync(join(root, 'current'))).toBe('releases/v1.0.0');
    expect(events(root).at(-1)).toMatchObject({ action: 'verify', outcome: 'refused', version: 'v1.0.0' });
  });

  test('a file changed together with its line in SHA256SUMS is found: SHA256SUMS is not the manifest install.json recorded, and nothing changes', async () => {
    // Unsigned, so no signature can tell: the manifest install verified is tied to the tree by install.json's manifestSha256.
    const root = await freshRoot();
    const dir = join(root, 'releases', 'v1.0.0');
    tamperWithSums(dir, 'host/profile.env', 'IMAGE_PREFIX=evil\n');
    const sumsBefore = readFileSync(join(dir, 'SHA256SUMS'));
    const r = await host(['install', '--verify-only', '--install-root', root, '--allow-unsigned']);
    expect(r.code).toBe(1);
    expectNoStack(r.stderr);
    expect(r.stderr).toContain('releases/v1.0.0/SHA256SUMS: is not the manifest .containai/install.json recorded at install');
    expect(readFileSync(join(dir, 'SHA256SUMS'))).toEqual(sumsBefore);
    expect(readFileSync(join(dir, 'host', 'profile.env'), 'utf8')).toBe('IMAGE_PREFIX=evil\n');
    expect(readlinkSync(join(root, 'current'))).toBe('releases/v1.0.0');
  });

  test('a file or folder whose mode is not the one the manifest gives (setuid, group or other writable) fails', async () => {
    const root = await freshRoot();
    const verify = () => host(['install', '--verify-only', '--install-root', root, '--allow-unsigned']);
    expect((await verify()).code).toBe(0);
    const cases: Array<[string, number, number, string]> = [
      ['host/utils/run.sh', 0o4755, 0o755, 'host/utils/run.sh: has mode 4755; the manifest says 0755'],
      ['host/profile.env', 0o666, 0o644, 'host/profile.env: has mode 0666; the manifest says 0644'],
      ['host', 0o775, 0o755, 'host: has mode 0775; the manifest says 0755'],
      ['.', 0o1777, 0o755, 'releases/v1.0.0/.: the release folder has mode 1777'],
    ];
    for (const [rel, bad, good, message] of cases) {
      const path = join(root, 'releases', 'v1.0.0', rel);
      chmodSync(path, bad);
      const r = await verify();
      expect(r.code, rel).toBe(1);
      expect(r.stderr).toContain(message);
      chmodSync(path, good);
    }
    expect((await verify()).code).toBe(0);
  });

  test('a current link that leaves releases/ is reported, not followed', async () => {
    const root = await freshRoot();
    rmSync(join(root, 'current'));
    symlinkSync('/etc', join(root, 'current'));
    const r = await host(['install', '--verify-only', '--install-root', root, '--allow-unsigned']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('not at a folder in releases/');
  });
});

describe('rollback and prune', () => {
  const rollback = (root: string, ...extra: string[]) => host(['rollback', '--install-root', root, '--allow-nonroot', ...extra]);
  const links = (root: string) => ({ current: readlinkSync(join(root, 'current')), previous: readlinkSync(join(root, 'previous')) });

  test('rollback swaps current and previous; without previous it refuses and changes nothing', async () => {
    const root = await freshRoot();
    const none = await rollback(root, '--allow-unsigned');
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('no previous release');
    expectIntact(root, 'v1.0.0');
    expect((await install(root, 'v1.1.0')).code).toBe(0);
    const r = await rollback(root, '--allow-unsigned', '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ current: 'v1.0.0', previous: 'v1.1.0' });
    expectIntact(root, 'v1.0.0');
    expect(readlinkSync(join(root, 'previous'))).toBe('releases/v1.1.0');
    expect(events(root).at(-1)).toMatchObject({ action: 'rollback', version: 'v1.0.0', outcome: 'ok' });
    // A tampered previous is not put live.
    writeFileSync(join(root, 'previous', 'README.md'), 'tampered');
    const refused = await rollback(root, '--allow-unsigned');
    expect(refused.code).toBe(1);
    expectIntact(root, 'v1.0.0');
  });

  test("a previous whose file and SHA256SUMS line were both changed is refused: SHA256SUMS must be the manifest install.json recorded", async () => {
    const root = await freshRoot();
    expect((await install(root, 'v1.1.0')).code).toBe(0);
    tamperWithSums(join(root, 'releases', 'v1.0.0'), 'README.md', 'tampered, and SHA256SUMS rewritten to match');
    const before = links(root);
    const r = await rollback(root, '--allow-unsigned');
    expect(r.code).toBe(1);
    expectNoStack(r.stderr);
    expect(r.stderr).toContain('cannot roll back: the previous release does not verify');
    expect(r.stderr).toContain('SHA256SUMS');
    expect(links(root)).toEqual(before);
    expectIntact(root, 'v1.1.0');
    expect(events(root).at(-1)).toMatchObject({ action: 'rollback', version: 'v1.0.0', outcome: 'refused' });
  });

  test('an UNSIGNED previous needs --allow-unsigned, as install does', async () => {
    const root = await freshRoot();
    expect((await install(root, 'v1.1.0')).code).toBe(0);
    const before = links(root);
    const r = await rollback(root);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('SHA256SUMS is unsigned');
    expect(r.stderr).toContain('--allow-unsigned');
    expect(links(root)).toEqual(before);
    expect(events(root).at(-1)).toMatchObject({ action: 'rollback', version: 'v1.0.0', outcome: 'refused' });
    // Policy flags without --allow-unsigned refuse it too.
    const named = await rollback(root, '--repo', 'acme/widgets');
    expect(named.code).toBe(1);
    expect(links(root)).toEqual(before);
    expect((await rollback(root, '--allow-unsigned')).code).toBe(0);
    expectIntact(root, 'v1.0.0');
  });

  test('with no policy flags, an UNSIGNED install.json is not believed when the trust dir pins a key', async () => {
    const root = await freshRoot();
    expect((await install(root, 'v1.1.0')).code).toBe(0);
    const trustDir = join(scratch(), 'trust');
    mkdirSync(trustDir);
    writeFileSync(join(trustDir, 'release.pub'), '-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n');
    const before = links(root);
    const r = await rollback(root, '--allow-unsigned', '--trust-dir', trustDir);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('pins');
    expect(links(root)).toEqual(before);
  });

  test('prune keeps the newest N and never current or previous', async () => {
    const root = await freshRoot('v1.0.0');
    for (const v of ['v1.1.0', 'v1.2.0', 'v2.0.0']) expect((await install(root, v)).code).toBe(0);
    // current v1.2.0 (after rollback), previous v2.0.0
    expect((await rollback(root, '--allow-unsigned')).code).toBe(0);
    const r = await host(['prune', '--keep', '0', '--install-root', root, '--allow-nonroot', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).removed.sort()).toEqual(['v1.0.0', 'v1.1.0']);
    expect(readdirSync(join(root, 'releases')).sort()).toEqual(['v1.2.0', 'v2.0.0']);
    expectIntact(root, 'v1.2.0');
    const bad = await host(['prune', '--keep', '-1', '--install-root', root, '--allow-nonroot']);
    expect(bad.code).toBe(2);
  });
});

describe('lock, root and ownership', () => {
  test('a second run says who holds the lock; a lock left by a dead process is taken over', async () => {
    const root = await freshRoot();
    const held = await acquireLock(installLayout(root), 'test holder', 0);
    try {
      const r = await install(root, 'v1.1.0', '--lock-wait', '0');
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`locked by pid ${process.pid} (test holder`);
    } finally {
      held.release();
    }
    writeFileSync(join(root, 'state', 'lock'), JSON.stringify({ pid: 999999, command: 'containai-host install v0', since: '2026-01-01T00:00:00Z' }));
    const r = await install(root, 'v1.1.0', '--lock-wait', '0');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('pid 999999');
    expectIntact(root, 'v1.1.0');
  });

  test('without --allow-nonroot, a root owned by another user or under a home is refused', async () => {
    const root = join(scratch(), 'opt');
    mkdirSync(root);
    chownSync(root, 1234, 1234);
    const r = await host(['install', '--version', 'v1.0.0', '--asset-dir', assets, '--install-root', root, '--allow-unsigned']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('owned by uid 1234');
    expect(readdirSync(root)).toEqual([]);
    const home = await host(['install', '--version', 'v1.0.0', '--asset-dir', assets, '--install-root', '/root/cai-never-created/opt', '--allow-unsigned']);
    expect(home.code).toBe(1);
    expect(home.stderr).toContain('home folder');
    expect(existsSync('/root/cai-never-created')).toBe(false);
    // A root-owned folder outside homes is accepted.
    const good = join(scratch(), 'opt2');
    const ok = await host(['install', '--version', 'v1.0.0', '--asset-dir', assets, '--install-root', good, '--allow-unsigned']);
    expect(ok.code, ok.stderr).toBe(0);
  });
});

describe('links planted under the install root are not followed out of it', () => {
  /** A folder outside the root with things root must not touch; returns a snapshot function. */
  function victimFolder(): { dir: string; snapshot: () => string[] } {
    const dir = join(scratch(), 'victim');
    mkdirSync(join(dir, 'data'), { recursive: true });
    mkdirSync(join(dir, '.staging-keep'));
    writeFileSync(join(dir, 'data', 'file'), 'precious');
    writeFileSync(join(dir, 'precious.txt'), 'precious');
    const snapshot = () =>
      readdirSync(dir, { recursive: true, withFileTypes: true })
        .map((e) => `${join(e.parentPath, e.name).slice(dir.length)}:${e.isFile() ? readFileSync(join(e.parentPath, e.name), 'utf8') : e.isDirectory() ? 'dir' : 'other'}`)
        .sort();
    return { dir, snapshot };
  }

  test('state/lock as a symlink to a file outside: refused, the file is not truncated', async () => {
    const root = await freshRoot();
    const victim = victimFolder();
    rmSync(join(root, 'state', 'lock'), { force: true });
    symlinkSync(join(victim.dir, 'precious.txt'), join(root, 'state', 'lock'));
    const before = victim.snapshot();
    const r = await host(['prune', '--keep', '5', '--install-root', root, '--allow-nonroot']);
    expect(r.code).toBe(1);
    expectNoStack(r.stderr);
    expect(r.stderr).toContain(`${join(root, 'state', 'lock')} is a symlink`);
    expect(victim.snapshot()).toEqual(before);
    expectIntact(root, 'v1.0.0');
  });

  test('state/lock hard-linked to a file outside: refused, the file is not truncated', async () => {
    const root = await freshRoot();
    const victim = victimFolder();
    rmSync(join(root, 'state', 'lock'), { force: true });
    linkSync(join(victim.dir, 'precious.txt'), join(root, 'state', 'lock'));
    const before = victim.snapshot();
    const r = await host(['prune', '--keep', '5', '--install-root', root, '--allow-nonroot']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('hard links');
    expect(victim.snapshot()).toEqual(before);
  });

  test('state/events.jsonl as a symlink: nothing is created or appended outside the root', async () => {
    const root = await freshRoot();
    const victim = victimFolder();
    const events = join(root, 'state', 'events.jsonl');
    rmSync(events);
    symlinkSync(join(victim.dir, 'created-by-root'), events);
    const before = victim.snapshot();
    // The event log is a record, not a gate: the prune itself still runs.
    expect((await host(['prune', '--keep', '5', '--install-root', root, '--allow-nonroot'])).code).toBe(0);
    expect(victim.snapshot()).toEqual(before);
    rmSync(events);
    symlinkSync(join(victim.dir, 'precious.txt'), events);
    writeFileSync(join(root, 'current', 'host', 'extra'), 'x');
    const refused = await host(['install', '--verify-only', '--install-root', root, '--allow-unsigned']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('host/extra: not listed in the signed manifest');
    expect(victim.snapshot()).toEqual(before);
  });

  test('releases/ as a symlink to a folder outside: install, rollback, prune and verify-only refuse and delete nothing there', async () => {
    const root = await freshRoot();
    expect((await install(root, 'v1.1.0')).code).toBe(0);
    const victim = victimFolder();
    // The releases themselves moved into the victim folder, so every link still resolves through the symlink.
    for (const name of readdirSync(join(root, 'releases'))) renameSync(join(root, 'releases', name), join(victim.dir, name));
    rmSync(join(root, 'releases'), { recursive: true });
    symlinkSync(victim.dir, join(root, 'releases'));
    const before = victim.snapshot();
    const runs = {
      prune: await host(['prune', '--keep', '0', '--install-root', root, '--allow-nonroot']),
      rollback: await host(['rollback', '--install-root', root, '--allow-nonroot']),
      install: await install(root, 'v1.2.0'),
      verify: await host(['install', '--verify-only', '--install-root', root, '--allow-unsigned']),
    };
    for (const [name, r] of Object.entries(runs)) {
      expect(r.code, name).toBe(1);
      expectNoStack(r.stderr);
      expect(r.stderr, name).toContain(`${join(root, 'releases')} is a symlink`);
    }
    expect(victim.snapshot()).toEqual(before);
    expect(readlinkSync(join(root, 'current'))).toBe('releases/v1.1.0');
  });

  test('state/ as a symlink to a folder outside: nothing is written there', async () => {
    const root = await freshRoot();
    const victim = victimFolder();
    rmSync(join(root, 'state'), { recursive: true });
    symlinkSync(victim.dir, join(root, 'state'));
    const before = victim.snapshot();
    for (const r of [await install(root, 'v1.1.0'), await host(['prune', '--keep', '0', '--install-root', root, '--allow-nonroot'])]) {
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`${join(root, 'state')} is a symlink`);
    }
    expect(victim.snapshot()).toEqual(before);
    expectIntact(root, 'v1.0.0');
  });
});
