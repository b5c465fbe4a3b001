/**
 * The release manifest as the unit of trust (issue 12), through the compiled
 * containai-host: the manifest is verified before any payload byte is trusted,
 * every entry of the payload is judged against it as it is written, and the
 * same verifier judges the installed tree again (--verify-only, check-health,
 * rollback). Releases are crafted byte by byte (test/helpers/craft.ts) so each
 * test bends exactly one thing.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { chmodSync, existsSync, lstatSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TarSpec } from '../helpers/archives.ts';
import { createHash } from 'node:crypto';
import { binaryPath, host, removeDir, tempDir } from '../helpers/cli.ts';
import { craftRelease, SMALL_TREE } from '../helpers/craft.ts';
import { makeKeyPair, makeTestCA, type TestKeyPair, writeKeyPair } from '../helpers/signing.ts';

let work: string;
let key: TestKeyPair;
let keyFiles: { pub: string; key: string };
let other: TestKeyPair;

beforeAll(() => {
  work = tempDir('cai-manifest-');
  key = makeKeyPair('ecdsa');
  other = makeKeyPair('ecdsa');
  keyFiles = writeKeyPair(work, 'release', key);
});
afterAll(() => removeDir(work));

const rootArgs = (root: string) => ['--install-root', root, '--allow-nonroot'];

/** Everything under a folder, as "path -> kind[ target]" lines: what a refusal must leave untouched. */
function snapshot(root: string): string[] {
  if (!existsSync(root)) return [];
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const name of readdirSync(join(root, rel)).sort()) {
      const path = rel ? `${rel}/${name}` : name;
      if (path === 'state/lock' || path === 'state/events.jsonl') continue;
      const info = lstatSync(join(root, path));
      out.push(`${path} ${info.isSymbolicLink() ? `-> ${readlinkSync(join(root, path))}` : info.isDirectory() ? 'dir' : `${info.size}`}`);
      if (info.isDirectory()) walk(path);
    }
  };
  walk('');
  return out;
}

async function installed(version = 'v1.0.0', extra: Partial<Parameters<typeof craftRelease>[1]> = {}) {
  const dir = tempDir('cai-crafted-');
  const release = craftRelease(dir, { version, key, ...extra });
  const root = join(dir, 'root');
  const r = await host(['install', '--version', version, '--bundle', release.bundle, '--key', keyFiles.pub, ...rootArgs(root)]);
  expect(r.stderr).not.toContain('error:');
  expect(r.code).toBe(0);
  return { dir, root, release, releaseDir: join(root, 'releases', version) };
}

describe('install keeps the manifest, not the bundle', () => {
  test('the release holds the payload tree and .containai/ (install.json and the signature material), a few KB beside it', async () => {
    const { root, releaseDir, release } = await installed();
    expect(readdirSync(join(releaseDir, '.containai')).sort()).toEqual(['SHA256SUMS.sig', 'SHA256SUMS.sigstore.json', 'install.json']);
    const record = JSON.parse(readFileSync(join(releaseDir, '.containai', 'install.json'), 'utf8'));
    expect(record).toMatchObject({ format: 2, version: 'v1.0.0', manifestSha256: release.sumsSha256, signer: { kind: 'key' } });
    expect(readFileSync(join(releaseDir, 'SHA256SUMS'), 'utf8')).toBe(release.sums);
    expect(existsSync(join(releaseDir, 'containai-v1.0.0.tar.gz'))).toBe(false);
    expect(readlinkSync(join(root, 'current'))).toBe('releases/v1.0.0');
    expect(lstatSync(join(releaseDir, 'host/utils/health.sh')).mode & 0o7777).toBe(0o755);
    expect(readlinkSync(join(releaseDir, 'host/utils/latest'))).toBe('health.sh');
    const verify = await host(['install', '--verify-only', '--install-root', root, '--key', keyFiles.pub]);
    expect(verify.code).toBe(0);
    expect(verify.stdout).toContain('v1.0.0 verifies');
  });
});

