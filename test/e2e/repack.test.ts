/** containai-build repack: new members in, payload bytes untouched, and a bad input leaves the bundle as it was. */
import { describe, expect, test } from 'bun:test';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { build, expectNoStack, tempDir } from '../helpers/cli.ts';
import { makeRelease, type Release } from '../helpers/release.ts';

function sh(args: string[], cwd?: string): { code: number; out: string } {
  const r = Bun.spawnSync(args, { cwd, stdout: 'pipe', stderr: 'pipe' });
  return { code: r.exitCode, out: r.stdout.toString() + r.stderr.toString() };
}

function members(bundle: string): string[] {
  return sh(['tar', '-tzf', bundle]).out.trim().split('\n');
}

function memberBytes(bundle: string, name: string): Buffer {
  const dir = tempDir('cai-x-');
  expect(sh(['tar', '-xzf', bundle, '-C', dir, name]).code).toBe(0);
  return readFileSync(join(dir, name));
}

function inputs(): { dir: string; attestation: string; cosign: string; root: string } {
  const dir = tempDir('cai-inputs-');
  const attestation = join(dir, 'att.jsonl');
  writeFileSync(attestation, '{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","n":1}\n');
  writeFileSync(join(dir, 'cosign'), '#!/bin/sh\necho cosign\n');
  writeFileSync(join(dir, 'root.json'), '{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1"}\n');
  return { dir, attestation, cosign: join(dir, 'cosign'), root: join(dir, 'root.json') };
}

const repack = (rel: Release, args: string[]) => build(['repack', '--version', rel.version, '--out', rel.out, ...args]);

/** The bundle and the release folder, byte for byte, to compare after a refusal. */
function snapshot(rel: Release): Map<string, Buffer> {
  return new Map(readdirSync(rel.dir).map((f) => [f, readFileSync(join(rel.dir, f))]));
}

function expectUnchanged(rel: Release, before: Map<string, Buffer>): void {
  expect(readdirSync(rel.out)).toEqual([rel.version]);
  expect(readdirSync(rel.dir).sort()).toEqual([...before.keys()].sort());
  for (const [f, bytes] of before) expect(readFileSync(join(rel.dir, f)).equals(bytes), f).toBe(true);
}

