/**
 * `containai-host trust update` against a real TUF repository on loopback
 * (test/helpers/tuf-repo.ts), with the compiled binary. The chain starts from
 * the repository's root v1, named by CONTAINAI_TUF_ROOT (tests only); the
 * production path (the compiled-in root) is checked to ignore what such a
 * run keeps.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expectNoStack, host, removeDir, tempDir } from '../helpers/cli.ts';
import { makeTestCA, sha256Hex } from '../helpers/signing.ts';
import { TufRepo, tufKey } from '../helpers/tuf-repo.ts';

const dirs: string[] = [];
const repos: TufRepo[] = [];
afterAll(async () => {
  await Promise.all(repos.map((r) => r.stop()));
  dirs.forEach(removeDir);
});

interface Setup {
  repo: TufRepo;
  state: string;
  work: string;
  env: Record<string, string>;
  kept: string;
}

/** A repository with root v1 and one published target, served; a state folder; the env that points the binary at both. */
async function setup(target: Buffer = Buffer.from(JSON.stringify(makeTestCA().trustedRoot))): Promise<Setup> {
  const repo = new TufRepo();
  repos.push(repo);
  repo.publish({ target });
  await repo.serve();
  const work = tempDir('cai-tuf-');
  dirs.push(work);
  const state = join(work, 'state');
  const rootFile = join(work, '1.root.json');
  writeFileSync(rootFile, repo.initialRoot);
  const env = { CONTAINAI_STATE_DIR: state, CONTAINAI_TUF_URL: repo.url, CONTAINAI_TUF_ROOT: rootFile };
  const kept = join(state, 'trust', `tuf-test-${sha256Hex(repo.initialRoot).slice(0, 16)}.json`);
  return { repo, state, work, env, kept };
}

async function update(env: Record<string, string>) {
  const r = await host(['trust', 'update', '--json'], { env });
  expectNoStack(r.stderr);
  return { ...r, doc: JSON.parse(r.stdout) };
}

/** The kept file is unchanged and no work folder is left behind. */
function expectUnchanged(s: Setup, before: string | undefined): void {
  expect(existsSync(s.kept) ? readFileSync(s.kept, 'utf8') : undefined).toBe(before);
  const trustDir = join(s.state, 'trust');
  if (existsSync(trustDir)) expect(readdirSync(trustDir).filter((n) => n.startsWith('.'))).toEqual([]);
}