describe('after install, the same verifier judges the tree', () => {
  const changes: Array<{ name: string; change: (dir: string) => void; entry: string; words: RegExp }> = [
    { name: "one file's content", change: (d) => writeFileSync(join(d, 'host/profile.env'), 'PROFILE=prod\n'), entry: 'host/profile.env', words: /content does not match SHA256SUMS/ },
    { name: 'one mode', change: (d) => chmodSync(join(d, 'host/utils/README.txt'), 0o755), entry: 'host/utils/README.txt', words: /mode 0755; the manifest says 0644/ },
    {
      name: 'one link target',
      change: (d) => {
        unlinkSync(join(d, 'host/utils/latest'));
        symlinkSync('README.txt', join(d, 'host/utils/latest'));
      },
      entry: 'host/utils/latest',
      words: /points to "README.txt"; the manifest says "health.sh"/,
    },
    { name: 'one file added', change: (d) => writeFileSync(join(d, 'host/extra.sh'), 'echo planted\n'), entry: 'host/extra.sh', words: /not listed in the signed manifest/ },
    { name: 'one file removed', change: (d) => rmSync(join(d, 'README.md')), entry: 'README.md', words: /lists this file, and it is not there/ },
    {
      // Link containment compares whole components: v1.0.0-evil is a sibling whose name starts with the release's.
      name: 'a planted link to a sibling folder named like the release',
      change: (d) => symlinkSync('../../v1.0.0-evil', join(d, 'host/planted')),
      entry: 'host/planted',
      words: /not listed in the signed manifest/,
    },
  ];
  for (const c of changes) {
    test(`${c.name}: --verify-only, check-health and rollback each refuse and name the entry`, async () => {
      const { dir, root, releaseDir } = await installed('v1.0.0');
      // A second release, so that rollback has v1.0.0 as previous to judge.
      const second = craftRelease(join(dir, 'two'), { version: 'v1.1.0', key });
      expect((await host(['install', '--version', 'v1.1.0', '--bundle', second.bundle, '--key', keyFiles.pub, ...rootArgs(root)])).code).toBe(0);
      expect((await host(['rollback', ...rootArgs(root), '--key', keyFiles.pub])).code).toBe(0);
      expect(readlinkSync(join(root, 'current'))).toBe('releases/v1.0.0');
      c.change(releaseDir);

      const verify = await host(['install', '--verify-only', '--install-root', root, '--key', keyFiles.pub]);
      expect(verify.code).toBe(1);
      expect(verify.stderr).toContain(`releases/v1.0.0/${c.entry}`);
      expect(verify.stderr).toMatch(c.words);

      const health = await host(['check-health', '--offline', '--json', '--install-root', root, '--key', keyFiles.pub], { env: { DOCKER_HOST: 'unix:///nonexistent.sock' } });
      const report = JSON.parse(health.stdout);
      const check = report.checks.find((x: { id: string }) => x.id === 'release');
      expect(check.status).toBe('fail');
      expect(check.message).toContain(c.entry);
      expect(check.fix).toContain('changed after install');
      expect(check.fix).toContain(c.entry);

      // v1.0.0 is current; make it previous again and roll back to it: refused, nothing changed.
      expect((await host(['install', '--version', 'v1.1.0', '--bundle', second.bundle, '--key', keyFiles.pub, ...rootArgs(root), '--force'])).code).toBe(0);
      const before = snapshot(root);
      const rollback = await host(['rollback', ...rootArgs(root), '--key', keyFiles.pub]);
      expect(rollback.code).toBe(1);
      expect(rollback.stderr).toContain(c.entry);
      expect(snapshot(root)).toEqual(before);
    });
  }
});

