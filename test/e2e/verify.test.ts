/**
 * verify in the compiled binaries. The real GitHub attestation (shared
 * fixtures) must verify inside both binaries so that a Bun upgrade that breaks
 * sigstore's crypto fails here; then our own bundles, and malformed input.
 */
import { describe, expect, test } from 'bun:test';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type BinaryName, expectNoStack, run, SHARED, tempDir } from '../helpers/cli.ts';
import { loadSigningKey } from '../../lib/trust/keys.ts';
import { signBlob } from '../../lib/trust/sign.ts';
import { craftRelease } from '../helpers/craft.ts';
import { makeKeyPair, makeTestCA, sha256Hex, writeKeyPair } from '../helpers/signing.ts';

const FIXTURES = join(SHARED, 'fixtures', 'sigstore');
const ARTIFACT = join(FIXTURES, 'custom-issuer-artifact');
const ATTESTATION = join(FIXTURES, 'custom-issuer.sigstore.json');

// Read from the certificate's extensions (issuer .8, source repository .12, owner .16, SAN).
const ISSUER = 'https://token.actions.githubusercontent.com/hammer-time';
const REPO = 'too-legit/attest';
const OWNER = 'too-legit';
const WORKFLOW = 'too-legit/attest/.github/workflows/integration.yml';

const work = tempDir('cai-verify-e2e-');
const emptyTrustDir = join(work, 'trust');
mkdirSync(emptyTrustDir);

const realPolicy = ['--repo', REPO, '--cert-oidc-issuer', ISSUER, '--trust-dir', emptyTrustDir];
const verifyReal = (bin: BinaryName, extra: string[] = [], artifact = ARTIFACT) =>
  run(bin, ['verify', '--artifact', artifact, '--attestation', ATTESTATION, ...realPolicy, ...extra]);

