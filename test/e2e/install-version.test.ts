/**
 * The version is bound into the signed manifest (payload/release.json, listed
 * in SHA256SUMS): a validly signed old release served under a newer version's
 * name is refused before anything becomes current, whether it comes from the
 * release server, --asset-dir or --bundle; and --verify-only finds a release
 * relabelled on disk as another version. Every refusal checks that current is
 * unchanged, no staging is left and the downgrade floor did not move.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readlinkSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { build, expectNoStack, host, removeDir, tempDir } from '../helpers/cli.ts';
import { handInstall, tamperWithSums } from '../helpers/installed-release.ts';
import { makeRelease, type Release } from '../helpers/release.ts';
import { expectIntact, makeTestBundle, startReleaseServer, type ReleaseServer } from '../helpers/release-server.ts';
import { makeKeyPair, writeKeyPair } from '../helpers/signing.ts';

const REPO = 'acme/containai';
let server: ReleaseServer;
let work: string;
let keys: { pub: string; key: string };
let trustDir: string;
const signed: Record<string, Release> = {};

beforeAll(async () => {
  server = await startReleaseServer();
  work = tempDir('cai-install-version-');
  keys = writeKeyPair(work, 'release', makeKeyPair('ecdsa'));
  trustDir = join(work, 'trust');
  mkdirSync(trustDir);
  // Real releases, built and signed as CI does.
  for (const version of ['v1.0.0', 'v1.1.0']) {
    const release = await makeRelease({ version, out: join(work, 'dist') });
    const r = await build(['sign', '--version', version, '--out', release.out, '--key', keys.key]);
    if (r.code !== 0) throw new Error(`sign ${version} failed:\n${r.stderr}`);
    signed[version] = release;
  }
}, 120_000);
afterAll(async () => {
  await server.stop();
  removeDir(work);
});

let roots = 0;
const newRoot = () => join(work, `root${roots++}`);
const SIGNED_POLICY = () => ['--key', keys.pub, '--no-public-good', '--trust-dir', trustDir, '--allow-nonroot'];

function floor(root: string): string | undefined {
  const path = join(root, 'state', 'floor.json');
  return existsSync(path) ? readFileSync(path, 'utf8') : undefined;
}

/** A root whose current is the signed v1.0.0, installed from the release server. */
async function rootWithSignedV1(): Promise<string> {
  const root = newRoot();
  server.publish(REPO, 'v1.0.0', signed['v1.0.0']!.bundle);
  const r = await host(['install', '--version', 'v1.0.0', '--repo', REPO, '--install-root', root, ...SIGNED_POLICY()], { env: { CONTAINAI_GITHUB_URL: server.url } });
  expect(r.code, r.stderr).toBe(0);
  return root;
}

function expectRefusedUnchanged(root: string, r: { code: number; stderr: string }, floorBefore: string | undefined): void {
  expect(r.code, r.stderr).toBe(1);
  expectNoStack(r.stderr);
  expectIntact(root, 'v1.0.0');
  expect(existsSync(join(root, 'releases', 'v1.1.0'))).toBe(false);
  expect(existsSync(join(root, 'previous'))).toBe(false);
  expect(floor(root)).toBe(floorBefore);
}

