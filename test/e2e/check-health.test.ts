/** containai-host check-health as an operator runs it: real dockerd and podman, a hand-installed release of the current format (test/helpers/installed-release.ts), the compiled binary. */
import { afterAll, describe, expect, test } from 'bun:test';
import { appendFileSync, chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expectNoStack, host, removeDir, tempDir, TEST_STATE_DIR } from '../helpers/cli.ts';
import { DEV_PROFILE, handInstall, tamperWithSums } from '../helpers/installed-release.ts';
import { keySignature } from '../helpers/craft.ts';
import { makeKeyPair, writeKeyPair } from '../helpers/signing.ts';
import { requireService, startDockerd, startPodman } from '../helpers/services.ts';

const dirs: string[] = [];
afterAll(() => dirs.forEach(removeDir));
function dir(prefix = 'cai-health-'): string {
  const d = tempDir(prefix);
  dirs.push(d);
  return d;
}

/** A PATH with only the given commands, so the host's own docker/podman do not decide the result. */
function pathWith(links: Record<string, string>, scripts: Record<string, string> = {}): string {
  const d = dir('cai-path-');
  for (const [name, target] of Object.entries(links)) symlinkSync(target, join(d, name));
  for (const [name, text] of Object.entries(scripts)) writeFileSync(join(d, name), text, { mode: 0o755 });
  return d;
}

interface Check {
  id: string;
  status: string;
  message: string;
  fix?: string;
  durationMs: number;
}

async function checkHealth(root: string, env: Record<string, string>, extra: string[] = []) {
  const r = await host(['check-health', '--install-root', root, '--offline', '--json', ...extra], { env });
  expectNoStack(r.stderr);
  const doc = JSON.parse(r.stdout) as { ok: boolean; checks: Check[]; summary: Record<string, number> };
  // A fresh copy each time: bun's toMatchObject with asymmetric matchers can write into what it received.
  const check = (id: string) => structuredClone(doc.checks.find((c) => c.id === id)) as Check;
  return { ...r, doc, check };
}

function installedRoot(options: Parameters<typeof handInstall>[1] = {}): string {
  const root = dir('cai-root-');
  handInstall(root, options);
  return root;
}