describe('the manifest is verified before any payload byte is trusted', () => {
  test('a manifest signed by another key is refused at the signature; the payload is never read', async () => {
    const dir = tempDir('cai-crafted-');
    const release = craftRelease(dir, { version: 'v1.0.0', key: other, members: { 'payload.tar.gz': Buffer.from('this is not gzip, and reading it would say so') } });
    const root = join(dir, 'root');
    const r = await host(['install', '--version', 'v1.0.0', '--bundle', release.bundle, '--key', keyFiles.pub, '--json', ...rootArgs(root)]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/does not verify with any pinned key|signature/);
    expect(r.stderr).not.toMatch(/gzip/);
    expect(existsSync(join(root, 'current'))).toBe(false);
    expect(readdirSync(join(root, 'releases'))).toEqual([]);
  });

  test('a manifest attested for another repository is refused before the payload is read', async () => {
    const dir = tempDir('cai-crafted-');
    const ca = makeTestCA();
    writeFileSync(join(dir, 'root.json'), JSON.stringify(ca.trustedRoot));
    const release = craftRelease(dir, { version: 'v1.0.0', ca, attest: { identity: { repo: 'mallory/widgets' } }, members: { 'payload.tar.gz': Buffer.from('not gzip') } });
    const root = join(dir, 'root');
    const r = await host(['install', '--version', 'v1.0.0', '--bundle', release.bundle, '--repo', 'acme/widgets', '--trusted-root', join(dir, 'root.json'), '--no-public-good', ...rootArgs(root)]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('mallory/widgets');
    expect(r.stderr).not.toMatch(/gzip/);
    expect(readdirSync(join(root, 'releases'))).toEqual([]);
  });

  test('the same manifest attested for this repository installs', async () => {
    const dir = tempDir('cai-crafted-');
    const ca = makeTestCA();
    writeFileSync(join(dir, 'root.json'), JSON.stringify(ca.trustedRoot));
    const release = craftRelease(dir, { version: 'v1.0.0', ca });
    const root = join(dir, 'root');
    const r = await host(['install', '--version', 'v1.0.0', '--bundle', release.bundle, '--repo', 'acme/widgets', '--trusted-root', join(dir, 'root.json'), '--no-public-good', ...rootArgs(root)]);
    expect(r.stderr).not.toContain('error');
    expect(r.code).toBe(0);
    expect(readdirSync(join(root, 'releases', 'v1.0.0', '.containai')).sort()).toEqual(['attestation.intoto.jsonl', 'install.json']);
  });
});

describe('every payload entry is judged as it streams', () => {
  test('an entry the manifest does not list stops extraction at that entry', async () => {
    const dir = tempDir('cai-crafted-');
    // After the unlisted entry comes one that would be refused for another reason if it were ever read.
    const release = craftRelease(dir, {
      version: 'v1.0.0',
      key,
      editPayload: (entries) => {
        const at = entries.findIndex((e) => e.name === 'payload/host/');
        return [...entries.slice(0, at), { name: 'payload/host/unlisted.sh', body: 'echo planted\n', mode: 0o755 }, { name: 'payload/../escape', body: 'x' }, ...entries.slice(at)];
      },
    });
    const root = join(dir, 'root');
    const r = await host(['install', '--version', 'v1.0.0', '--bundle', release.bundle, '--key', keyFiles.pub, ...rootArgs(root)]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('host/unlisted.sh: not listed in the signed manifest');
    expect(r.stderr).not.toContain('escape');
    expect(readdirSync(join(root, 'releases'))).toEqual([]);
  });

  const bent: Array<{ name: string; edit: (entries: TarSpec[]) => TarSpec[]; words: RegExp }> = [
    { name: 'a mode other than the manifest says', edit: (e) => e.map((x) => (x.name === 'payload/host/utils/health.sh' ? { ...x, mode: 0o644 } : x)), words: /host\/utils\/health.sh: has mode 0644; the manifest says 0755/ },
    { name: 'a link target other than the manifest says', edit: (e) => e.map((x) => (x.name === 'payload/host/utils/latest' ? { ...x, linkname: 'README.txt' } : x)), words: /host\/utils\/latest: points to "README.txt"/ },
    { name: "a file's content other than its line", edit: (e) => e.map((x) => (x.name === 'payload/host/profile.env' ? { ...x, body: 'PROFILE=prod\n' } : x)), words: /host\/profile.env: content does not match SHA256SUMS/ },
    { name: 'an entry the manifest lists missing', edit: (e) => e.filter((x) => x.name !== 'payload/README.md'), words: /README.md: the manifest lists this file, and it is not there/ },
    { name: 'a payload that does not open with the manifest', edit: (e) => [e[0], e[3], e[1], e[2], ...e.slice(4)] as TarSpec[], words: /must open with SHA256SUMS and release.json/ },
    { name: 'a SHA256SUMS in the payload other than the signed one', edit: (e) => e.map((x) => (x.name === 'payload/SHA256SUMS' ? { ...x, body: `${x.body}${'0'.repeat(64)}  extra\n` } : x)), words: /SHA256SUMS: is not the SHA256SUMS whose signature was verified/ },
  ];
  for (const c of bent) {
    test(`${c.name} is refused, and nothing is left behind`, async () => {
      const dir = tempDir('cai-crafted-');
      const release = craftRelease(dir, { version: 'v1.0.0', key, editPayload: c.edit });
      const root = join(dir, 'root');
      const r = await host(['install', '--version', 'v1.0.0', '--bundle', release.bundle, '--key', keyFiles.pub, ...rootArgs(root)]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(c.words);
      expect(readdirSync(join(root, 'releases'))).toEqual([]);
      expect(existsSync(join(root, 'current'))).toBe(false);
    });
  }

  test('a signed old release served under a newer version is refused by its release.json', async () => {
    const dir = tempDir('cai-crafted-');
    const release = craftRelease(dir, { version: 'v2.0.0', releaseJsonVersion: 'v1.0.0', key });
    const root = join(dir, 'root');
    const r = await host(['install', '--version', 'v2.0.0', '--bundle', release.bundle, '--key', keyFiles.pub, ...rootArgs(root)]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('this is release v1.0.0 (its release.json), not v2.0.0');
    expect(readdirSync(join(root, 'releases'))).toEqual([]);
  });

  test('a link that passes through another link is refused in the manifest, as the kernel would resolve it differently', async () => {
    const dir = tempDir('cai-crafted-');
    const tree = { ...SMALL_TREE, 'host/launchers/run.sh': { content: '#!/bin/sh\n', mode: 0o755 }, d: { symlink: 'host/launchers' }, x: { symlink: 'd/../README.md' } };
    const release = craftRelease(dir, { version: 'v1.0.0', key, tree });
    const root = join(dir, 'root');
    const r = await host(['install', '--version', 'v1.0.0', '--bundle', release.bundle, '--key', keyFiles.pub, ...rootArgs(root)]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('x: -> "d/../README.md" passes through the link d');
    expect(readdirSync(join(root, 'releases'))).toEqual([]);
  });
});

describe('a stray signature fails verification', () => {
  test('a SHA256SUMS.sig that does not verify, beside a Sigstore bundle that does, is refused', async () => {
    const dir = tempDir('cai-crafted-');
    const release = craftRelease(dir, { version: 'v1.0.0', key, members: { 'SHA256SUMS.sig': Buffer.from('not the signature').toString('base64') } });
    const root = join(dir, 'root');
    const r = await host(['install', '--version', 'v1.0.0', '--bundle', release.bundle, '--key', keyFiles.pub, ...rootArgs(root)]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('SHA256SUMS.sig does not verify with any pinned key');
  });
});

describe("check-health's fix line names the real cause", () => {
  const healthOf = async (root: string, args: string[], options: Parameters<typeof host>[1] = {}) => {
    const r = await host(['check-health', '--offline', '--json', '--install-root', root, ...args], { ...options, env: { DOCKER_HOST: 'unix:///nonexistent.sock', ...options.env } });
    return (JSON.parse(r.stdout).checks as Array<{ id: string; status: string; message: string; fix?: string }>).find((c) => c.id === 'release')!;
  };

  test('a key given on the command line that is not there: says so, not tampering', async () => {
    const { root } = await installed();
    const check = await healthOf(root, ['--key', join(work, 'absent.pub')]);
    expect(check.status).toBe('fail');
    expect(check.message).toContain('absent.pub');
    expect(check.fix).not.toContain('changed after install');
  });

  test('a policy that does not match the signer: names the signer, not tampering', async () => {
    const { root } = await installed();
    const otherPub = writeKeyPair(tempDir('cai-other-'), 'other', other).pub;
    const check = await healthOf(root, ['--key', otherPub]);
    expect(check.status).toBe('fail');
    expect(check.fix).toContain('does not verify under the policy flags given');
    expect(check.fix).toContain(`key ${createHash('sha256').update(key.publicKey.export({ type: 'spki', format: 'der' }) as Buffer).digest('hex')}`);
    expect(check.fix).not.toContain('changed after install');
  });

  test('a user who cannot read the release: says to run as root, not tampering', async () => {
    const { root, dir, releaseDir } = await installed();
    for (const d of [dir, root, join(root, 'releases'), releaseDir]) chmodSync(d, 0o755);
    chmodSync(join(releaseDir, '.containai'), 0o700);
    const r = Bun.spawnSync(['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', binaryPath('containai-host'), 'check-health', '--offline', '--json', '--install-root', root, '--key', keyFiles.pub], {
      env: { PATH: process.env.PATH, NO_COLOR: '1', DOCKER_HOST: 'unix:///nonexistent.sock', CONTAINAI_STATE_DIR: '/nonexistent-state' },
    });
    const check = (JSON.parse(r.stdout.toString()).checks as Array<{ id: string; status: string; message: string; fix?: string }>).find((c) => c.id === 'release')!;
    expect(check.status).toBe('fail');
    expect(check.message).toContain('EACCES');
    expect(check.fix).toMatch(/run as root|may not/);
    expect(check.fix).not.toContain('changed after install');
  });
});