describe('containai-build repack', () => {
  test('adds the attestation, cosign and trusted root; payload.tar.gz keeps its bytes', async () => {
    const rel = await makeRelease();
    const payload = readFileSync(rel.payload);
    const { attestation, cosign, root } = inputs();
    const r = await repack(rel, ['--attestation', attestation, '--cosign-asset', cosign, '--trusted-root', root, '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).members).toEqual(['attestation.intoto.jsonl', 'cosign', 'payload.sha256', 'payload.tar.gz', 'trusted_root.json']);
    expect(members(rel.bundle)).toEqual(['attestation.intoto.jsonl', 'cosign', 'payload.sha256', 'payload.tar.gz', 'trusted_root.json']);
    expect(memberBytes(rel.bundle, 'payload.tar.gz').equals(payload)).toBe(true);
    expect(readFileSync(rel.payload).equals(payload)).toBe(true);
    expect(memberBytes(rel.bundle, 'attestation.intoto.jsonl').equals(readFileSync(attestation))).toBe(true);
    expect(sh(['tar', '-tvzf', rel.bundle]).out).toMatch(/-rwxr-xr-x 0\/0 .* cosign/);
    expect(readdirSync(rel.out)).toEqual([rel.version]);
  });

  test('a second repack replaces a member and keeps the others', async () => {
    const rel = await makeRelease();
    const { dir, attestation, cosign } = inputs();
    expect((await repack(rel, ['--attestation', attestation, '--cosign-asset', cosign])).code).toBe(0);
    const newer = join(dir, 'att2.jsonl');
    writeFileSync(newer, '{"n":2}\n{"n":3}\n');
    expect((await repack(rel, ['--attestation', newer])).code).toBe(0);
    expect(members(rel.bundle)).toEqual(['attestation.intoto.jsonl', 'cosign', 'payload.sha256', 'payload.tar.gz']);
    expect(memberBytes(rel.bundle, 'attestation.intoto.jsonl').toString()).toBe('{"n":2}\n{"n":3}\n');
  });

  test('the same repack twice gives the same bundle bytes', async () => {
    const rel = await makeRelease();
    const { attestation } = inputs();
    const env = { SOURCE_DATE_EPOCH: '1700000000' };
    await build(['repack', '--version', rel.version, '--out', rel.out, '--attestation', attestation], { env });
    const first = readFileSync(rel.bundle);
    await build(['repack', '--version', rel.version, '--out', rel.out, '--attestation', attestation], { env });
    expect(readFileSync(rel.bundle).equals(first)).toBe(true);
  });

  describe('refuses, leaving the bundle byte-identical', () => {
    test('a bundle whose payload.sha256 does not match payload.tar.gz', async () => {
      const rel = await makeRelease();
      // Rebuild the bundle by hand with a wrong payload.sha256.
      const work = tempDir('cai-tamper-');
      expect(sh(['tar', '-xzf', rel.bundle, '-C', work]).code).toBe(0);
      writeFileSync(join(work, 'payload.sha256'), `${'0'.repeat(64)}  payload.tar.gz\n`);
      expect(sh(['tar', '-czf', rel.bundle, '-C', work, 'payload.tar.gz', 'payload.sha256']).code).toBe(0);
      const before = snapshot(rel);
      const r = await repack(rel, ['--attestation', inputs().attestation]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('payload.tar.gz does not match payload.sha256');
      expectNoStack(r.stderr);
      expectUnchanged(rel, before);
    });

    test('a release folder whose payload.sha256 names another payload', async () => {
      const rel = await makeRelease();
      writeFileSync(rel.payloadSha256, `${'1'.repeat(64)}  payload.tar.gz\n`);
      const before = snapshot(rel);
      const r = await repack(rel, ['--attestation', inputs().attestation]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('does not match the payload inside the bundle');
      expectUnchanged(rel, before);
    });

    test('an attestation that is not JSON lines, or a trusted root that is not JSON', async () => {
      const rel = await makeRelease();
      const before = snapshot(rel);
      const { dir } = inputs();
      writeFileSync(join(dir, 'bad.jsonl'), 'garbage\n');
      writeFileSync(join(dir, 'bad.json'), '[1,2]');
      const a = await repack(rel, ['--attestation', join(dir, 'bad.jsonl')]);
      expect(a.code).toBe(1);
      expect(a.stderr).toContain(`${join(dir, 'bad.jsonl')}:1 is not JSON`);
      const b = await repack(rel, ['--trusted-root', join(dir, 'bad.json')]);
      expect(b.code).toBe(1);
      expect(b.stderr).toContain('trusted_root.json');
      expectUnchanged(rel, before);
    });

    test('a member file that does not exist', async () => {
      const rel = await makeRelease();
      const before = snapshot(rel);
      const r = await repack(rel, ['--cosign-asset', '/nonexistent/cosign']);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('/nonexistent/cosign');
      expectUnchanged(rel, before);
    });

    test('a damaged bundle', async () => {
      const rel = await makeRelease();
      const bytes = readFileSync(rel.bundle);
      writeFileSync(rel.bundle, bytes.subarray(0, bytes.length >> 1));
      const before = snapshot(rel);
      const r = await repack(rel, ['--attestation', inputs().attestation]);
      expect(r.code).toBe(1);
      expectNoStack(r.stderr);
      expectUnchanged(rel, before);
    });
  });

  test('no bundle for that version: says to package first', async () => {
    const out = join(tempDir(), 'dist');
    mkdirSync(out);
    const r = await build(['repack', '--version', 'v9.9.9', '--out', out, '--attestation', inputs().attestation]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('no bundle at');
    expect(r.stderr).toContain('containai-build package --version v9.9.9');
    expect(readdirSync(out)).toEqual([]);
  });

  test('nothing to add, or no --version, is a usage error', async () => {
    const rel = await makeRelease();
    const before = snapshot(rel);
    expect((await repack(rel, [])).code).toBe(2);
    expect((await build(['repack', '--out', rel.out, '--attestation', inputs().attestation])).code).toBe(2);
    expect((await build(['repack', '--version', '../x', '--out', rel.out, '--attestation', inputs().attestation])).code).toBe(1);
    expectUnchanged(rel, before);
  });
});