describe('engine', () => {
  test('a real dockerd passes, and the report is healthy (exit 0) with one JSON document', async () => {
    const dockerd = await startDockerd();
    const root = installedRoot();
    const r = await checkHealth(root, { DOCKER_HOST: dockerd.dockerHost, PATH: pathWith({ docker: requireService('docker', 'docker.io') }) });
    expect(r.check('engine')).toMatchObject({ status: 'pass', message: expect.stringContaining('Docker') });
    expect(r.check('engine').message).toMatch(/API 1\.\d+/);
    expect(['pass', 'warn']).toContain(r.check('engine-security').status);
    expect(r.check('registry').status).toBe('skip');
    for (const c of r.doc.checks) {
      expect(Object.keys(c)).toEqual(expect.arrayContaining(['id', 'status', 'message', 'durationMs']));
      if (c.status === 'warn' || c.status === 'fail') expect(c.fix).toBeTruthy();
    }
    expect(r.code).toBe(0);
    expect(r.doc.ok).toBe(true);
    expect(r.stderr).toMatch(/healthy: \d+ passed/);
  });

  test('Podman merely installed beside a real Docker is a warning', async () => {
    const dockerd = await startDockerd();
    const r = await checkHealth(installedRoot(), {
      DOCKER_HOST: dockerd.dockerHost,
      PATH: pathWith({ docker: requireService('docker', 'docker.io'), podman: requireService('podman', 'podman') }),
    });
    expect(r.check('engine')).toMatchObject({ status: 'warn', message: expect.stringContaining('Podman is installed beside it') });
    expect(r.code).toBe(0);
  });

  test('a podman service on a socket DOCKER_HOST names fails, with Podman named', async () => {
    const podman = await startPodman();
    const r = await checkHealth(installedRoot(), { DOCKER_HOST: podman.dockerHost, PATH: pathWith({}) });
    expect(r.code).toBe(1);
    expect(r.check('engine')).toMatchObject({ status: 'fail', message: expect.stringContaining('Podman, not Docker') });
    expect(r.check('engine').message).toContain('DOCKER_HOST names a Podman socket');
    expect(r.check('engine').fix).toContain('Docker Engine only');
    expect(r.stderr).toContain('FAIL  engine');
  });

  test('a podman socket at a neutral path still fails (fingerprint, not path)', async () => {
    const podman = await startPodman('engine.sock');
    const neutral = join(dir('cai-sock-'), 'engine.sock');
    symlinkSync(podman.socketPath, neutral);
    const r = await checkHealth(installedRoot(), { DOCKER_HOST: `unix://${neutral}`, PATH: pathWith({}) });
    expect(r.code).toBe(1);
    expect(r.check('engine').status).toBe('fail');
    expect(r.check('engine').message).toContain('Podman Engine');
    expect(r.check('engine').message).not.toContain('DOCKER_HOST');
  });

  test('a docker command that is Podman fails, even with a real dockerd answering', async () => {
    const dockerd = await startDockerd();
    const podman = requireService('podman', 'podman');
    const link = await checkHealth(installedRoot(), { DOCKER_HOST: dockerd.dockerHost, PATH: pathWith({ docker: podman }) });
    expect(link.code).toBe(1);
    expect(link.check('engine')).toMatchObject({ status: 'fail', message: expect.stringContaining('the docker command is Podman') });
    const shim = await checkHealth(installedRoot(), {
      DOCKER_HOST: dockerd.dockerHost,
      PATH: pathWith({}, { docker: `#!/bin/sh\n[ -e /etc/containers/nodocker ] || echo "Emulate Docker CLI using podman." >&2\nexec ${podman} "$@"\n` }),
    });
    expect(shim.code).toBe(1);
    expect(shim.check('engine').message).toContain('podman-docker shim');
  });

  test('a dead socket fails clearly, and so does no engine at all', async () => {
    const d = dir();
    writeFileSync(join(d, 'dead.sock'), '');
    const dead = await checkHealth(installedRoot(), { DOCKER_HOST: `unix://${join(d, 'dead.sock')}`, PATH: pathWith({}) });
    expect(dead.code).toBe(1);
    expect(dead.check('engine').status).toBe('fail');
    expect(dead.check('engine').fix).toContain('DOCKER_HOST points at a socket nobody answers');
    expect(dead.check('engine-security').status).toBe('skip');
    const missing = await checkHealth(installedRoot(), { DOCKER_HOST: `unix://${join(d, 'none.sock')}`, PATH: pathWith({}) });
    expect(missing.check('engine').message).toContain('does not exist');
  });
});

