/** The payload modules in-process: tree checks, staging, the manifest (release.json, SHA256SUMS), the agents' checks, SBOM checks, the mtime rule. */
import { describe, expect, test } from 'bun:test';
import { accessSync, chmodSync, constants, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { archiveMtime, DEFAULT_MTIME } from '../../lib/archive/write.ts';
import { sha256Bytes } from '../../lib/digest.ts';
import { ContainaiError } from '../../lib/errors.ts';
import { elfProblem, placeAgents, findAgents } from '../../lib/payload/agents.ts';
import { archiveEntries, writeManifest } from '../../lib/payload/manifest.ts';
import { copyNoFollow, stagePayload } from '../../lib/payload/stage.ts';
import { hashFiles } from '../../lib/payload/sums.ts';
import { scanTree } from '../../lib/payload/tree.ts';
import { parseSbom, skippedSbom } from '../../lib/sbom.ts';
import { tempDir } from '../helpers/cli.ts';
import { AGENT_MACHINE, elfStandIn, fakeAgents, SMALL_HOST_TREE, writeTree } from '../helpers/release.ts';
import { refusal } from '../helpers/refusal.ts';

describe('scanTree', () => {
  test('lists files, folders and links sorted byte-wise, with their modes', async () => {
    const dir = tempDir();
    writeTree(dir, { 'b.txt': 'b', 'a/Z': 'z', 'a/a': { content: 'x', mode: 0o755 }, 'B': 'B', 'link': { symlink: 'a/a' } });
    const entries = await scanTree(dir, 'host');
    expect(entries.map((e) => e.path)).toEqual(['B', 'a', 'a/Z', 'a/a', 'b.txt', 'link']);
    expect(entries.find((e) => e.path === 'a/a')?.mode).toBe(0o755);
    expect(entries.find((e) => e.path === 'link')).toMatchObject({ type: 'symlink', linkTarget: 'a/a' });
  });

  test('a link to a missing file inside the tree is kept; links that climb out are not', async () => {
    const dir = tempDir();
    writeTree(join(dir, 'host'), { 'sub/x': 'x', dangling: { symlink: 'sub/not-yet' }, 'sub/ok': { symlink: '../sub/x' } });
    expect((await scanTree(join(dir, 'host'), 'host')).map((e) => e.path)).toContain('dangling');

    writeFileSync(join(dir, 'outside'), 'secret');
    symlinkSync('../outside', join(dir, 'host', 'up'));
    symlinkSync('../../host/sub/x', join(dir, 'host', 'sub', 'roundabout')); // leaves, then comes back in: refused as written
    const err = await refusal(scanTree(join(dir, 'host'), 'host'));
    expect(err.message).toContain('host/up -> ../outside');
    expect(err.message).toContain('host/sub/roundabout');
  });

  test('every problem is reported at once', async () => {
    const dir = tempDir();
    writeTree(dir, { a: { symlink: '/etc' }, b: { symlink: '/tmp' }, 'c\\d': 'x' });
    const err = await refusal(scanTree(dir, 'host'));
    expect(err.code).toBe('INPUT');
    expect((err.details?.problems as string[]).length).toBe(3);
  });

  test('a missing root is NOT_FOUND with a hint', async () => {
    const err = await refusal(scanTree(join(tempDir(), 'host'), 'host'));
    expect(err.code).toBe('NOT_FOUND');
    expect(err.hint).toContain('--host-dir');
  });
});

describe('stagePayload and writeManifest', () => {
  test('stages host/, README.md and LICENSE (no agent); the manifest gives modes 0755/0644 and the archive order', async () => {
    const project = tempDir();
    writeTree(join(project, 'host'), SMALL_HOST_TREE);
    writeFileSync(join(project, 'README.md'), 'readme');
    writeFileSync(join(project, 'LICENSE'), 'license');
    chmodSync(join(project, 'host', 'profile.env'), 0o4664);
    const payload = join(tempDir(), 'payload');
    mkdirSync(payload);
    await stagePayload({ hostDir: join(project, 'host'), projectDir: project }, payload);
    writeFileSync(join(payload, 'sbom.json'), '{}');

    const manifest = await writeManifest(payload, 'v9.9.9');
    const modes = Object.fromEntries(archiveEntries(manifest).map((e) => [e.path, `${e.type} ${e.mode.toString(8)}`]));
    expect(Object.keys(modes)).toEqual([
      'payload',
      'payload/SHA256SUMS',
      'payload/release.json',
      'payload/LICENSE',
      'payload/README.md',
      'payload/host',
      'payload/host/profile.env',
      'payload/host/utils',
      'payload/host/utils/README.txt',
      'payload/host/utils/health.sh',
      'payload/host/utils/latest',
      'payload/sbom.json',
    ]);
    expect(modes).toMatchObject({
      payload: 'directory 755',
      'payload/host': 'directory 755',
      'payload/host/profile.env': 'file 644', // setuid and group-write dropped
      'payload/host/utils/health.sh': 'file 755',
      'payload/host/utils/latest': 'symlink 777',
    });
    expect(manifest.files).toBe(7);
    const sums = readFileSync(join(payload, 'SHA256SUMS'), 'utf8');
    expect(sums.split('\n').filter(Boolean).map((l) => l.slice(66))).toEqual(['LICENSE', 'README.md', 'host/profile.env', 'host/utils/README.txt', 'host/utils/health.sh', 'release.json', 'sbom.json']);
    expect(sums).toContain(`${sha256Bytes(readFileSync(join(payload, 'release.json')))}  release.json\n`);
    const release = JSON.parse(readFileSync(join(payload, 'release.json'), 'utf8'));
    expect(release.version).toBe('v9.9.9');
    expect(release.entries['host/profile.env']).toEqual({ type: 'file', mode: '0644' });
    expect(release.entries['host/utils/latest']).toEqual({ type: 'symlink', target: 'health.sh' });
    expect(release.entries.SHA256SUMS).toEqual({ type: 'file', mode: '0644' });
    // Hard-linked, not copied: the same inode as the source.
    expect(statSync(join(payload, 'host/utils/health.sh')).ino).toBe(statSync(join(project, 'host/utils/health.sh')).ino);
  });

  test('links a host would refuse (dangling, through a link, a loop) are refused together, each named', async () => {
    const payload = tempDir();
    writeTree(payload, { 'host/a': 'a', 'host/d': { symlink: '.' }, 'host/gone': { symlink: 'nope' }, 'host/via': { symlink: 'd/a' }, 'host/l1': { symlink: 'l2' }, 'host/l2': { symlink: 'l1' } });
    const err = await refusal(writeManifest(payload, 'v1'));
    expect(err.details?.problems).toEqual([
      'host/gone -> nope: the link names nothing in the release',
      'host/l1 -> l2: the link names the link host/l2, which names the link host/l1, which is a symlink loop',
      'host/l2 -> l1: the link names the link host/l1, which names the link host/l2, which is a symlink loop',
      'host/via -> d/a: the link passes through the link host/d (a target may not go through a link)',
    ]);
    expect(existsSync(join(payload, 'release.json'))).toBe(false);
  });

  test('.env files and files others cannot read are refused from host/, each named, with the hint', async () => {
    const project = tempDir();
    writeTree(join(project, 'host'), {
      ...SMALL_HOST_TREE,
      '.env': 'TOKEN=x',
      'utils/.env.production': 'TOKEN=y',
      'utils/key.pem': { content: 'k', mode: 0o600 },
      'utils/env.example': 'fine',
    });
    const payload = join(tempDir(), 'payload');
    mkdirSync(payload);
    const err = await refusal(stagePayload({ hostDir: join(project, 'host'), projectDir: project }, payload));
    expect(err.code).toBe('INPUT');
    const problems = err.details?.problems as string[];
    expect(problems).toHaveLength(3);
    expect(err.message).toContain('host/.env: a .env file usually holds secrets');
    expect(err.message).toContain('host/utils/.env.production: a .env file');
    expect(err.message).toContain('host/utils/key.pem: not readable by others (mode 0600)');
    expect(err.message).toContain('remove it from host/ or make it world-readable (chmod o+r) if it is meant to ship');
    // The same tree is fine for scanTree's other callers (our own staged payload).
    expect((await scanTree(join(project, 'host'), 'host')).map((e) => e.path)).toContain('.env');
  });

  test('a README.md or LICENSE that is a symlink is refused, not followed', async () => {
    for (const doc of ['README.md', 'LICENSE']) {
      const project = tempDir();
      writeTree(join(project, 'host'), { 'a.txt': 'a' });
      writeFileSync(join(project, 'secret'), 'id_ed25519 contents');
      symlinkSync('secret', join(project, doc));
      const payload = join(tempDir(), 'payload');
      mkdirSync(payload);
      const err = await refusal(stagePayload({ hostDir: join(project, 'host'), projectDir: project }, payload));
      expect(err.code).toBe('INPUT');
      expect(err.message).toContain(`${doc} is a symlink`);
      expect(existsSync(join(payload, doc))).toBe(false);
    }
  });

  // Hard links cannot cross file systems, so staging copies. The test needs a second file system and
  // never skips for want of one: an existing one (/dev/shm, /run), else a tmpfs it mounts (the suite
  // runs as root), else it fails saying what is missing.
  test('across file systems: files are copied with their modes, and a symlink source is refused, not followed', async () => {
    const project = tempDir();
    writeTree(join(project, 'host'), SMALL_HOST_TREE);
    const other = otherFileSystem(project);
    const elsewhere = mkdtempSync(join(other.dir, 'cai-stage-'));
    try {
      expect(statSync(elsewhere).dev).not.toBe(statSync(project).dev);
      const payload = join(elsewhere, 'payload');
      mkdirSync(payload);
      await stagePayload({ hostDir: join(project, 'host'), projectDir: project }, payload);
      expect(statSync(join(payload, 'host/utils/health.sh')).mode & 0o777).toBe(0o755);
      expect(readFileSync(join(payload, 'host/utils/health.sh'), 'utf8')).toBe('#!/bin/sh\necho healthy\n');
      // Copied, not linked: the source keeps its single link, and the copy lives on the other file system.
      expect(statSync(join(project, 'host/utils/health.sh')).nlink).toBe(1);
      expect(statSync(join(payload, 'host/utils/health.sh')).dev).toBe(statSync(elsewhere).dev);

      const linked = join(project, 'linked');
      symlinkSync(join(project, 'host/utils/health.sh'), linked);
      const err = await refusal(copyNoFollow(linked, join(elsewhere, 'copy')));
      expect(err.message).toContain('it is a symlink');
      expect(existsSync(join(elsewhere, 'copy'))).toBe(false);
    } finally {
      rmSync(elsewhere, { recursive: true, force: true });
      other.release();
    }
  });

  test('on one file system, staging links instead of copying (the other half of the rule above)', async () => {
    const project = tempDir();
    writeTree(join(project, 'host'), SMALL_HOST_TREE);
    const payload = join(project, 'payload');
    mkdirSync(payload);
    await stagePayload({ hostDir: join(project, 'host'), projectDir: project }, payload);
    expect(statSync(join(payload, 'host/utils/health.sh')).ino).toBe(statSync(join(project, 'host/utils/health.sh')).ino);
  });

  test('a project without README.md or LICENSE ships without them', async () => {
    const project = tempDir();
    writeTree(join(project, 'host'), { 'a.txt': 'a' });
    const payload = join(tempDir(), 'payload');
    mkdirSync(payload);
    await stagePayload({ hostDir: join(project, 'host'), projectDir: project }, payload);
    const manifest = await writeManifest(payload, 'v1');
    expect(manifest.entries.map((e) => e.path)).toEqual(['SHA256SUMS', 'release.json', 'host', 'host/a.txt']);
  });

  test('hashFiles matches sha256 of the bytes, in order, and names a file it cannot read', async () => {
    const dir = tempDir();
    const paths = Array.from({ length: 7 }, (_, i) => join(dir, `f${i}`));
    paths.forEach((p, i) => writeFileSync(p, 'x'.repeat(i * 100_000)));
    expect(await hashFiles(paths)).toEqual(paths.map((_, i) => sha256Bytes('x'.repeat(i * 100_000))));
    const err = await refusal(hashFiles([...paths, join(dir, 'gone')]));
    expect(err.message).toContain(join(dir, 'gone'));
  });
});

describe('the agents', () => {
  /** An ELF64 header with one program header; PT_INTERP (3) makes an ET_DYN file a PIE executable. */
  function pie(machine: number, programType: number): Buffer {
    const header = elfStandIn({ machine, type: 3 }, '');
    header.writeBigUInt64LE(64n, 32); // e_phoff
    header.writeUInt16LE(56, 54); // e_phentsize
    header.writeUInt16LE(1, 56); // e_phnum
    const program = Buffer.alloc(56);
    program.writeUInt32LE(programType, 0);
    return Buffer.concat([header, program]);
  }

  test('elfProblem: a PIE executable passes, a shared library, a short file and the other architecture do not', async () => {
    const dir = tempDir();
    const file = (name: string, data: Buffer | string) => {
      writeFileSync(join(dir, name), data);
      return join(dir, name);
    };
    expect(await elfProblem(file('pie', pie(AGENT_MACHINE.arm64, 3)), 'arm64')).toBeUndefined();
    expect(await elfProblem(file('lib', pie(AGENT_MACHINE.arm64, 1)), 'arm64')).toBe('is a shared library, not an executable');
    expect(await elfProblem(file('short', Buffer.from('\x7fELF')), 'x64')).toBe('is not an ELF executable (no ELF header)');
    expect(await elfProblem(file('arm', elfStandIn({ machine: 183 }, '')), 'x64')).toBe('is an ELF for aarch64 (e_machine 183), not for linux-x64 (e_machine 62)');
    expect(await elfProblem(file('riscv', elfStandIn({ machine: 243 }, '')), 'arm64')).toBe('is an ELF for riscv (e_machine 243), not for linux-arm64 (e_machine 183)');
  });

  test('placeAgents hard-links a 0755 agent, copies another as 0755, and lists both in containai-host.SHA256SUMS', async () => {
    const source = fakeAgents();
    chmodSync(join(source, 'containai-host-linux-arm64'), 0o700);
    const agents = await findAgents(source, 'the test folder');
    const release = tempDir();
    expect(await placeAgents(agents, release)).toEqual(['containai-host-linux-x64', 'containai-host-linux-arm64', 'containai-host.SHA256SUMS']);
    expect(statSync(join(release, 'containai-host-linux-x64')).ino).toBe(statSync(join(source, 'containai-host-linux-x64')).ino);
    expect(statSync(join(release, 'containai-host-linux-arm64')).ino).not.toBe(statSync(join(source, 'containai-host-linux-arm64')).ino);
    expect(statSync(join(release, 'containai-host-linux-arm64')).mode & 0o7777).toBe(0o755);
    expect(statSync(join(source, 'containai-host-linux-arm64')).mode & 0o7777).toBe(0o700); // the source is not touched
    const sums = readFileSync(join(release, 'containai-host.SHA256SUMS'), 'utf8');
    expect(sums).toBe(
      ['arm64', 'x64'].map((a) => `${sha256Bytes(readFileSync(join(source, `containai-host-linux-${a}`)))}  containai-host-linux-${a}\n`).join(''),
    );
  });
});

describe('SBOM', () => {
  test('parseSbom names every problem', () => {
    expect(() => parseSbom('{"bomFormat":"SPDX"}', 'x.json')).toThrow(/bomFormat: must be "CycloneDX".*specVersion/);
    expect(() => parseSbom('[', 'x.json')).toThrow('x.json is not JSON');
    expect(parseSbom('{"bomFormat":"CycloneDX","specVersion":"1.5","extra":1}', 'x').bomFormat).toBe('CycloneDX');
  });

  test('the skipped SBOM is valid CycloneDX and the same for the same inputs', () => {
    const a = skippedSbom('v1', 1_700_000_000);
    expect(parseSbom(a, 'skipped').components).toEqual([]);
    expect(skippedSbom('v1', 1_700_000_000)).toBe(a);
    expect(a).toContain('2023-11-14T22:13:20.000Z');
  });
});

describe('archiveMtime', () => {
  test('SOURCE_DATE_EPOCH when set, else 1980-01-01; junk is refused', () => {
    expect(archiveMtime({ SOURCE_DATE_EPOCH: '1700000000' })).toBe(1_700_000_000);
    expect(archiveMtime({})).toBe(DEFAULT_MTIME);
    expect(new Date(DEFAULT_MTIME * 1000).toISOString()).toBe('1980-01-01T00:00:00.000Z');
    expect(() => archiveMtime({ SOURCE_DATE_EPOCH: 'yesterday' })).toThrow('SOURCE_DATE_EPOCH');
  });
});

/** A writable folder on another file system than `than`, and how to give it back. */
function otherFileSystem(than: string): { dir: string; release: () => void } {
  const dev = statSync(than).dev;
  for (const dir of ['/dev/shm', '/run']) {
    try {
      if (statSync(dir).dev !== dev) {
        accessSync(dir, constants.W_OK);
        return { dir, release: () => {} };
      }
    } catch {
      // not there, or not writable: try the next
    }
  }
  const mountPoint = mkdtempSync(join(tmpdir(), 'cai-otherfs-'));
  const mounted = Bun.spawnSync(['mount', '-t', 'tmpfs', '-o', 'size=16m', 'tmpfs', mountPoint], { stderr: 'pipe' });
  if (mounted.exitCode !== 0) {
    throw new Error(`no second file system for the cross-file-system test: /dev/shm and /run are missing or on ${than}'s, and mount -t tmpfs failed (${mounted.stderr.toString().trim()}); run the suite as root or with a tmpfs at /dev/shm`);
  }
  return {
    dir: mountPoint,
    release: () => {
      Bun.spawnSync(['umount', mountPoint]);
      rmSync(mountPoint, { recursive: true, force: true });
    },
  };
}

