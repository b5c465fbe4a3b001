/**
 * The rollout's pure parts and its verification, in-process: the ramp
 * (parsing, the staircase, when a host's turn comes), the bucket
 * (deterministic, uniform, monotone in the share), the decision's order,
 * and the statement signed with a key (lib/trust/sign.ts signDsse) or
 * attested keylessly (a test CA shaped like GitHub's) and verified with the
 * production verifier under a policy whose predicate type is the rollout's.
 */
import { describe, expect, test } from 'bun:test';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/cli.ts';
import { makeKeyPair, makeTestCA, writeKeyPair } from '../helpers/signing.ts';
import { classifyChannelManifest, rolloutManifest } from '../../lib/rollout/artifact.ts';
import { hostBucket, readMachineId } from '../../lib/rollout/bucket.ts';
import { decide, type HostFacts } from '../../lib/rollout/decide.ts';
import { parseRamp, predicateBytes, readStatement, ROLLOUT_PREDICATE_TYPE, shareAt, statementBytes, turnAt, type RolloutPredicate, type RolloutStatement } from '../../lib/rollout/statement.ts';
import { rolloutPolicy, verifyStatement } from '../../lib/rollout/verify.ts';
import { loadSigningKey } from '../../lib/trust/keys.ts';
import { policyFromArgs } from '../../lib/trust/policy.ts';
import { signDsse } from '../../lib/trust/sign.ts';
import { digestOf, MEDIA_TYPE_IMAGE_MANIFEST } from '../../lib/oci/types.ts';
import { ContainaiError } from '../../lib/errors.ts';
import { refusal } from '../helpers/refusal.ts';

const H = 3600;
const T0 = Date.parse('2025-03-01T00:00:00Z');

function predicate(over: Partial<RolloutPredicate> = {}): RolloutPredicate {
  return {
    version: 'v2.0.0',
    channel: 'stable',
    sequence: 4,
    start: '2025-03-01T00:00:00Z',
    ramp: parseRamp('1%@0h,10%@6h,100%@24h'),
    halt: false,
    expires: '2025-03-08T00:00:00Z',
    issuedAt: '2025-03-01T00:00:00Z',
    ...over,
  };
}

describe('the ramp', () => {
  test('parses percent@span steps, and names what is wrong', () => {
    expect(parseRamp('1%@0h,10%@6h,100%@24h')).toEqual([
      { after: 0, percent: 1 },
      { after: 6 * H, percent: 10 },
      { after: 24 * H, percent: 100 },
    ]);
    expect(parseRamp('0.5%@30min, 50%@1d')).toEqual([
      { after: 1800, percent: 0.5 },
      { after: 86400, percent: 50 },
    ]);
    for (const [text, says] of [
      ['', 'must list 1 to 100 steps'],
      ['10%', 'not PERCENT%@SPAN'],
      ['0%@0h', 'above 0%'],
      ['101%@0h', 'at most 100%'],
      ['10%@soon', 'not a time span'],
      ['10%@6h,20%@1h', 'in order of time'],
      ['50%@0h,10%@6h', 'never goes down'],
    ] as const) {
      const err = (() => {
        try {
          parseRamp(text);
        } catch (e) {
          return e as ContainaiError;
        }
      })();
      expect(err?.code, text).toBe('USAGE');
      expect(err?.message, text).toContain(says);
    }
  });

  test('is a staircase: the share of the last step reached, 0 before the first', () => {
    const p = predicate({ ramp: parseRamp('10%@1h,50%@6h,100%@24h') });
    expect(shareAt(p, T0)).toBe(0);
    expect(shareAt(p, T0 + H * 1000 - 1)).toBe(0);
    expect(shareAt(p, T0 + H * 1000)).toBe(0.1);
    expect(shareAt(p, T0 + 5.9 * H * 1000)).toBe(0.1);
    expect(shareAt(p, T0 + 6 * H * 1000)).toBe(0.5);
    expect(shareAt(p, T0 + 48 * H * 1000)).toBe(1);
    // A host at 0.3 gets its turn at the 50% step; one at 0.05 at the first.
    expect(turnAt(p, 0.3)).toBe(T0 + 6 * H * 1000);
    expect(turnAt(p, 0.05)).toBe(T0 + H * 1000);
    expect(turnAt(predicate({ ramp: parseRamp('10%@0h') }), 0.5)).toBeUndefined();
  });
});