describe('release', () => {
  async function releaseCheck(root: string, extra: string[] = []) {
    const dockerd = await startDockerd();
    return checkHealth(root, { DOCKER_HOST: dockerd.dockerHost, PATH: pathWith({}) }, extra);
  }

  test('an intact UNSIGNED dev release only warns', async () => {
    const r = await releaseCheck(installedRoot());
    expect(r.check('release')).toMatchObject({ status: 'warn', message: expect.stringContaining('UNSIGNED') });
  });

  test('a file changed after install fails', async () => {
    const root = installedRoot();
    appendFileSync(join(root, 'current', 'host', 'README.md'), 'tampered\n');
    const r = await releaseCheck(root);
    expect(r.code).toBe(1);
    expect(r.check('release')).toMatchObject({ status: 'fail', message: expect.stringContaining('host/README.md: content does not match SHA256SUMS') });
  });

  test('a repeat check re-hashes only what changed, and still finds a change whose mtime was put back', async () => {
    const root = installedRoot();
    const first = await releaseCheck(root);
    const hashedFirst = (first.check('release') as Check & { details: { filesHashed: number; filesChecked: number } }).details;
    expect(hashedFirst.filesHashed).toBe(hashedFirst.filesChecked);
    expect(hashedFirst.filesChecked).toBeGreaterThan(1);

    const second = await releaseCheck(root);
    expect(second.check('release').status).toBe('warn'); // UNSIGNED dev, intact
    expect((second.check('release') as Check & { details: { filesHashed: number } }).details.filesHashed).toBe(0);

    // Same size, same mtime: only ctime (which user space cannot set) shows the write.
    const file = join(root, 'current', 'host', 'README.md');
    const before = statSync(file);
    const text = readFileSync(file, 'utf8');
    writeFileSync(file, text.slice(0, -1) + (text.endsWith('X') ? 'Y' : 'X'));
    utimesSync(file, before.atime, before.mtime);
    const third = await releaseCheck(root);
    expect(third.code).toBe(1);
    expect(third.check('release')).toMatchObject({ status: 'fail', message: expect.stringContaining('host/README.md: content does not match SHA256SUMS') });
  });

  test('a file changed with its line in SHA256SUMS fails, even after a stamped check', async () => {
    const root = installedRoot();
    expect((await releaseCheck(root)).check('release').status).toBe('warn'); // intact UNSIGNED dev; stamps it
    tamperWithSums(join(root, 'releases', 'v1.0.0'), 'host/README.md', 'tampered\n');
    const r = await releaseCheck(root);
    expect(r.code).toBe(1);
    // Unsigned: install.json's manifestSha256 is what ties the tree to the manifest install verified.
    expect(r.check('release')).toMatchObject({ status: 'fail', message: expect.stringContaining('releases/v1.0.0/SHA256SUMS: is not the manifest .containai/install.json recorded at install') });
    expect(r.check('release').fix).toContain('changed after install (SHA256SUMS)');
  });

  test('signed: a file changed with its line in SHA256SUMS and install.json rewritten to match fails on the kept signature', async () => {
    const pair = makeKeyPair('ecdsa');
    const trust = dir('cai-trust-');
    writeKeyPair(trust, 'release', pair);
    rmSync(join(trust, 'release.key'));
    const root = installedRoot({ key: pair });
    expect((await releaseCheck(root, ['--trust-dir', trust])).check('release').status).toBe('pass'); // stamps it
    tamperWithSums(join(root, 'releases', 'v1.0.0'), 'host/README.md', 'tampered\n', { andRecord: true });
    const r = await releaseCheck(root, ['--trust-dir', trust]);
    expect(r.code).toBe(1);
    expect(r.check('release')).toMatchObject({ status: 'fail', message: expect.stringContaining('SHA256SUMS.sig does not verify with any pinned key') });
  });

  test('the stamp lives outside the install root, one per root, so whoever writes the release cannot write it', async () => {
    const root = installedRoot();
    await releaseCheck(root);
    expect(existsSync(join(root, 'state', 'verified.json'))).toBe(false);
    const stamps = readdirSync(TEST_STATE_DIR).filter((name) => /^verified-[0-9a-f]{16}\.json$/.test(name));
    const mine = stamps.map((name) => JSON.parse(readFileSync(join(TEST_STATE_DIR, name), 'utf8'))).filter((stamp) => stamp.root === root);
    expect(mine).toHaveLength(1);
    expect(mine[0]).toMatchObject({ release: 'v1.0.0', root });
  });

  test('a mode changed after a stamped check (setuid binary, writable profile) fails', async () => {
    const root = installedRoot();
    expect((await releaseCheck(root)).check('release').status).toBe('warn'); // intact UNSIGNED dev; stamps it
    chmodSync(join(root, 'current', 'host', 'utils', 'health.sh'), 0o4777);
    const setuid = await releaseCheck(root);
    expect(setuid.code).toBe(1);
    expect(setuid.check('release')).toMatchObject({ status: 'fail', message: expect.stringContaining('host/utils/health.sh: has mode 4777; the manifest says 0755') });
    chmodSync(join(root, 'current', 'host', 'utils', 'health.sh'), 0o755);
    expect((await releaseCheck(root)).check('release').status).toBe('warn');
    chmodSync(join(root, 'current', 'host', 'profile.env'), 0o666);
    const writable = await releaseCheck(root);
    expect(writable.code).toBe(1);
    expect(writable.check('release').message).toContain('host/profile.env: has mode 0666; the manifest says 0644');
  });

  test('--full hashes every file of the release again', async () => {
    const root = installedRoot();
    await releaseCheck(root);
    const full = await releaseCheck(root, ['--full']);
    const details = (full.check('release') as Check & { details: { filesHashed: number; filesChecked: number } }).details;
    // The files checked are the release's: every file SHA256SUMS lists, and SHA256SUMS itself (0 of 0 would pass otherwise).
    const listed = readFileSync(join(root, 'releases', 'v1.0.0', 'SHA256SUMS'), 'utf8').trim().split('\n').length;
    expect(listed).toBeGreaterThanOrEqual(4);
    expect(details.filesChecked).toBe(listed + 1);
    expect(details.filesHashed).toBe(details.filesChecked);
    expect(full.check('release').message).toContain(`${listed + 1} files`);
  });

  test('a file added after install fails', async () => {
    const root = installedRoot();
    writeFileSync(join(root, 'current', 'host', 'backdoor.sh'), 'echo hi\n');
    const r = await releaseCheck(root);
    expect(r.code).toBe(1);
    expect(r.check('release').message).toContain('host/backdoor.sh: not listed in the signed manifest');
  });

  test('the release replaced by another build of the same version (its manifest and files, coherent) fails: not the manifest install recorded', async () => {
    const root = installedRoot();
    const other = handInstall(dir('cai-other-'), { profile: DEV_PROFILE.replace('devlocal', 'other') });
    for (const rel of ['SHA256SUMS', 'release.json', 'host/profile.env']) copyFileSync(join(other.dir, rel), join(root, 'releases', 'v1.0.0', rel));
    const r = await releaseCheck(root);
    expect(r.code).toBe(1);
    expect(r.check('release').message).toContain('releases/v1.0.0/SHA256SUMS: is not the manifest .containai/install.json recorded at install');
  });

  test('the kept signature replaced by one of another key fails; the one install kept passes', async () => {
    const pair = makeKeyPair('ecdsa');
    const trust = dir('cai-trust-');
    writeKeyPair(trust, 'release', pair);
    rmSync(join(trust, 'release.key'));
    const root = installedRoot({ key: pair });
    const ok = await releaseCheck(root, ['--trust-dir', trust]);
    expect(ok.check('release')).toMatchObject({ status: 'pass', message: expect.stringContaining('signed by key') });
    const kept = join(root, 'releases', 'v1.0.0', '.containai');
    const other = keySignature(makeKeyPair('ecdsa'), readFileSync(join(root, 'releases', 'v1.0.0', 'SHA256SUMS')));
    writeFileSync(join(kept, 'SHA256SUMS.sigstore.json'), other.sigstoreBundle);
    writeFileSync(join(kept, 'SHA256SUMS.sig'), other.sig);
    const r = await releaseCheck(root, ['--trust-dir', trust]);
    expect(r.code).toBe(1);
    expect(r.check('release').status).toBe('fail');
    expect(r.check('release').message).toContain('does not verify with any pinned key');
  });

  test('UNSIGNED on a prod host fails', async () => {
    const root = installedRoot({ profile: 'PROFILE=prod\nIMAGE_PREFIX=containai\nIMAGE_TAG=v1.0.0\nREGISTRY=ghcr.io/acme\n' });
    const r = await releaseCheck(root);
    expect(r.code).toBe(1);
    expect(r.check('release')).toMatchObject({ status: 'fail', message: expect.stringContaining('UNSIGNED on a prod host') });
  });

  test('with policy flags that refuse unsigned releases, an UNSIGNED install fails', async () => {
    const r = await releaseCheck(installedRoot(), ['--repo', 'acme/containai']);
    expect(r.code).toBe(1);
    expect(r.check('release').message).toContain('SHA256SUMS is unsigned');
  });

  test('releases/ or state/ as a symlink out of the root fails, and nothing is read or written there', async () => {
    const root = installedRoot();
    const outside = dir('cai-victim-');
    renameSync(join(root, 'releases'), join(outside, 'releases'));
    symlinkSync(join(outside, 'releases'), join(root, 'releases'));
    mkdirSync(join(outside, 'state'));
    symlinkSync(join(outside, 'state'), join(root, 'state'));
    const before = readdirSync(outside, { recursive: true }).sort();
    const r = await releaseCheck(root);
    expect(r.code).toBe(1);
    expect(r.check('release')).toMatchObject({ status: 'fail', message: `${join(root, 'releases')} is a symlink; refusing to work through it` });
    expect(readdirSync(outside, { recursive: true }).sort()).toEqual(before); // no verification stamp written in the victim folder
    rmSync(join(root, 'releases'));
    renameSync(join(outside, 'releases'), join(root, 'releases'));
    const state = await releaseCheck(root);
    expect(state.check('release').message).toBe(`${join(root, 'state')} is a symlink; refusing to work through it`);
    expect(readdirSync(join(outside, 'state'))).toEqual([]);
  });

  test('no release installed fails with the install command as fix', async () => {
    const r = await releaseCheck(dir());
    expect(r.check('release')).toMatchObject({ status: 'fail', fix: expect.stringContaining('containai-host install') });
    expect(r.check('profile').status).toBe('skip');
  });
});

