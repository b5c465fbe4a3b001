/**
 * A finished install is reported as finished, and ordinary conditions are not
 * bugs (issue 11): the switch of current is the commit point, so the floor is
 * raised before it and what fails after it is a warning; a current that is a
 * folder, a read-only file system, a folder this user cannot write and a full
 * disk each get their own message and hint, with nothing half-written.
 * Needs root (mounts in a private namespace, a drop to nobody), as CI runs it.
 */
import { describe, expect, test } from 'bun:test';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { binaryPath, expectNoStack, host, tempDir } from '../helpers/cli.ts';
import { craftRelease } from '../helpers/craft.ts';

const isRoot = process.getuid?.() === 0;
if (!isRoot) throw new Error('SERVICE MISSING: test/e2e/install-outcomes.test.ts needs root (mounts and a drop to nobody); CI runs the suite as root');

function release(version = 'v1.0.0', size = 0): { dir: string; bundle: string } {
  const dir = tempDir('cai-outcome-');
  chmodSync(dir, 0o755);
  const tree = size ? { 'host/big.bin': 'x'.repeat(size), 'host/profile.env': 'PROFILE=dev\n' } : undefined;
  const crafted = craftRelease(dir, { version, tree });
  chmodSync(crafted.bundle, 0o644);
  return { dir, bundle: crafted.bundle };
}

