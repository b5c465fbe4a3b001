/**
 * containai-build repack: new members join dist/<version>/ and the bundle is rebuilt from that
 * folder; payload.tar.gz's bytes never change; an attestation must name SHA256SUMS; a bad input
 * or a folder mixing two builds leaves everything as it was. Every run's exit code is asserted.
 */
import { describe, expect, test } from 'bun:test';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { build, expectNoStack, type RunResult, tempDir } from '../helpers/cli.ts';
import { attestationFor, fakeAgents, makeRelease, type Release, releaseSubjects, SMALL_HOST_TREE } from '../helpers/release.ts';
import { makeKeyPair, sha256Hex, writeKeyPair } from '../helpers/signing.ts';

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

/** The attestation CI makes: one statement over SHA256SUMS, the payload, the agents' sums and both agents. */
function inputs(rel: Release): { dir: string; attestation: string; cosign: string; root: string } {
  const dir = tempDir('cai-inputs-');
  const attestation = join(dir, 'att.jsonl');
  writeFileSync(attestation, attestationFor(releaseSubjects(rel)));
  writeFileSync(join(dir, 'cosign'), '#!/bin/sh\necho cosign\n');
  writeFileSync(join(dir, 'root.json'), '{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1"}\n');
  return { dir, attestation, cosign: join(dir, 'cosign'), root: join(dir, 'root.json') };
}

const repack = (rel: Release, args: string[], env?: Record<string, string>) => build(['repack', '--version', rel.version, '--out', rel.out, ...args], { env });

function expectOk(r: RunResult): void {
  if (r.code !== 0) throw new Error(`repack exited ${r.code}:\n${r.stderr}`);
  expectNoStack(r.stderr);
}

function expectRefused(r: RunResult, text: string): void {
  expect(r.code).toBe(1);
  expect(r.stderr).toContain(text);
  expectNoStack(r.stderr);
}

/** The release folder, byte for byte, to compare after a refusal. */
function snapshot(rel: Release): Map<string, Buffer> {
  return new Map(readdirSync(rel.dir).map((f) => [f, readFileSync(join(rel.dir, f))]));
}

function expectUnchanged(rel: Release, before: Map<string, Buffer>): void {
  expect(readdirSync(rel.out)).toEqual([rel.version]);
  expect(readdirSync(rel.dir).sort()).toEqual([...before.keys()].sort());
  for (const [f, bytes] of before) expect(readFileSync(join(rel.dir, f)).equals(bytes), f).toBe(true);
}