describe('the bucket: sha256(machine-id + version) mapped to [0, 1)', () => {
  const ids = Array.from({ length: 4000 }, (_, i) => Bun.hash(`host ${i}`).toString(16).padStart(16, '0').repeat(2).slice(0, 32));

  test('is the same for a host and version on every run, and differs between versions', () => {
    const id = 'a'.repeat(32);
    expect(hostBucket(id, 'v1')).toBe(hostBucket(id, 'v1'));
    expect(hostBucket(id, 'v1')).not.toBe(hostBucket(id, 'v2'));
    // The documented formula, computed here another way.
    const digest = new Bun.CryptoHasher('sha256').update(`${id}v1`).digest();
    expect(hostBucket(id, 'v1')).toBe(Number(BigInt(`0x${digest.subarray(0, 8).toString('hex')}`) >> 11n) / 2 ** 53);
  });

  test('spreads hosts evenly: each tenth of [0, 1) holds about a tenth of them', () => {
    const buckets = ids.map((id) => hostBucket(id, 'v3.1.0'));
    for (const b of buckets) expect(b >= 0 && b < 1).toBe(true);
    const tenths = Array.from({ length: 10 }, (_, k) => buckets.filter((b) => b >= k / 10 && b < (k + 1) / 10).length);
    // Binomial(4000, 0.1): mean 400, sd 19; 99.99% of draws lie within 400 ± 76.
    for (const n of tenths) expect(Math.abs(n - 400)).toBeLessThan(76);
  });

  test('a higher share only adds hosts', () => {
    const at = (share: number) => new Set(ids.filter((id) => hostBucket(id, 'v9') < share));
    const ten = at(0.1);
    const fifty = at(0.5);
    for (const id of ten) expect(fifty.has(id)).toBe(true);
    expect(fifty.size).toBeGreaterThan(ten.size);
  });

  test('the machine id is read as machine-id(5) writes it, and refused otherwise', async () => {
    const dir = tempDir('cai-machine-id-');
    writeFileSync(join(dir, 'good'), `${'0123456789abcdef'.repeat(2)}\n`);
    writeFileSync(join(dir, 'bad'), 'not-an-id\n');
    expect(await readMachineId(join(dir, 'good'))).toBe('0123456789abcdef'.repeat(2));
    expect((await refusal(readMachineId(join(dir, 'bad')))).message).toContain('does not hold a machine id');
    expect((await refusal(readMachineId(join(dir, 'missing')))).message).toContain('cannot read the machine id');
  });
});

describe('the decision', () => {
  const host = (over: Partial<HostFacts> = {}): HostFacts => ({ bucket: 0.05, current: 'v1.0.0', ...over });
  const at6h = T0 + 6 * H * 1000;

  test('in order: current, expired, halted, trial, wait, skip, install', () => {
    const p = predicate();
    expect(decide(p, at6h, host({ current: 'v2.0.0' })).kind).toBe('current');
    expect(decide(predicate({ halt: true, expires: '2025-03-01T01:00:00Z' }), at6h, host()).kind).toBe('expired');
    expect(decide(predicate({ halt: true }), at6h, host()).kind).toBe('halted');
    expect(decide(p, at6h, host({ onTrial: 'v1.5.0' }))).toMatchObject({ kind: 'wait', reason: 'the trial of v1.5.0 is not decided yet' });
    expect(decide(p, at6h, host({ bucket: 0.2 }))).toMatchObject({ kind: 'wait', share: 0.1, turnAt: T0 + 24 * H * 1000 });
    expect(decide(p, at6h, host({ bucket: 0.2 })).reason).toContain("this host's turn comes at 2025-03-02T00:00:00Z");
    expect(decide(p, at6h, host({ bad: 'v2.0.0 failed its health gate' }))).toMatchObject({ kind: 'skip', reason: 'v2.0.0 failed its health gate' });
    expect(decide(p, at6h, host({ belowFloor: 'v2.0.0 is older than v3.0.0' })).kind).toBe('skip');
    expect(decide(p, at6h, host())).toMatchObject({ kind: 'install', share: 0.1 });
  });

  test('at its exact expiry a statement is expired; a host at the share itself waits', () => {
    expect(decide(predicate(), Date.parse('2025-03-08T00:00:00Z'), host()).kind).toBe('expired');
    expect(decide(predicate({ ramp: parseRamp('10%@0h') }), T0, host({ bucket: 0.1 })).kind).toBe('wait');
  });
});