/** Runs the compiled host with the arguments given inside a private mount namespace, after `setup` (shell). */
function inNamespace(setup: string, args: string[]): { code: number; stdout: string; stderr: string } {
  const quoted = [binaryPath('containai-host'), ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const r = Bun.spawnSync(['unshare', '-m', 'sh', '-c', `${setup} && exec ${quoted}`], { env: { PATH: process.env.PATH, NO_COLOR: '1', CONTAINAI_STATE_DIR: tempDir('cai-state-') } });
  return { code: r.exitCode, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

describe('the switch is the commit point', () => {
  test('state/ that cannot be written after the switch: exit 0, current is the new release, the floor was raised, a warning says what was not written', async () => {
    const { dir, bundle } = release();
    const root = join(dir, 'root');
    mkdirSync(join(root, 'state'), { recursive: true });
    // The event log is a folder: appending to it fails, after the switch.
    mkdirSync(join(root, 'state', 'events.jsonl'));
    const r = await host(['install', '--version', 'v1.0.0', '--bundle', bundle, '--allow-unsigned', '--install-root', root, '--allow-nonroot']);
    expect(r.code).toBe(0);
    expectNoStack(r.stderr);
    expect(r.stderr).not.toContain('this is a bug');
    expect(r.stderr).toContain('the install is done, but the event could not be logged');
    expect(r.stdout).toContain('v1.0.0 is current');
    expect(readlinkSync(join(root, 'current'))).toBe('releases/v1.0.0');
    expect(JSON.parse(readFileSync(join(root, 'state', 'floor.json'), 'utf8')).highest).toBe('v1.0.0');
  });

  test('a current that is a folder is refused before anything is extracted', async () => {
    const { dir, bundle } = release();
    const root = join(dir, 'root');
    mkdirSync(join(root, 'current'), { recursive: true });
    writeFileSync(join(root, 'current', 'precious.txt'), 'keep me\n');
    const r = await host(['install', '--version', 'v1.0.0', '--bundle', bundle, '--allow-unsigned', '--install-root', root, '--allow-nonroot']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('current: current is not a symlink; refusing to replace it');
    expect(r.stderr).toContain('move it away');
    expect(r.stderr).not.toContain('this is a bug');
    expect(readFileSync(join(root, 'current', 'precious.txt'), 'utf8')).toBe('keep me\n');
    expect(readdirSync(join(root, 'releases'))).toEqual([]);
  });
});

describe('ordinary conditions get their own message and hint', () => {
  test('a read-only file system (EROFS)', () => {
    const { dir, bundle } = release();
    const root = join(dir, 'ro');
    mkdirSync(root);
    const r = inNamespace(`mount -t tmpfs -o ro,size=1m tmpfs '${root}'`, ['install', '--version', 'v1.0.0', '--bundle', bundle, '--allow-unsigned', '--install-root', root, '--allow-nonroot']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('EROFS');
    expect(r.stderr).toContain('read-only file system');
    expect(r.stderr).not.toContain('this is a bug');
    expectNoStack(r.stderr);
  });

  test('a disk that fills up during extraction (ENOSPC): refused, nothing left behind', () => {
    const { dir, bundle } = release('v1.0.0', 2 * 1024 * 1024);
    const root = join(dir, 'small');
    mkdirSync(root);
    const r = inNamespace(`mount -t tmpfs -o size=1m tmpfs '${root}'`, ['install', '--version', 'v1.0.0', '--bundle', bundle, '--allow-unsigned', '--install-root', root, '--allow-nonroot']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/ENOSPC/);
    expect(r.stderr).toContain('free disk space');
    expect(r.stderr).not.toContain('this is a bug');
    // The mount was private to the namespace: what it held is gone with it, and the folder is untouched.
    expect(readdirSync(root)).toEqual([]);
  });

  test('a folder this user may not write (EACCES)', () => {
    const { dir, bundle } = release();
    const root = join(dir, 'rootonly');
    mkdirSync(root, { mode: 0o755 });
    const quoted = [binaryPath('containai-host'), 'install', '--version', 'v1.0.0', '--bundle', bundle, '--allow-unsigned', '--install-root', root, '--allow-nonroot'];
    const r = Bun.spawnSync(['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', ...quoted], { env: { PATH: process.env.PATH, NO_COLOR: '1', CONTAINAI_STATE_DIR: '/nonexistent-state' } });
    const stderr = r.stderr.toString();
    expect(r.exitCode).toBe(1);
    expect(stderr).toContain('EACCES');
    expect(stderr).toMatch(/may not use|run as root/);
    expect(stderr).not.toContain('this is a bug');
    expect(existsSync(join(root, 'releases'))).toBe(false);
  });
});

describe('a version named wrong gets a usage error or a did-you-mean, never a silent guess', () => {
  test('install without --version is a usage error (exit 2), nothing changed', async () => {
    const { dir, bundle } = release();
    const root = join(dir, 'root');
    const r = await host(['install', '--bundle', bundle, '--allow-unsigned', '--install-root', root, '--allow-nonroot']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--version is required');
    expect(existsSync(root)).toBe(false);
  });

  test('install --verify-only --version V checks V when it is current, says it is not when it is not, and offers the "v" it lacks', async () => {
    const { dir, bundle } = release('v1.0.0');
    const root = join(dir, 'root');
    expect((await host(['install', '--version', 'v1.0.0', '--bundle', bundle, '--allow-unsigned', '--install-root', root, '--allow-nonroot'])).code).toBe(0);
    const ok = await host(['install', '--verify-only', '--version', 'v1.0.0', '--install-root', root, '--allow-unsigned']);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain('v1.0.0 verifies');
    const slip = await host(['install', '--verify-only', '--version', '1.0.0', '--install-root', root, '--allow-unsigned']);
    expect(slip.code).toBe(1);
    expect(slip.stderr).toContain('1.0.0 is not the current release (current is v1.0.0) (did you mean v1.0.0?)');
    const other = await host(['install', '--verify-only', '--version', 'v2.0.0', '--install-root', root, '--allow-unsigned']);
    expect(other.code).toBe(1);
    expect(other.stderr).toContain('v2.0.0 is not the current release (current is v1.0.0)');
  });

  test('--asset-dir without the version asked for offers the one it holds', async () => {
    const { dir } = release('v1.0.0');
    const r = await host(['install', '--version', '1.0.0', '--asset-dir', dir, '--allow-unsigned', '--install-root', join(dir, 'root'), '--allow-nonroot']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('no containai-1.0.0.tar.gz in');
    expect(r.stderr).toContain('(did you mean v1.0.0?)');
  });
});