describe('containai-build repack', () => {
  test('adds the attestation, cosign and trusted root to dist/<version>/ and the bundle, in the format order; payload.tar.gz keeps its bytes', async () => {
    const rel = await makeRelease();
    const payload = readFileSync(rel.payload);
    const { attestation, cosign, root } = inputs(rel);
    const r = await repack(rel, ['--attestation', attestation, '--cosign-asset', cosign, '--trusted-root', root, '--json']);
    expectOk(r);
    const order = ['SHA256SUMS', 'attestation.intoto.jsonl', 'trusted_root.json', 'payload.sha256', 'payload.tar.gz', 'cosign'];
    expect(JSON.parse(r.stdout).members).toEqual(order);
    expect(members(rel.bundle)).toEqual(order);
    expect(memberBytes(rel.bundle, 'payload.tar.gz').equals(payload)).toBe(true);
    expect(readFileSync(rel.payload).equals(payload)).toBe(true);
    // The attestation is a file of the release too (uploaded as an asset), byte for byte.
    expect(readFileSync(join(rel.dir, 'attestation.intoto.jsonl')).equals(readFileSync(attestation))).toBe(true);
    expect(memberBytes(rel.bundle, 'attestation.intoto.jsonl').equals(readFileSync(attestation))).toBe(true);
    expect(readFileSync(join(rel.dir, 'trusted_root.json')).equals(readFileSync(root))).toBe(true);
    expect(statSync(join(rel.dir, 'cosign')).mode & 0o777).toBe(0o755);
    expect(sh(['tar', '-tvzf', rel.bundle]).out).toMatch(/-rwxr-xr-x 0\/0 .* cosign/);
    expect(readdirSync(rel.out)).toEqual([rel.version]);
    expect(readdirSync(rel.dir).filter((f) => f.startsWith('.'))).toEqual([]);
  });

  test('an attestation naming SHA256SUMS alone is enough; a signature made by sign stays in the rebuilt bundle', async () => {
    const rel = await makeRelease();
    const keys = writeKeyPair(tempDir(), 'k', makeKeyPair('ecdsa'));
    expect((await build(['sign', '--version', rel.version, '--out', rel.out, '--key', keys.key])).code).toBe(0);
    const dir = tempDir();
    writeFileSync(join(dir, 'att.jsonl'), attestationFor({ SHA256SUMS: sha256Hex(readFileSync(rel.sums)) }));
    expectOk(await repack(rel, ['--attestation', join(dir, 'att.jsonl')]));
    expect(members(rel.bundle)).toEqual(['SHA256SUMS', 'attestation.intoto.jsonl', 'SHA256SUMS.sigstore.json', 'SHA256SUMS.sig', 'payload.sha256', 'payload.tar.gz']);
    expect(memberBytes(rel.bundle, 'SHA256SUMS.sig').equals(readFileSync(join(rel.dir, 'SHA256SUMS.sig')))).toBe(true);
  });

  test('a second repack replaces a member and keeps the others', async () => {
    const rel = await makeRelease();
    const { attestation, cosign } = inputs(rel);
    expectOk(await repack(rel, ['--attestation', attestation, '--cosign-asset', cosign]));
    const newer = join(tempDir(), 'att2.jsonl');
    const sums = sha256Hex(readFileSync(rel.sums));
    writeFileSync(newer, attestationFor({ other: '2'.repeat(64) }) + attestationFor({ SHA256SUMS: sums }));
    expectOk(await repack(rel, ['--attestation', newer]));
    expect(members(rel.bundle)).toEqual(['SHA256SUMS', 'attestation.intoto.jsonl', 'payload.sha256', 'payload.tar.gz', 'cosign']);
    expect(memberBytes(rel.bundle, 'attestation.intoto.jsonl').equals(readFileSync(newer))).toBe(true);
    expect(readFileSync(join(rel.dir, 'attestation.intoto.jsonl')).equals(readFileSync(newer))).toBe(true);
  });

  test('the same repack of the same build gives the same bundle bytes, in two folders too', async () => {
    const agentDir = fakeAgents();
    const a = await makeRelease({ agentDir });
    const b = await makeRelease({ agentDir });
    const { attestation } = inputs(a);
    const env = { SOURCE_DATE_EPOCH: '1700000000' };
    expectOk(await repack(a, ['--attestation', attestation], env));
    const first = readFileSync(a.bundle);
    expectOk(await repack(a, ['--attestation', attestation], env));
    expect(readFileSync(a.bundle).equals(first)).toBe(true);
    expectOk(await repack(b, ['--attestation', attestation], env));
    expect(readFileSync(b.bundle).equals(first)).toBe(true);
  });

  test('a damaged or missing bundle is rebuilt from the folder: the bundle is a function of its files', async () => {
    const rel = await makeRelease();
    const { attestation } = inputs(rel);
    const good = readFileSync(rel.bundle);
    writeFileSync(rel.bundle, good.subarray(0, good.length >> 1));
    expectOk(await repack(rel, ['--attestation', attestation]));
    expect(sh(['gzip', '-t', rel.bundle]).code).toBe(0);
    Bun.spawnSync(['rm', rel.bundle]);
    expectOk(await repack(rel, ['--attestation', attestation]));
    expect(members(rel.bundle)).toEqual(['SHA256SUMS', 'attestation.intoto.jsonl', 'payload.sha256', 'payload.tar.gz']);
  });

  describe('refuses, leaving the release folder byte-identical', () => {
    test("an attestation that does not name this release's SHA256SUMS, saying which digests it does name", async () => {
      const rel = await makeRelease();
      const before = snapshot(rel);
      const payloadSha = sha256Hex(readFileSync(rel.payload));
      // The first format's attestation: payload.tar.gz alone.
      const old = join(tempDir(), 'old.jsonl');
      writeFileSync(old, attestationFor({ 'payload.tar.gz': payloadSha }));
      const r = await repack(rel, ['--attestation', old]);
      expectRefused(r, `--attestation ${old} does not attest this release's SHA256SUMS (sha256:${sha256Hex(readFileSync(rel.sums))})`);
      expect(r.stderr).toContain(`it names only payload.tar.gz sha256:${payloadSha}`);
      expectUnchanged(rel, before);
    });

    test("another build's attestation (a SHA256SUMS of other content)", async () => {
      const rel = await makeRelease();
      const other = await makeRelease({ hostTree: { ...SMALL_HOST_TREE, 'extra.txt': 'x\n' } });
      const before = snapshot(rel);
      const r = await repack(rel, ['--attestation', inputs(other).attestation]);
      expectRefused(r, "does not attest this release's SHA256SUMS");
      expect(r.stderr).toContain(`SHA256SUMS sha256:${sha256Hex(readFileSync(other.sums))}`);
      expectUnchanged(rel, before);
    });

    test('a payload.tar.gz that does not match payload.sha256', async () => {
      const rel = await makeRelease();
      writeFileSync(rel.payloadSha256, `${'1'.repeat(64)}  payload.tar.gz\n`);
      const before = snapshot(rel);
      const r = await repack(rel, ['--attestation', inputs(rel).attestation]);
      expectRefused(r, `${rel.payload} does not match payload.sha256`);
      expectUnchanged(rel, before);
    });

    test("a SHA256SUMS that is not the payload's own (two builds in one folder)", async () => {
      const rel = await makeRelease();
      const other = await makeRelease({ hostTree: { ...SMALL_HOST_TREE, 'extra.txt': 'x\n' } });
      const { attestation } = inputs(other); // would match the foreign SHA256SUMS
      copyFileSync(other.sums, rel.sums);
      const before = snapshot(rel);
      const r = await repack(rel, ['--attestation', attestation]);
      expectRefused(r, `${rel.sums} is not the payload/SHA256SUMS inside payload.tar.gz`);
      expectUnchanged(rel, before);
    });

    test('a payload of the first format (SHA256SUMS not at its start)', async () => {
      const rel = await makeRelease();
      // A payload whose first entries are not payload/ then payload/SHA256SUMS, with a matching payload.sha256.
      const work = tempDir('cai-old-');
      mkdirSync(join(work, 'payload'));
      writeFileSync(join(work, 'payload', 'README.md'), 'old\n');
      copyFileSync(rel.sums, join(work, 'payload', 'SHA256SUMS'));
      expect(sh(['tar', '--no-recursion', '-czf', rel.payload, '-C', work, 'payload', 'payload/README.md', 'payload/SHA256SUMS']).code).toBe(0);
      writeFileSync(rel.payloadSha256, `${sha256Hex(readFileSync(rel.payload))}  payload.tar.gz\n`);
      const before = snapshot(rel);
      const r = await repack(rel, ['--attestation', inputs(rel).attestation]);
      expectRefused(r, 'cannot read payload/SHA256SUMS from payload.tar.gz: payload/SHA256SUMS is not among its first 2 entries');
      expectUnchanged(rel, before);
    });

    test('an attestation that is not JSON lines, or a trusted root that is not JSON', async () => {
      const rel = await makeRelease();
      const before = snapshot(rel);
      const dir = tempDir();
      writeFileSync(join(dir, 'bad.jsonl'), 'garbage\n');
      writeFileSync(join(dir, 'bad.json'), '[1,2]');
      expectRefused(await repack(rel, ['--attestation', join(dir, 'bad.jsonl')]), `${join(dir, 'bad.jsonl')}:1 is not JSON`);
      expectRefused(await repack(rel, ['--trusted-root', join(dir, 'bad.json')]), 'trusted_root.json');
      expectUnchanged(rel, before);
    });

    test('a member file that does not exist', async () => {
      const rel = await makeRelease();
      const before = snapshot(rel);
      expectRefused(await repack(rel, ['--cosign-asset', '/nonexistent/cosign']), '/nonexistent/cosign');
      expectUnchanged(rel, before);
    });
  });

  test('no release for that version: says to package first', async () => {
    const out = join(tempDir(), 'dist');
    mkdirSync(out);
    const r = await build(['repack', '--version', 'v9.9.9', '--out', out, '--trusted-root', join(inputs(await makeRelease()).dir, 'root.json')]);
    expectRefused(r, `no release at ${join(out, 'v9.9.9')}`);
    expect(r.stderr).toContain('containai-build package --version v9.9.9');
    expect(readdirSync(out)).toEqual([]);
  });

  test('nothing to add, or no --version, is a usage error (exit 2); an unsafe version is refused (exit 1)', async () => {
    const rel = await makeRelease();
    const before = snapshot(rel);
    const { attestation } = inputs(rel);
    const nothing = await repack(rel, []);
    expect(nothing.code).toBe(2);
    expect(nothing.stderr).toContain('nothing to add');
    const noVersion = await build(['repack', '--out', rel.out, '--attestation', attestation]);
    expect(noVersion.code).toBe(2);
    expect(noVersion.stderr).toContain('repack needs --version V');
    const unsafe = await build(['repack', '--version', '../x', '--out', rel.out, '--attestation', attestation]);
    expect(unsafe.code).toBe(1);
    expect(unsafe.stderr).toContain('not a safe version name');
    expectUnchanged(rel, before);
  });
});