describe('trust update through TUF', () => {
  test('a good repository: the chain is verified, the target kept, and a second run finds nothing newer', async () => {
    const s = await setup();
    const r = await update(s.env);
    expect(r.code).toBe(0);
    expect(r.doc).toMatchObject({ ok: true, outcome: 'updated', inUse: 'tuf-updated', root: { version: 1 }, timestamp: { version: 1 }, targets: { version: 1 } });
    const kept = JSON.parse(readFileSync(s.kept, 'utf8'));
    expect(kept.startedFrom).toBe(sha256Hex(s.repo.initialRoot));
    expect(JSON.parse(kept.trustedRoot).certificateAuthorities).toHaveLength(1);
    const again = await update(s.env);
    expect(again.code).toBe(0);
    expect(again.doc.outcome).toBe('unchanged');
    expect(again.stderr).toContain('unchanged: TUF root v1 is the newest');
  });

  test('root v1 → v2 rotation (new keys, threshold 2, signed by the old and the new) is followed', async () => {
    const s = await setup();
    const [k2, k3] = [tufKey(), tufKey()];
    const old = s.repo.rootKeys;
    s.repo.rotateRoot({ keys: [k2, k3], threshold: 2, signWith: [...old, k2, k3] });
    const r = await update(s.env);
    expect(r.code).toBe(0);
    expect(r.doc.root.version).toBe(2);
    const kept = JSON.parse(readFileSync(s.kept, 'utf8'));
    expect(JSON.parse(kept.metadata.root).signed.roles.root.keyids.sort()).toEqual([k2.id, k3.id].sort());
    // The next rotation must be signed by the v2 keys: the old key alone no longer counts.
    s.repo.rotateRoot({ keys: [k2, k3], threshold: 2, signWith: old });
    const refused = await update(s.env);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/root was signed by 0\/2 keys/);
  });

  test('a root v2 signed below its threshold is refused, and nothing kept changes', async () => {
    const s = await setup();
    expect((await update(s.env)).code).toBe(0);
    const before = readFileSync(s.kept, 'utf8');
    const [k2, k3] = [tufKey(), tufKey()];
    // v2 asks for 2 of {k2, k3} but carries only k2's signature (and the old key's).
    s.repo.rotateRoot({ keys: [k2, k3], threshold: 2, signWith: [...s.repo.rootKeys, k2] });
    const r = await update(s.env);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/refused the TUF repository at http:\/\/127\.0\.0\.1:\d+: metadata not signed by enough trusted keys \(root was signed by 1\/2 keys\); kept the TUF-updated root \(TUF root v1/);
    expect(r.doc).toMatchObject({ ok: false, error: { code: 'VERIFY', kept: 'tuf-updated' } });
    expectUnchanged(s, before);
  });

  test('an expired timestamp (a freeze) is refused', async () => {
    const s = await setup();
    expect((await update(s.env)).code).toBe(0);
    const before = readFileSync(s.kept, 'utf8');
    s.repo.publish({ target: Buffer.from(JSON.stringify(makeTestCA().trustedRoot)), timestampDays: -1 });
    const r = await update(s.env);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/expired metadata, as a frozen or stale repository serves \(.*timestamp\.json is expired\)/);
    expectUnchanged(s, before);
  });

  test('a timestamp naming an older snapshot version (a rollback) is refused', async () => {
    const s = await setup();
    s.repo.publish({ target: Buffer.from(JSON.stringify(makeTestCA().trustedRoot)) });
    expect((await update(s.env)).code).toBe(0); // has now seen snapshot v2
    const before = readFileSync(s.kept, 'utf8');
    s.repo.publishTimestamp({ snapshotVersion: 1 });
    const r = await update(s.env);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/an older version than this host has already seen, as a rollback serves \(New snapshot version 1 is less than current version 2\)/);
    expectUnchanged(s, before);
  });

  test('a target served with other bytes than its signed hash is refused, on the first update too', async () => {
    const s = await setup();
    const good = Buffer.from(JSON.stringify(makeTestCA().trustedRoot));
    const evil = Buffer.from(JSON.stringify(makeTestCA().trustedRoot)); // another CA, same length
    expect(evil.length).toBe(good.length);
    s.repo.publish({ target: good, servedTarget: evil });
    const r = await update(s.env);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/a file that does not match its signed hash or length \(Expected hash [0-9a-f]{64} but got [0-9a-f]{64}\)/);
    expectUnchanged(s, undefined);
  });

  test('with no network, update keeps what it has and says so', async () => {
    const s = await setup();
    expect((await update(s.env)).code).toBe(0);
    const before = readFileSync(s.kept, 'utf8');
    await s.repo.stop();
    const r = await update(s.env);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/could not reach the TUF repository \(http:\/\/127\.0\.0\.1:\d+\/2\.root\.json: .+\); kept the TUF-updated root/);
    expect(r.stderr).toContain('it is never needed to install');
    expect(r.doc.error.code).toBe('NETWORK');
    expectUnchanged(s, before);
    // The production path offline: nothing kept, the compiled-in root stays in use.
    const state = join(s.work, 'offline-state');
    const offline = await host(['trust', 'update'], { env: { CONTAINAI_STATE_DIR: state, CONTAINAI_TUF_URL: 'http://127.0.0.1:9' } });
    expect(offline.code).toBe(1);
    expect(offline.stderr).toMatch(/could not reach the TUF repository .*; kept the compiled-in root \(TUF root v\d+/);
    expect(existsSync(join(state, 'trust', 'public-good.json'))).toBe(false);
  });

  test('after a good update, an attestation signed under the new root verifies offline; the compiled-in root alone refuses it', async () => {
    const ca = makeTestCA();
    const s = await setup(Buffer.from(JSON.stringify(ca.trustedRoot)));
    const artifact = join(s.work, 'artifact.bin');
    writeFileSync(artifact, 'release bytes\n');
    const attestation = join(s.work, 'artifact.sigstore.json');
    writeFileSync(attestation, JSON.stringify(ca.attest(sha256Hex(Buffer.from('release bytes\n')))));
    const verify = (env: Record<string, string>) => host(['verify', '--artifact', artifact, '--attestation', attestation, '--repo', 'acme/widgets'], { env });

    const before = await verify(s.env);
    expect(before.code).toBe(1);
    expect(before.stderr).toContain('does not chain to a trusted root');

    expect((await update(s.env)).code).toBe(0);
    const after = await verify(s.env);
    expect(after.code).toBe(0);

    // A production run (no CONTAINAI_TUF_ROOT) with the same state folder never uses a test chain.
    const production = await verify({ CONTAINAI_STATE_DIR: s.state });
    expect(production.code).toBe(1);
    expect(production.stderr).toContain('does not chain to a trusted root');
    const status = await host(['trust', 'status', '--json'], { env: { CONTAINAI_STATE_DIR: s.state } });
    const doc = JSON.parse(status.stdout);
    expect(doc.publicGood.inUse).toBe('compiled-in');
    expect(doc.sources.map((x: { name: string }) => x.name)).toEqual(['public-good (compiled in)']);

    // With the test environment, status shows the TESTING root in use, and check-health warns about it.
    const testing = JSON.parse((await host(['trust', 'status', '--json'], { env: s.env })).stdout);
    expect(testing.publicGood.inUse).toBe('tuf-updated');
    expect(testing.sources[1]).toMatchObject({ origin: 'tuf-updated', inUse: true, testing: true, tufVersion: 1 });
  });

  test('CONTAINAI_TUF_ROOT without CONTAINAI_TUF_URL is refused: the public-good chain starts from the compiled-in root', async () => {
    const s = await setup();
    const r = await host(['trust', 'update'], { env: { CONTAINAI_STATE_DIR: s.state, CONTAINAI_TUF_ROOT: s.env.CONTAINAI_TUF_ROOT! } });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('CONTAINAI_TUF_ROOT is for tests against their own TUF repository: it needs CONTAINAI_TUF_URL too');
    const v = await host(['trust', 'status'], { env: { CONTAINAI_STATE_DIR: s.state, CONTAINAI_TUF_URL: 'ftp://example.com' } });
    expect(v.code).toBe(1);
    expect(v.stderr).toContain('CONTAINAI_TUF_URL must be https://');
  });
});