// ---------------------------------------------------------------------------
// Signed statements

const RELEASE = digestOf('a release manifest');
const statementOf = (p: RolloutPredicate = predicate(), digest = RELEASE): RolloutStatement => ({ subject: { name: 'registry.test/acme/rel', digest }, predicate: p });

function keyPolicy(pub: string, extra: Record<string, unknown> = {}) {
  return rolloutPolicy(policyFromArgs({ key: pub, 'public-good': false, ...extra }));
}

describe('a statement signed with a key', () => {
  const dir = tempDir('cai-rollout-keys-');
  const pair = writeKeyPair(dir, 'rollout', makeKeyPair('ecdsa'));
  const other = writeKeyPair(dir, 'other', makeKeyPair('ed25519'));

  async function signed(statement = statementOf(), keyFile = pair.key): Promise<string> {
    return JSON.stringify(signDsse(statementBytes(statement), await loadSigningKey(keyFile)));
  }

  test('verifies under the pinned key with the rollout predicate type, and reads back as made', async () => {
    const bundle = await signed();
    const verified = await verifyStatement(bundle, { digest: RELEASE }, keyPolicy(pair.pub), { channel: 'stable', where: 'test' });
    expect(verified.statement).toEqual(statementOf());
    expect(verified.signer).toMatchObject({ kind: 'key' });
    // Ed25519 keys sign DSSE too.
    const ed = await signed(statementOf(), other.key);
    expect((await verifyStatement(ed, { digest: RELEASE }, keyPolicy(other.pub), { channel: 'stable', where: 'test' })).signer).toMatchObject({ kind: 'key' });
  });

  test('is refused: another key, another release, another channel, a release predicate type, an altered statement', async () => {
    const bundle = await signed();
    const stable = { channel: 'stable', where: 'test' };
    expect((await refusal(verifyStatement(bundle, { digest: RELEASE }, keyPolicy(other.pub), stable))).message).toContain('does not verify');
    expect((await refusal(verifyStatement(bundle, { digest: digestOf('another release') }, keyPolicy(pair.pub), stable))).message).toContain('is not a subject of the attestation');
    expect((await refusal(verifyStatement(bundle, { digest: RELEASE }, keyPolicy(pair.pub), { channel: 'beta', where: 'test' }))).message).toContain('a statement moved to another channel is refused');
    // The release's own policy (SLSA provenance) does not accept a rollout statement, nor the other way round.
    const releasePolicy = policyFromArgs({ key: pair.pub, 'public-good': false });
    expect((await refusal(verifyStatement(bundle, { digest: RELEASE }, releasePolicy, stable))).message).toContain(`predicate type ${ROLLOUT_PREDICATE_TYPE} is not https://slsa.dev/provenance/v1`);
    const doc = JSON.parse(bundle);
    const altered = { ...predicate(), sequence: 99 };
    doc.dsseEnvelope.payload = Buffer.from(statementBytes(statementOf(altered))).toString('base64');
    expect((await refusal(verifyStatement(JSON.stringify(doc), { digest: RELEASE }, keyPolicy(pair.pub), stable))).message).toContain('does not verify');
  });

  test('a malformed predicate is refused even when signed', async () => {
    const bad = statementOf({ ...predicate(), ramp: [{ after: 3600, percent: 50 }, { after: 0, percent: 10 }] });
    const bundle = await signed(bad);
    const err = await refusal(verifyStatement(bundle, { digest: RELEASE }, keyPolicy(pair.pub), { channel: 'stable', where: 'test' }));
    expect(err.message).toContain('the rollout predicate is not valid: ramp.1.after: steps must come in order of time');
  });

  test('the rollout manifest names the release as its subject and holds the bundle as its one layer', async () => {
    const bundle = new TextEncoder().encode(await signed());
    const manifest = rolloutManifest(statementOf(), { mediaType: MEDIA_TYPE_IMAGE_MANIFEST, digest: RELEASE, size: 1234 }, bundle);
    const target = classifyChannelManifest(manifest.bytes, manifest.descriptor.digest, 'test');
    expect(target).toMatchObject({ kind: 'rollout', subject: { digest: RELEASE, size: 1234 }, layer: { digest: digestOf(bundle), size: bundle.byteLength } });
    const doc = JSON.parse(new TextDecoder().decode(manifest.bytes));
    expect(doc.artifactType).toBe('application/vnd.containai.rollout.v1+json');
    expect(doc.annotations).toMatchObject({ 'org.opencontainers.image.version': 'v2.0.0', 'dev.containai.rollout.sequence': '4', 'dev.containai.rollout.channel': 'stable' });
    // Two layers, or none, is not a statement.
    const twice = JSON.stringify({ ...doc, layers: [doc.layers[0], doc.layers[0]] });
    expect(() => classifyChannelManifest(new TextEncoder().encode(twice), digestOf(twice), 'test')).toThrow('it has 2 layers, not one');
  });
});

