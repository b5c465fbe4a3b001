/**
 * The ownership rule of a system install (lib/release/guard.ts), as root and without --allow-nonroot:
 * the install root, releases/, state/ and every folder above them must be root's and writable by
 * nobody else. An owner of releases/ could swap root's staging tree before it is placed, so each
 * of these is refused before anything is written, and the root is left exactly as it was.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { chmodSync, chownSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, renameSync, symlinkSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import { expectNoStack, host, removeDir, tempDir } from '../helpers/cli.ts';
import { makeTestBundle } from '../helpers/release-server.ts';

const NOBODY = 65534;
const dirs: string[] = [];
afterAll(() => dirs.forEach(removeDir));
function scratch(): string {
  const d = tempDir('cai-guard-');
  dirs.push(d);
  return d;
}

let assets: string;
beforeAll(() => {
  assets = scratch();
  for (const v of ['v1.0.0', 'v1.1.0']) makeTestBundle(assets, v);
});

const install = (root: string, version: string) =>
  host(['install', '--version', version, '--asset-dir', assets, '--install-root', root, '--allow-unsigned']);

/** Every entry under dir with its owner, mode and content or target: "nothing changed" is this being equal. */
function snapshot(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .map((e) => {
      const path = join(e.parentPath, e.name);
      const st = lstatSync(path);
      const what = e.isSymbolicLink() ? `-> ${readlinkSync(path)}` : e.isFile() ? createHash('sha256').update(readFileSync(path)).digest('hex') : 'dir';
      return `${path.slice(dir.length)} ${st.uid} ${(st.mode & 0o7777).toString(8)} ${what}`;
    })
    .sort();
}

async function installedRoot(): Promise<string> {
  const root = join(scratch(), 'parent', 'opt');
  mkdirSync(dirname(root), { mode: 0o755 });
  const r = await install(root, 'v1.0.0');
  expect(r.code, r.stderr).toBe(0);
  return root;
}

async function expectRefused(root: string, message: string): Promise<void> {
  const before = snapshot(dirname(root));
  for (const args of [
    ['install', '--version', 'v1.1.0', '--asset-dir', assets, '--install-root', root, '--allow-unsigned'],
    ['rollback', '--install-root', root, '--allow-unsigned'],
    ['prune', '--keep', '0', '--install-root', root],
  ]) {
    const r = await host(args);
    expect(r.code, `${args[0]}: ${r.stderr}`).toBe(1);
    expect(r.stderr).toContain(message);
    expect(r.stderr).toContain('hint: ');
    expectNoStack(r.stderr);
    expect(snapshot(dirname(root)), args[0]).toEqual(before);
  }
}

describe('a system install refuses folders someone else could change', () => {
  test('releases/ owned by nobody', async () => {
    const root = await installedRoot();
    chownSync(join(root, 'releases'), NOBODY, NOBODY);
    await expectRefused(root, `${root}/releases is owned by uid ${NOBODY}, not root`);
  });

  test('state/ owned by nobody', async () => {
    const root = await installedRoot();
    chownSync(join(root, 'state'), NOBODY, NOBODY);
    await expectRefused(root, `${root}/state is owned by uid ${NOBODY}, not root`);
  });

  test('a folder above the install root owned by nobody', async () => {
    const root = await installedRoot();
    chownSync(dirname(root), NOBODY, NOBODY);
    await expectRefused(root, `${dirname(root)} is owned by uid ${NOBODY}, not root`);
  });

  test('releases/ writable by its group', async () => {
    const root = await installedRoot();
    chmodSync(join(root, 'releases'), 0o775);
    await expectRefused(root, `${root}/releases is writable by group or others (mode 775)`);
  });

  test('releases/ replaced by a symlink to a root-owned folder', async () => {
    const root = await installedRoot();
    renameSync(join(root, 'releases'), join(dirname(root), 'elsewhere'));
    symlinkSync(join(dirname(root), 'elsewhere'), join(root, 'releases'));
    await expectRefused(root, `${root}/releases is a symlink; refusing to work through it`);
  });

  test('a folder above the root that is a symlink is followed only as the real path: its target is judged', async () => {
    const root = await installedRoot();
    const alias = join(scratch(), 'alias');
    symlinkSync(dirname(root), alias);
    chownSync(join(root, 'state'), NOBODY, NOBODY);
    const r = await install(join(alias, 'opt'), 'v1.1.0');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${root}/state is owned by uid ${NOBODY}, not root`);
  });

  test('root-owned folders pass, and a sticky /tmp above them is fine', async () => {
    const root = await installedRoot();
    const r = await install(root, 'v1.1.0');
    expect(r.code, r.stderr).toBe(0);
    expect(readlinkSync(join(root, 'current'))).toBe('releases/v1.1.0');
  });
});