describe('profile', () => {
  test('prod: a pinned image missing from the engine fails and names it', async () => {
    const dockerd = await startDockerd();
    const digest = `sha256:${'a'.repeat(64)}`;
    const root = installedRoot({ profile: `PROFILE=prod\nIMAGE_PREFIX=containai\nIMAGE_TAG=v1.0.0\nREGISTRY=ghcr.io/acme\nIMAGE_DIGEST_PROXY=${digest}\n` });
    const r = await checkHealth(root, { DOCKER_HOST: dockerd.dockerHost, PATH: pathWith({}) });
    expect(r.check('profile')).toMatchObject({ status: 'fail', message: expect.stringContaining(`ghcr.io/acme/containai-proxy@${digest}`) });
  });

  test('a profile.env, or a host/ folder, that links out of the release fails and is not read', async () => {
    const dockerd = await startDockerd();
    const env = { DOCKER_HOST: dockerd.dockerHost, PATH: pathWith({}) };
    const outside = dir('cai-victim-');
    writeFileSync(join(outside, 'profile.env'), DEV_PROFILE.replace('devlocal', 'outside'));
    const root = installedRoot();
    const profile = join(root, 'current', 'host', 'profile.env');
    rmSync(profile);
    symlinkSync(join(outside, 'profile.env'), profile);
    const link = await checkHealth(root, env);
    expect(link.check('profile')).toMatchObject({ status: 'fail', message: expect.stringContaining('profile.env is a symlink') });
    expect(link.check('profile').message).not.toContain('outside');
    // The folder above it linked out instead: profile.env itself is a plain file, but not in the release.
    const other = installedRoot();
    rmSync(join(other, 'current', 'host'), { recursive: true });
    symlinkSync(outside, join(other, 'current', 'host'));
    const folder = await checkHealth(other, env);
    expect(folder.check('profile')).toMatchObject({ status: 'fail', message: expect.stringContaining('leaves the release folder releases/v1.0.0') });
    expect(readdirSync(outside)).toEqual(['profile.env']);
    expect(readFileSync(join(outside, 'profile.env'), 'utf8')).toBe(DEV_PROFILE.replace('devlocal', 'outside'));
  });

  test('an invalid profile fails with its problem', async () => {
    const dockerd = await startDockerd();
    const root = installedRoot({ profile: 'PROFILE=prod\nIMAGE_PREFIX=containai\nIMAGE_TAG=latest\n' });
    const r = await checkHealth(root, { DOCKER_HOST: dockerd.dockerHost, PATH: pathWith({}) });
    expect(r.check('profile')).toMatchObject({ status: 'fail', message: expect.stringContaining('IMAGE_TAG') });
  });
});