describe('a keyless statement (the workflow attests the predicate)', () => {
  const ca = makeTestCA();
  const dir = tempDir('cai-rollout-ca-');
  mkdirSync(dir, { recursive: true });
  const root = join(dir, 'trusted_root.json');
  writeFileSync(root, JSON.stringify(ca.trustedRoot));
  const identity = { repo: 'acme/widgets', workflowPath: '.github/workflows/rollout.yml', ref: 'refs/heads/main' };
  const policy = (extra: Record<string, unknown> = {}) => policyFromArgs({ repo: 'acme/widgets', 'trusted-root': root, 'public-good': false, ...extra });

  // actions/attest makes the statement from the predicate file and the subject digest: the same bytes.
  const attested = (p = predicate()) => JSON.stringify(ca.attest(RELEASE.slice(7), { identity, predicateType: ROLLOUT_PREDICATE_TYPE, payload: Buffer.from(statementBytes(statementOf(p))) }));

  test('the predicate file is what the statement carries', () => {
    expect(JSON.parse(new TextDecoder().decode(predicateBytes(predicate())))).toEqual(predicate());
    expect(readStatement(attested(), 'test')).toEqual(statementOf());
  });

  test('verifies for the named repository; --rollout-signer-workflow pins the rollout workflow', async () => {
    const ok = await verifyStatement(attested(), { digest: RELEASE }, rolloutPolicy(policy()), { channel: 'stable', where: 'test' });
    expect(ok.signer).toMatchObject({ kind: 'attestation', sourceRepository: 'acme/widgets' });
    const pinned = rolloutPolicy(policy({ 'signer-workflow': 'acme/widgets/.github/workflows/release.yml' }), 'acme/widgets/.github/workflows/rollout.yml');
    expect((await verifyStatement(attested(), { digest: RELEASE }, pinned, { channel: 'stable', where: 'test' })).signer).toMatchObject({ kind: 'attestation' });
    // Pinning only the release workflow refuses the rollout workflow's attestation: never silently looser.
    const releaseOnly = rolloutPolicy(policy({ 'signer-workflow': 'acme/widgets/.github/workflows/release.yml' }));
    expect((await refusal(verifyStatement(attested(), { digest: RELEASE }, releaseOnly, { channel: 'stable', where: 'test' }))).message).toContain('(--signer-workflow)');
    // Another repository's workflow is refused.
    const stranger = JSON.stringify(ca.attest(RELEASE.slice(7), { identity: { ...identity, repo: 'evil/widgets' }, predicateType: ROLLOUT_PREDICATE_TYPE, payload: Buffer.from(statementBytes(statementOf())) }));
    expect((await refusal(verifyStatement(stranger, { digest: RELEASE }, rolloutPolicy(policy()), { channel: 'stable', where: 'test' }))).message).toContain('is not https://github.com/acme/widgets (--repo)');
  });
});