function expectRefused(r: { code: number; stderr: string }, text: string | RegExp): void {
  expect(r.code).toBe(1);
  expect(r.stderr).toMatch(typeof text === 'string' ? new RegExp(text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')) : text);
  expect(r.stderr.split('\n').filter((l) => l.startsWith('error:'))).toHaveLength(1);
  expectNoStack(r.stderr);
}

describe.each(['containai-build', 'containai-host'] as const)('%s verify: the real GitHub attestation', (bin) => {
  test('verifies with the compiled-in public-good root and the identity from its certificate', async () => {
    const r = await verifyReal(bin, ['--owner', OWNER, '--signer-workflow', WORKFLOW, '--json']);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc).toMatchObject({
      ok: true,
      kind: 'attestation',
      artifactSha256: sha256Hex(readFileSync(ARTIFACT)),
      predicateType: 'https://slsa.dev/provenance/v1',
      bundleIndex: 0,
      signer: { sourceRepository: REPO, sourceRepositoryOwner: OWNER, issuer: ISSUER, ref: 'refs/heads/main', workflow: `https://github.com/${WORKFLOW}@refs/heads/main` },
    });
    expect(r.stderr).toContain(`attestation by ${REPO}`);
  });

  test('verifies against the fixture trusted root alone (--no-public-good --trusted-root)', async () => {
    const r = await verifyReal(bin, ['--no-public-good', '--trusted-root', join(FIXTURES, 'trusted_root.json')]);
    expect(r.code).toBe(0);
  });

  test('refused when one byte of the artifact changes', async () => {
    const bytes = readFileSync(ARTIFACT);
    bytes[0] = (bytes[0] as number) ^ 1;
    const altered = join(work, `altered-${bin}`);
    writeFileSync(altered, bytes);
    expectRefused(await verifyReal(bin, [], altered), 'is not a subject of the attestation');
  });

  test.each([
    [['--repo', 'too-legit/attest2'], '(--repo)'],
    [['--repo', 'too-legit/attes'], '(--repo)'],
    [['--owner', 'too-legit2'], '(--owner)'],
    [['--signer-workflow', 'too-legit/attest/.github/workflows/release.yml'], '(--signer-workflow)'],
    [['--signer-workflow', 'too-legit/attest/.github/workflows/integration.yml@refs/heads/dev'], '(--signer-workflow)'],
    [['--cert-oidc-issuer', 'https://token.actions.githubusercontent.com'], '(--cert-oidc-issuer)'],
    [['--predicate-type', 'https://spdx.dev/Document/v2.3'], '(--predicate-type)'],
  ])('refused with %p', async (extra, flag) => {
    expectRefused(await verifyReal(bin, extra), flag);
  });

  test('refused against an empty trusted root', async () => {
    const empty = join(work, 'empty-root.json');
    writeFileSync(empty, JSON.stringify({ mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1', tlogs: [], certificateAuthorities: [], ctlogs: [], timestampAuthorities: [] }));
    expectRefused(await verifyReal(bin, ['--no-public-good', '--trusted-root', empty]), 'does not chain to a trusted root');
  });

  test('refused with no signer named (the public-good root certifies anyone)', async () => {
    const r = await run(bin, ['verify', '--artifact', ARTIFACT, '--attestation', ATTESTATION, '--cert-oidc-issuer', ISSUER, '--trust-dir', emptyTrustDir]);
    expectRefused(r, 'give --repo or --owner');
  });
});

describe('verify: our own bundles (test CA, pinned keys)', () => {
  const payload = join(work, 'payload.tar.gz');
  writeFileSync(payload, 'not really a tarball, but bytes to sign\n');
  const digest = sha256Hex(readFileSync(payload));
  const ca = makeTestCA();
  const root = join(work, 'test-root.json');
  writeFileSync(root, JSON.stringify(ca.trustedRoot));
  const pinned = ['--no-public-good', '--trusted-root', root, '--trust-dir', emptyTrustDir];

  function bundle(name: string, members: Record<string, string>): string {
    const dir = join(work, name);
    mkdirSync(dir);
    writeFileSync(join(dir, 'payload.tar.gz'), readFileSync(payload));
    writeFileSync(join(dir, 'payload.sha256'), `${digest}  payload.tar.gz\n`);
    for (const [m, content] of Object.entries(members)) writeFileSync(join(dir, m), content);
    const out = join(work, `${name}.tar.gz`);
    const tar = Bun.spawnSync(['tar', '--owner=0', '--group=0', '--format=ustar', '-czf', out, '-C', dir, ...['payload.tar.gz', 'payload.sha256', ...Object.keys(members)]]);
    expect(tar.exitCode).toBe(0);
    return out;
  }

  test('--bundle of the first format with a test-CA attestation over payload.tar.gz verifies in containai-host', async () => {
    const b = bundle('good', { 'attestation.intoto.jsonl': `${JSON.stringify(ca.attest(digest))}\n` });
    const r = await run('containai-host', ['verify', '--bundle', b, '--repo', 'acme/widgets', ...pinned, '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, format: 1, artifact: `sha256:${digest}`, signer: { kind: 'attestation', sourceRepository: 'acme/widgets' } });
  });

  test('--bundle of the current format: the attestation over SHA256SUMS, then every payload entry against the manifest; an attacker\'s root and attestation are refused', async () => {
    const good = craftRelease(join(work, 'crafted-good'), { version: 'v1.0.0', ca });
    const r = await run('containai-host', ['verify', '--bundle', good.bundle, '--repo', 'acme/widgets', ...pinned, '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, format: 2, version: 'v1.0.0', manifest: `sha256:${good.sumsSha256}`, signer: { kind: 'attestation', sourceRepository: 'acme/widgets' } });
    const attacker = makeTestCA();
    const hostile = craftRelease(join(work, 'crafted-attacker'), { version: 'v1.0.0', ca: attacker, members: { 'trusted_root.json': JSON.stringify(attacker.trustedRoot) } });
    expectRefused(await run('containai-host', ['verify', '--bundle', hostile.bundle, '--repo', 'acme/widgets', ...pinned]), 'verification failed');
    // A payload entry the signed manifest does not list fails verify as it fails install.
    const unlisted = craftRelease(join(work, 'crafted-unlisted'), { version: 'v1.0.0', ca, editPayload: (e) => [...e, { name: 'payload/host/extra.sh', body: 'echo\n' }] });
    expectRefused(await run('containai-host', ['verify', '--bundle', unlisted.bundle, '--repo', 'acme/widgets', ...pinned]), 'host/extra.sh: not listed in the signed manifest');
  });

  test("--bundle carrying an attacker's trusted_root.json and attestation is refused", async () => {
    const attacker = makeTestCA();
    const b = bundle('attacker', { 'attestation.intoto.jsonl': `${JSON.stringify(attacker.attest(digest))}\n`, 'trusted_root.json': JSON.stringify(attacker.trustedRoot) });
    expectRefused(await run('containai-host', ['verify', '--bundle', b, '--repo', 'acme/widgets', ...pinned]), 'verification failed');
    expectRefused(await run('containai-host', ['verify', '--bundle', b, '--repo', 'acme/widgets', '--trust-dir', emptyTrustDir]), 'verification failed');
  });

  test('--bundle without attestation is unsigned: refused, or accepted with --allow-unsigned', async () => {
    const b = bundle('unsigned', {});
    expectRefused(await run('containai-host', ['verify', '--bundle', b, '--repo', 'acme/widgets', ...pinned]), 'unsigned');
    const r = await run('containai-host', ['verify', '--bundle', b, '--allow-unsigned', ...pinned]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('UNSIGNED');
  });

  test('a key-signed bundle verifies with the pinned key, from --key and from the trust dir', async () => {
    const pair = makeKeyPair('ecdsa');
    const keys = writeKeyPair(work, 'release', pair);
    // sign has its own e2e test (test/e2e/sign.test.ts); here the signature is made in-process.
    const signed = await signBlob(payload, await loadSigningKey(keys.key));
    const b = bundle('keysigned', { 'payload.sigstore.json': JSON.stringify(signed.bundle), 'payload.sig': signed.signatureBase64 });
    expect((await run('containai-host', ['verify', '--bundle', b, '--key', keys.pub, ...pinned])).code).toBe(0);
    const trustDir = join(work, 'trust-with-key');
    mkdirSync(trustDir);
    writeFileSync(join(trustDir, 'release.pub'), pair.publicPem);
    expect((await run('containai-host', ['verify', '--bundle', b, '--trust-dir', trustDir, '--no-public-good'])).code).toBe(0);
    // A policy that names a signer wants an attestation: the trust dir's key does not satisfy it.
    expectRefused(await run('containai-host', ['verify', '--bundle', b, '--repo', 'acme/widgets', '--trust-dir', trustDir]), 'a key signature counts only for a key given with --key');
    const wrong = writeKeyPair(work, 'wrong', makeKeyPair('ed25519'));
    expectRefused(await run('containai-host', ['verify', '--bundle', b, '--key', wrong.pub, ...pinned]), 'does not verify with any pinned key');
  });

  test('a certificate-signed message signature (cosign sign-blob) is refused as an attestation', async () => {
    const blob = `${JSON.stringify(ca.attestBlob(readFileSync(payload)))}\n`;
    const b = bundle('blobsigned', { 'attestation.intoto.jsonl': blob });
    expectRefused(await run('containai-host', ['verify', '--bundle', b, '--repo', 'acme/widgets', ...pinned]), 'an attestation must be an in-toto DSSE statement');
    const att = join(work, 'blob.jsonl');
    writeFileSync(att, blob);
    expectRefused(await run('containai-build', ['verify', '--artifact', payload, '--attestation', att, '--repo', 'acme/widgets', ...pinned]), 'its predicate type cannot be checked');
  });

  test('a bundle whose payload does not match payload.sha256 is refused', async () => {
    const b = bundle('mismatch', { 'attestation.intoto.jsonl': `${JSON.stringify(ca.attest(digest))}\n`, 'payload.sha256': `${'1'.repeat(64)}  payload.tar.gz\n` });
    expectRefused(await run('containai-host', ['verify', '--bundle', b, '--repo', 'acme/widgets', ...pinned]), 'payload.sha256');
  });
});

describe('verify: malformed input is one clear line and exit 1', () => {
  const cases: Array<[string, string, string]> = [
    ['not JSON', 'hello\n', 'not JSON'],
    ['empty .jsonl', '', 'empty'],
    ['unknown media type', JSON.stringify({ mediaType: 'application/vnd.example+json', verificationMaterial: {} }), 'unknown bundle media type'],
    ['missing verification material', JSON.stringify({ mediaType: 'application/vnd.dev.sigstore.bundle.v0.3+json', dsseEnvelope: { payload: 'e30=', payloadType: 'application/vnd.in-toto+json', signatures: [] } }), 'verification material'],
  ];
  test.each(cases)('%s', async (_name, content, message) => {
    const path = join(work, `bad-${_name.replace(/\W+/g, '-')}.jsonl`);
    writeFileSync(path, content);
    const r = await run('containai-host', ['verify', '--artifact', ARTIFACT, '--attestation', path, ...realPolicy, '--json']);
    expectRefused(r, message);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, error: { code: 'INPUT' } });
  });

  test('neither --bundle nor --artifact/--attestation is a usage error', async () => {
    const r = await run('containai-build', ['verify', '--repo', REPO]);
    expect(r.code).toBe(2);
    expectNoStack(r.stderr);
  });

  test('a malformed policy value is a usage error naming the flag', async () => {
    const r = await run('containai-build', ['verify', '--artifact', ARTIFACT, '--attestation', ATTESTATION, '--repo', 'nope']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--repo:');
  });
});