describe('the payload names its version', () => {
  test("v1.0.0's signed bundle served as v1.1.0 from the release server is refused", async () => {
    const root = await rootWithSignedV1();
    const floorBefore = floor(root);
    server.publish(REPO, 'v1.1.0', signed['v1.0.0']!.bundle);
    const r = await host(['install', '--version', 'v1.1.0', '--repo', REPO, '--install-root', root, ...SIGNED_POLICY()], { env: { CONTAINAI_GITHUB_URL: server.url } });
    expectRefusedUnchanged(root, r, floorBefore);
    // The signature itself is valid: what is refused is the version, and the message names both.
    expect(r.stderr).toContain('this is release v1.0.0 (its release.json), not v1.1.0');
    const events = readFileSync(join(root, 'state', 'events.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(events.at(-1)).toMatchObject({ action: 'install', version: 'v1.1.0', outcome: 'refused' });
    // The real v1.1.0 still installs afterwards.
    server.publish(REPO, 'v1.1.0', signed['v1.1.0']!.bundle);
    const good = await host(['install', '--version', 'v1.1.0', '--repo', REPO, '--install-root', root, ...SIGNED_POLICY()], { env: { CONTAINAI_GITHUB_URL: server.url } });
    expect(good.code, good.stderr).toBe(0);
    expectIntact(root, 'v1.1.0');
    expect(JSON.parse(readFileSync(join(root, 'current', 'release.json'), 'utf8'))).toMatchObject({ format: 2, version: 'v1.1.0' });
  }, 60_000);

  test("v1.0.0's signed bundle renamed containai-v1.1.0.tar.gz in --asset-dir or as --bundle is refused", async () => {
    const root = await rootWithSignedV1();
    const floorBefore = floor(root);
    const assets = join(work, 'renamed');
    mkdirSync(assets, { recursive: true });
    copyFileSync(signed['v1.0.0']!.bundle, join(assets, 'containai-v1.1.0.tar.gz'));
    const fromDir = await host(['install', '--version', 'v1.1.0', '--asset-dir', assets, '--install-root', root, ...SIGNED_POLICY()]);
    expectRefusedUnchanged(root, fromDir, floorBefore);
    expect(fromDir.stderr).toContain('this is release v1.0.0 (its release.json), not v1.1.0');
    const fromFile = await host(['install', '--version', 'v1.1.0', '--bundle', join(assets, 'containai-v1.1.0.tar.gz'), '--install-root', root, ...SIGNED_POLICY()]);
    expectRefusedUnchanged(root, fromFile, floorBefore);
    expect(fromFile.stderr).toContain('this is release v1.0.0 (its release.json), not v1.1.0');
  }, 60_000);

  test('--bundle named for another version is refused before it is read', async () => {
    const root = await rootWithSignedV1();
    const floorBefore = floor(root);
    const r = await host(['install', '--version', 'v1.1.0', '--bundle', signed['v1.0.0']!.bundle, '--install-root', root, ...SIGNED_POLICY()]);
    expectRefusedUnchanged(root, r, floorBefore);
    expect(r.stderr).toContain('refusing to install containai-v1.0.0.tar.gz as v1.1.0: the bundle file is named for v1.0.0');
    // A name that states no version leaves the decision to release.json.
    const plain = join(work, 'plain-bundle.tgz');
    copyFileSync(signed['v1.1.0']!.bundle, plain);
    const ok = await host(['install', '--version', 'v1.1.0', '--bundle', plain, '--install-root', root, ...SIGNED_POLICY()]);
    expect(ok.code, ok.stderr).toBe(0);
    expectIntact(root, 'v1.1.0');
  }, 60_000);

  test.each([
    ['a payload without release.json', { payloadVersion: null }, 'the payload must open with SHA256SUMS and release.json'],
    ['a release.json naming another version', { payloadVersion: 'v1.0.0' }, 'this is release v1.0.0 (its release.json), not v1.1.0'],
    ['a release.json that is not JSON', { releaseJson: 'version=v1.1.0\n' }, 'release.json is not JSON'],
    ['a release.json without a version', { releaseJson: '{"format":2,"entries":{}}\n' }, 'release.json: version:'],
  ] as const)('%s is refused (unsigned path, sums intact)', async (_name, options, message) => {
    const root = newRoot();
    const assets = join(work, `assets${roots}`);
    makeTestBundle(assets, 'v1.0.0');
    makeTestBundle(assets, 'v1.1.0', options);
    const base = ['--asset-dir', assets, '--install-root', root, '--allow-unsigned', '--allow-nonroot'];
    expect((await host(['install', '--version', 'v1.0.0', ...base])).code).toBe(0);
    const floorBefore = floor(root);
    const r = await host(['install', '--version', 'v1.1.0', ...base]);
    expectRefusedUnchanged(root, r, floorBefore);
    expect(r.stderr).toContain(message);
  });
});

describe('verify-only ties SHA256SUMS to the signature kept in .containai/', () => {
  test('a file changed together with its line in SHA256SUMS is found, even with install.json rewritten to match, and nothing changes', async () => {
    const root = await rootWithSignedV1();
    const dir = join(root, 'releases', 'v1.0.0');
    const listed = readFileSync(join(dir, 'SHA256SUMS'), 'utf8').split('\n').map((line) => line.slice(66));
    const target = listed.find((path) => path.startsWith('host/')) as string;
    tamperWithSums(dir, target, 'echo evil\n');
    const r = await host(['install', '--verify-only', '--install-root', root, ...SIGNED_POLICY()]);
    expect(r.code).toBe(1);
    expectNoStack(r.stderr);
    expect(r.stderr).toContain('releases/v1.0.0/SHA256SUMS: is not the manifest .containai/install.json recorded at install');
    // Whoever can write the release can write install.json too: then the kept signature over SHA256SUMS decides.
    tamperWithSums(dir, target, 'echo evil\n', { andRecord: true });
    const signed = await host(['install', '--verify-only', '--install-root', root, ...SIGNED_POLICY()]);
    expect(signed.code).toBe(1);
    expectNoStack(signed.stderr);
    expect(signed.stderr).toContain('releases/v1.0.0: SHA256SUMS.sig does not verify with any pinned key');
    expect(readlinkSync(join(root, 'current'))).toBe('releases/v1.0.0');
    expect(readFileSync(join(dir, target), 'utf8')).toBe('echo evil\n');
  }, 60_000);
});

describe('verify-only checks release.json against the folder and install.json', () => {
  test('a release moved and relabelled as another version is found, and nothing changes', async () => {
    const root = await rootWithSignedV1();
    const ok = await host(['install', '--verify-only', '--install-root', root, ...SIGNED_POLICY()]);
    expect(ok.code, ok.stderr).toBe(0);
    // Relabel v1.0.0 as v1.1.0 on disk: folder and .containai/install.json. SHA256SUMS and the signature still pass.
    const from = join(root, 'releases', 'v1.0.0');
    const to = join(root, 'releases', 'v1.1.0');
    renameSync(from, to);
    const recordPath = join(to, '.containai', 'install.json');
    const record = JSON.parse(readFileSync(recordPath, 'utf8'));
    writeFileSync(recordPath, JSON.stringify({ ...record, version: 'v1.1.0' }));
    rmSync(join(root, 'current'));
    symlinkSync('releases/v1.1.0', join(root, 'current'));
    const r = await host(['install', '--verify-only', '--install-root', root, ...SIGNED_POLICY()]);
    expect(r.code).toBe(1);
    expectNoStack(r.stderr);
    expect(r.stderr).toContain('releases/v1.1.0: this is release v1.0.0 (its release.json), not v1.1.0');
    expect(readlinkSync(join(root, 'current'))).toBe('releases/v1.1.0');
    expect(JSON.parse(readFileSync(join(to, 'release.json'), 'utf8'))).toMatchObject({ format: 2, version: 'v1.0.0' });
  }, 60_000);

  test('a release without release.json does not verify', async () => {
    const root = newRoot();
    handInstall(root, { version: 'v1.0.0', payloadVersion: null });
    const r = await host(['install', '--verify-only', '--install-root', root, '--allow-unsigned']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('releases/v1.0.0/release.json: the manifest lists it, and it is not there');
    const good = newRoot();
    handInstall(good, { version: 'v1.0.0' });
    const ok = await host(['install', '--verify-only', '--install-root', good, '--allow-unsigned']);
    expect(ok.code, ok.stderr).toBe(0);
  });
});
