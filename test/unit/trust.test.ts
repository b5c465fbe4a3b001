/** lib/trust in-process: our own bundles (test CA + fake log, pinned keys), policy parsing, malformed input, keys. */
import { afterAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ContainaiError } from '../../lib/errors.ts';
import { verifyFormat1Bundle } from '../../lib/release/format1.ts';
import { verifyInstalledRelease } from '../../lib/release/verify-installed.ts';
import { loadSigningKey, pinnedKeyFromPem } from '../../lib/trust/keys.ts';
import { policyFromArgs, type TrustPolicy } from '../../lib/trust/policy.ts';
import { signBlob } from '../../lib/trust/sign.ts';
import { verifyArtifact, verifyBlob, verifySigned, type Verdict } from '../../lib/trust/verify.ts';
import { writeTarGz } from '../helpers/archives.ts';
import { handInstall, tamperWithSums } from '../helpers/installed-release.ts';
import { cosignEncryptedPem, keyDsseBundle, makeKeyPair, makeTestCA, sha256Hex, statement, writeKeyPair } from '../helpers/signing.ts';
import { refusal } from '../helpers/refusal.ts';

const dir = mkdtempSync(join(tmpdir(), 'cai-trust-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const emptyTrustDir = mkdtempSync(join(dir, 'trust-'));

let n = 0;
function file(content: string | Buffer, nameHint = 'f'): string {
  const path = join(dir, `${nameHint}-${n++}`);
  writeFileSync(path, content);
  return path;
}

const ARTIFACT = Buffer.from('payload bytes\n');
const artifactPath = file(ARTIFACT, 'artifact');
const digest = sha256Hex(ARTIFACT);
const ca = makeTestCA();
const rootPath = file(JSON.stringify(ca.trustedRoot), 'root.json');

function policy(args: Record<string, unknown> = {}): TrustPolicy {
  return policyFromArgs({ 'trusted-root': rootPath, 'public-good': false, 'trust-dir': emptyTrustDir, repo: 'acme/widgets', ...args });
}

const attest = (bundles: object[]) => file(bundles.map((b) => JSON.stringify(b)).join('\n') + '\n', 'att.jsonl');
const verify = (attestationPath: string, p = policy(), artifact = artifactPath): Promise<Verdict> =>
  verifyArtifact({ artifactPath: artifact, attestationPath }, p);

describe('attestations from a test CA', () => {
  test('a valid attestation verifies and says who signed', async () => {
    const v = await verify(attest([ca.attest(digest)]));
    expect(v).toMatchObject({
      kind: 'attestation',
      artifactSha256: digest,
      predicateType: 'https://slsa.dev/provenance/v1',
      bundleIndex: 0,
      signer: { sourceRepository: 'acme/widgets', sourceRepositoryOwner: 'acme', ref: 'refs/tags/v1.0.0', issuer: 'https://token.actions.githubusercontent.com' },
    });
    expect(v.signer?.workflow).toBe('https://github.com/acme/widgets/.github/workflows/release.yml@refs/tags/v1.0.0');
  });

  test('a single JSON document works as well as .jsonl', async () => {
    expect((await verify(file(JSON.stringify(ca.attest(digest), null, 2)))).kind).toBe('attestation');
  });

  test('the subject name does not matter; the digest decides', async () => {
    const other = ca.attest(digest, { payload: statement(digest, undefined, 'renamed.tar.gz') });
    expect((await verify(attest([other]))).kind).toBe('attestation');
  });

  test('a tampered payload (artifact) is refused', async () => {
    const e = await refusal(verify(attest([ca.attest(digest)]), policy(), file('payload bytes!\n')));
    expect(e.code).toBe('VERIFY');
    expect(e.message).toContain('is not a subject of the attestation');
  });

  test('a tampered statement is refused', async () => {
    const e = await refusal(verify(attest([ca.attest(digest, { tamperStatement: true })])));
    expect(e.code).toBe('VERIFY');
  });

  test('a certificate outside its validity at signing time is refused', async () => {
    const hour = 3600_000;
    const e = await refusal(verify(attest([ca.attest(digest, { notBefore: new Date(Date.now() - 3 * hour), notAfter: new Date(Date.now() - 2 * hour) })])));
    expect(e.message).toContain('not valid at the time of signing');
  });

  test('another CA (not pinned) is refused, and so is the public-good root alone', async () => {
    const stranger = makeTestCA();
    const e = await refusal(verify(attest([stranger.attest(digest)])));
    expect(e.message).toMatch(/does not chain to a trusted root|transparency log/);
    await refusal(verify(attest([ca.attest(digest)]), policyFromArgs({ repo: 'acme/widgets', 'trust-dir': emptyTrustDir })));
  });

  test.each([
    [{ repo: 'acme/gadgets' }, '--repo'],
    [{ repo: undefined, owner: 'evil' }, '--owner'],
    [{ 'signer-workflow': 'acme/widgets/.github/workflows/other.yml' }, '--signer-workflow'],
    [{ 'signer-workflow': 'acme/widgets/.github/workflows/release' }, '--signer-workflow'],
    [{ 'signer-workflow': 'acme/widgets/.github/workflows/release.yml@refs/heads/main' }, '--signer-workflow'],
    [{ 'cert-oidc-issuer': 'https://token.actions.githubusercontent.com/other' }, '--cert-oidc-issuer'],
    [{ 'predicate-type': 'https://spdx.dev/Document' }, '--predicate-type'],
  ])('policy %o is refused, naming %s', async (args, flag) => {
    const e = await refusal(verify(attest([ca.attest(digest)]), policy(args)));
    expect(e.message).toContain(`(${flag})`);
  });

  test('the signer workflow matches anchored, with any ref or the exact one', async () => {
    for (const wf of ['acme/widgets/.github/workflows/release.yml', 'acme/widgets/.github/workflows/release.yml@refs/tags/v1.0.0', 'https://github.com/acme/widgets/.github/workflows/release.yml']) {
      expect((await verify(attest([ca.attest(digest)]), policy({ 'signer-workflow': wf }))).kind).toBe('attestation');
    }
  });

  test('a repository whose name only starts like the policy is refused (no prefix match)', async () => {
    const e = await refusal(verify(attest([ca.attest(digest, { identity: { repo: 'acme/widgets-evil' } })])));
    expect(e.message).toContain('(--repo)');
  });

  test('a certificate-signed message signature (cosign sign-blob) is not an attestation: no predicate to check', async () => {
    const e = await refusal(verify(attest([ca.attestBlob(ARTIFACT)])));
    expect(e.code).toBe('VERIFY');
    expect(e.message).toContain('an attestation must be an in-toto DSSE statement; its predicate type cannot be checked');
  });

  test('an attestation needs a named signer', async () => {
    const e = await refusal(verify(attest([ca.attest(digest)]), policy({ repo: undefined })));
    expect(e.message).toContain('give --repo or --owner');
  });

  test('a policy pinned to a ref refuses a longer ref it is a prefix of (@refs/tags/v1 is not @refs/tags/v1.0.0)', async () => {
    const wf = 'acme/widgets/.github/workflows/release.yml';
    const e = await refusal(verify(attest([ca.attest(digest)]), policy({ 'signer-workflow': `${wf}@refs/tags/v1` })));
    expect(e.message).toContain(`is not https://github.com/${wf}@refs/tags/v1 (--signer-workflow)`);
    expect((await verify(attest([ca.attest(digest)]), policy({ 'signer-workflow': `${wf}@refs/tags/v1.0.0` }))).kind).toBe('attestation');
    // Nor a workflow path that only starts like the policy's.
    await refusal(verify(attest([ca.attest(digest, { identity: { workflowPath: '.github/workflows/release.yml2' } })]), policy({ 'signer-workflow': wf })));
  });

  test("gh's [HOST/]OWNER/REPO/PATH form passes: github.com/OWNER/REPO/PATH", async () => {
    for (const wf of ['github.com/acme/widgets/.github/workflows/release.yml', 'github.com/acme/widgets/.github/workflows/release.yml@refs/tags/v1.0.0']) {
      expect((await verify(attest([ca.attest(digest)]), policy({ 'signer-workflow': wf }))).kind).toBe('attestation');
    }
    // Another host is another SAN.
    const e = await refusal(verify(attest([ca.attest(digest)]), policy({ 'signer-workflow': 'ghe.example.com/acme/widgets/.github/workflows/release.yml' })));
    expect(e.message).toContain('is not https://ghe.example.com/acme/widgets/.github/workflows/release.yml@<ref> (--signer-workflow)');
  });

  test('a workflow alone is never relied on, even in a policy built by hand (a shared reusable workflow signs for every caller)', async () => {
    const byHand: TrustPolicy = { ...policy(), repo: undefined, signerWorkflow: 'acme/widgets/.github/workflows/release.yml' };
    const e = await refusal(verify(attest([ca.attest(digest)]), byHand));
    expect(e.message).toContain('a workflow alone');
  });

  test('with several bundles, one that satisfies the whole policy is enough, and the verdict says which', async () => {
    const path = attest([ca.attest(digest, { identity: { repo: 'acme/other' } }), ca.attest(digest, { predicateType: 'x' }), ca.attest(digest)]);
    expect((await verify(path)).bundleIndex).toBe(2);
    const e = await refusal(verify(attest([ca.attest(digest, { identity: { repo: 'acme/other' } }), ca.attest(digest, { predicateType: 'x' })])));
    expect(e.message).toContain('line 1');
    expect(e.message).toContain('line 2');
  });
});

describe('key signatures', () => {
  for (const kind of ['ecdsa', 'ed25519', 'rsa', 'rsa4096'] as const) {
    test(`${kind}: payload.sigstore.json from sign verifies with the pinned key, and not with another`, async () => {
      const pair = makeKeyPair(kind);
      const paths = writeKeyPair(dir, `k-${kind}`, pair);
      const signed = await signBlob(artifactPath, await loadSigningKey(paths.key));
      const sig = file(JSON.stringify(signed.bundle), 'payload.sigstore.json');
      const v = await verifyArtifact({ artifactPath, signaturePath: sig }, policy({ repo: undefined, key: paths.pub }));
      expect(v).toMatchObject({ kind: 'key', artifactSha256: digest });
      expect(v.signer?.keyId).toMatch(/^[0-9a-f]{64}$/);

      const wrong = writeKeyPair(dir, `wrong-${kind}`, makeKeyPair(kind));
      const e = await refusal(verifyArtifact({ artifactPath, signaturePath: sig }, policy({ repo: undefined, key: wrong.pub })));
      expect(e.message).toContain('does not verify with any pinned key');

      await refusal(verifyArtifact({ artifactPath: file('payload bytes?\n'), signaturePath: sig }, policy({ repo: undefined, key: paths.pub })));
    });
  }

  test('a signature whose digest matches but whose signature is over other bytes is refused', async () => {
    const pair = makeKeyPair('ecdsa');
    const paths = writeKeyPair(dir, 'forge', pair);
    const signed = await signBlob(file('other bytes'), await loadSigningKey(paths.key));
    const bundle = signed.bundle as { messageSignature: { messageDigest: { digest: string } } };
    bundle.messageSignature.messageDigest.digest = Buffer.from(digest, 'hex').toString('base64');
    const e = await refusal(verifyArtifact({ artifactPath, signaturePath: file(JSON.stringify(bundle)) }, policy({ repo: undefined, key: paths.pub })));
    expect(e.message).toContain('does not verify');
  });

  // The first format's payload is hashed once as the bundle streams (lib/release/format1.ts) and its
  // key signature checked on that digest: verifySigned with the digest alone, no bytes and no path.
  const PAYLOAD = { artifact: 'payload.tar.gz', sigstoreBundle: 'payload.sigstore.json', sig: 'payload.sig' };

  test('ECDSA: a good signature passes on the digest alone: payload.tar.gz is not read again', async () => {
    const paths = writeKeyPair(dir, 'prehash', makeKeyPair('ecdsa'));
    const payload = Buffer.from('a payload hashed once, while it streamed\n');
    const payloadDigest = sha256Hex(payload);
    const signed = await signBlob(file(payload), await loadSigningKey(paths.key));
    const v = await verifySigned({ sha256: payloadDigest }, { sigstoreBundle: JSON.stringify(signed.bundle) }, policy({ repo: undefined, key: paths.pub }), PAYLOAD);
    expect(v).toMatchObject({ kind: 'key', artifactSha256: payloadDigest });
  });

  test('ECDSA: a signature over other bytes is refused through the prehashed path, whatever digest the bundle claims', async () => {
    const paths = writeKeyPair(dir, 'swap', makeKeyPair('ecdsa'));
    const other = file('other bytes');
    const signed = await signBlob(other, await loadSigningKey(paths.key));
    const p = policy({ repo: undefined, key: paths.pub });
    // The bundle's own digest (of the other bytes) is never taken for the payload's.
    let e = await refusal(verifySigned({ sha256: digest }, { sigstoreBundle: JSON.stringify(signed.bundle) }, p, PAYLOAD));
    expect(e.message).toContain('the signature is for another artifact');
    // The digest swapped for the payload's: the signature still binds the other bytes.
    const swapped = structuredClone(signed.bundle) as { messageSignature: { messageDigest: { digest: string } } };
    swapped.messageSignature.messageDigest.digest = Buffer.from(digest, 'hex').toString('base64');
    e = await refusal(verifySigned({ sha256: digest }, { sigstoreBundle: JSON.stringify(swapped) }, p, PAYLOAD));
    expect(e.message).toContain('does not verify with any pinned key');
  });

  test('ECDSA: high-S and low-S signatures both verify (OpenSSL and cosign make either); a damaged DER does not', async () => {
    const { p256 } = await import('@noble/curves/nist.js');
    const pair = makeKeyPair('ecdsa');
    const paths = writeKeyPair(dir, 'highs', pair);
    const key = await loadSigningKey(paths.key);
    const seen = new Set<boolean>();
    for (let i = 0; i < 64 && seen.size < 2; i++) {
      const signed = await signBlob(artifactPath, key);
      const high = p256.Signature.fromBytes(Buffer.from(signed.signatureBase64, 'base64'), 'der').hasHighS();
      if (seen.has(high)) continue;
      seen.add(high);
      const v = await verifyArtifact({ artifactPath, signaturePath: file(JSON.stringify(signed.bundle)) }, policy({ repo: undefined, key: paths.pub }));
      expect(v.kind).toBe('key');
    }
    expect(seen.size).toBe(2);

    const signed = await signBlob(artifactPath, key);
    const der = Buffer.from(signed.signatureBase64, 'base64');
    der.writeUInt8(der.readUInt8(der.length - 1) ^ 1, der.length - 1);
    const bundle = structuredClone(signed.bundle) as { messageSignature: { signature: string } };
    bundle.messageSignature.signature = der.toString('base64');
    await refusal(verifyArtifact({ artifactPath, signaturePath: file(JSON.stringify(bundle)) }, policy({ repo: undefined, key: paths.pub })));
    bundle.messageSignature.signature = Buffer.from('not a DER signature').toString('base64');
    await refusal(verifyArtifact({ artifactPath, signaturePath: file(JSON.stringify(bundle)) }, policy({ repo: undefined, key: paths.pub })));
  });

  test('RSA: a good signature passes on the digest alone (no bytes, no path); one over other bytes does not, whatever digest the bundle claims', async () => {
    const paths = writeKeyPair(dir, 'rsa-prehash', makeKeyPair('rsa'));
    const payload = Buffer.from('a payload hashed once, while it streamed (RSA)\n');
    const payloadDigest = sha256Hex(payload);
    const key = await loadSigningKey(paths.key);
    const signed = await signBlob(file(payload), key);
    const p = policy({ repo: undefined, key: paths.pub });
    expect(await verifySigned({ sha256: payloadDigest }, { sigstoreBundle: JSON.stringify(signed.bundle) }, p, PAYLOAD)).toMatchObject({ kind: 'key', artifactSha256: payloadDigest });
    const other = await signBlob(file('other bytes'), key);
    const swapped = structuredClone(other.bundle) as { messageSignature: { messageDigest: { digest: string } } };
    swapped.messageSignature.messageDigest.digest = Buffer.from(payloadDigest, 'hex').toString('base64');
    const e = await refusal(verifySigned({ sha256: payloadDigest }, { sigstoreBundle: JSON.stringify(swapped) }, p, PAYLOAD));
    expect(e.message).toContain('does not verify with any pinned key');
  });

  test('RSA: the signature is PKCS#1 v1.5 over SHA-256, as cosign and openssl dgst -sha256 make and check it', async () => {
    const paths = writeKeyPair(dir, 'rsa-openssl', makeKeyPair('rsa'));
    const signed = await signBlob(artifactPath, await loadSigningKey(paths.key));
    const sigPath = file(Buffer.from(signed.signatureBase64, 'base64'), 'sig.bin');
    const check = Bun.spawnSync(['openssl', 'dgst', '-sha256', '-verify', paths.pub, '-signature', sigPath, artifactPath], { stdout: 'pipe', stderr: 'pipe' });
    expect(check.stdout.toString().trim()).toBe('Verified OK');
    // And one openssl made verifies here, on the digest path.
    const opensslSig = join(dir, `openssl-${n++}.sig`);
    const made = Bun.spawnSync(['openssl', 'dgst', '-sha256', '-sign', paths.key, '-out', opensslSig, artifactPath], { stdout: 'pipe', stderr: 'pipe' });
    expect(made.exitCode, made.stderr.toString()).toBe(0);
    const bundle = structuredClone(signed.bundle) as { messageSignature: { signature: string } };
    bundle.messageSignature.signature = readFileSync(opensslSig).toString('base64');
    expect((await verifyArtifact({ artifactPath, signaturePath: file(JSON.stringify(bundle)) }, policy({ repo: undefined, key: paths.pub }))).kind).toBe('key');
  });

  test('RSA: a bare .sig over bytes in memory (SHA256SUMS) verifies with the pinned key; an altered one fails even beside a good bundle', async () => {
    const pair = makeKeyPair('rsa');
    const paths = writeKeyPair(dir, 'rsa-blob', pair);
    const sums = Buffer.from(`${digest}  host/run.sh\n`);
    const sumsPath = file(sums, 'SHA256SUMS');
    const signed = await signBlob(sumsPath, await loadSigningKey(paths.key));
    const p = policy({ repo: undefined, key: paths.pub });
    const v = await verifyBlob(sums, { sig: signed.signatureBase64 }, p, { artifact: 'SHA256SUMS' });
    expect(v).toMatchObject({ kind: 'key', artifactSha256: sha256Hex(sums) });
    expect((await verifyBlob(sums, { sigstoreBundle: JSON.stringify(signed.bundle) }, p, { artifact: 'SHA256SUMS' })).kind).toBe('key');
    const bad = Buffer.from(signed.signatureBase64, 'base64');
    bad[10] = (bad[10] as number) ^ 1;
    const e = await refusal(verifyBlob(sums, { sigstoreBundle: JSON.stringify(signed.bundle), sig: bad.toString('base64') }, p, { artifact: 'SHA256SUMS' }));
    expect(e.message).toContain('SHA256SUMS.sig does not verify with any pinned key');
    await refusal(verifyBlob(Buffer.from('other sums\n'), { sig: signed.signatureBase64 }, p, { artifact: 'SHA256SUMS' }));
  });

  test('a key-signed DSSE statement verifies (RSA too); a tampered one does not', async () => {
    const rsa = makeKeyPair('rsa');
    const rsaPaths = writeKeyPair(dir, 'dsse-rsa', rsa);
    expect((await verify(file(JSON.stringify(keyDsseBundle(rsa, statement(digest)))), policy({ repo: undefined, key: rsaPaths.pub }))).kind).toBe('key');
    const pair = makeKeyPair('ecdsa');
    const paths = writeKeyPair(dir, 'dsse', pair);
    const bundle = keyDsseBundle(pair, statement(digest));
    expect((await verify(file(JSON.stringify(bundle)), policy({ repo: undefined, key: paths.pub }))).kind).toBe('key');
    const env = bundle.dsseEnvelope as { payload: string };
    env.payload = statement(sha256Hex('something else')).toString('base64');
    await refusal(verify(file(JSON.stringify(bundle)), policy({ repo: undefined, key: paths.pub })));
  });

  test('a key signature does not satisfy a policy that asks for an attestation (keys in the trust dir do not count then)', async () => {
    const pair = makeKeyPair('ecdsa');
    const trustDir = mkdtempSync(join(dir, 'trustdir-'));
    writeFileSync(join(trustDir, 'release.pub'), pair.publicPem);
    const paths = writeKeyPair(dir, 'onlyatt', pair);
    const sig = file(JSON.stringify((await signBlob(artifactPath, await loadSigningKey(paths.key))).bundle));
    // No signer named: the trust dir's key counts.
    expect((await verifyArtifact({ artifactPath, signaturePath: sig }, policy({ repo: undefined, 'trust-dir': trustDir }))).kind).toBe('key');
    // --repo names a signer: only an attestation from it, or a key on the command line, counts.
    const e = await refusal(verifyArtifact({ artifactPath, signaturePath: sig }, policy({ 'trust-dir': trustDir })));
    expect(e.message).toContain('a key signature counts only for a key given with --key');
    expect((await verifyArtifact({ artifactPath, signaturePath: sig }, policy({ 'trust-dir': trustDir, key: paths.pub }))).kind).toBe('key');
  });

  test('no pinned key: refused', async () => {
    const paths = writeKeyPair(dir, 'nokey', makeKeyPair('ecdsa'));
    const sig = file(JSON.stringify((await signBlob(artifactPath, await loadSigningKey(paths.key))).bundle));
    const e = await refusal(verifyArtifact({ artifactPath, signaturePath: sig }, policy({ repo: undefined })));
    expect(e.message).toContain('no key is pinned');
  });
});

describe("a release's signature material (the manifest, SHA256SUMS; the first format's payload)", () => {
  const sums = Buffer.from(`${digest}  host/run.sh\n${sha256Hex('{}')}  release.json\n`);
  const SUMS = { artifact: 'SHA256SUMS', attestation: 'attestation.intoto.jsonl', sigstoreBundle: 'SHA256SUMS.sigstore.json', sig: 'SHA256SUMS.sig' };
  const jsonl = (bundles: object[]) => bundles.map((b) => JSON.stringify(b)).join('\n') + '\n';

  /** A first-format bundle: payload.tar.gz first, payload.sha256, then the given members. */
  function format1Bundle(members: Record<string, string> = {}, sha256 = digest): string {
    return writeTarGz(join(dir, `format1-${n++}.tar.gz`), [
      { name: 'payload.tar.gz', body: ARTIFACT, mode: 0o644 },
      { name: 'payload.sha256', body: `${sha256}  payload.tar.gz\n`, mode: 0o644 },
      ...Object.entries(members).map(([name, body]) => ({ name, body, mode: 0o644 })),
    ]);
  }

  test('an attestation over SHA256SUMS verifies; the first format\'s over payload.tar.gz does too', async () => {
    expect((await verifyBlob(sums, { attestation: jsonl([ca.attest(sha256Hex(sums))]) }, policy(), SUMS)).kind).toBe('attestation');
    expect((await verifyFormat1Bundle(format1Bundle({ 'attestation.intoto.jsonl': jsonl([ca.attest(digest)]) }), policy())).signer).toMatchObject({ kind: 'attestation', sourceRepository: 'acme/widgets' });
  });

  test('a certificate-signed message signature is refused in attestation.intoto.jsonl and SHA256SUMS.sigstore.json', async () => {
    for (const field of ['attestation', 'sigstoreBundle'] as const) {
      const e = await refusal(verifyBlob(sums, { [field]: jsonl([ca.attestBlob(sums)]) }, policy(), SUMS));
      expect(e.message).toContain('an attestation must be an in-toto DSSE statement');
    }
  });

  test('first format: a payload that does not match payload.sha256 is refused before any signature is read', async () => {
    const e = await refusal(verifyFormat1Bundle(format1Bundle({ 'attestation.intoto.jsonl': 'not even json' }, '0'.repeat(64)), policy()));
    expect(e.message).toContain('payload.sha256');
  });

  test('unsigned (no material, or an empty attestation) is refused unless allowed', async () => {
    const e = await refusal(verifyBlob(sums, {}, policy(), SUMS));
    expect(e.message).toContain('SHA256SUMS is unsigned');
    await refusal(verifyBlob(sums, { attestation: '' }, policy(), SUMS));
    expect((await verifyBlob(sums, {}, policy({ 'allow-unsigned': true }), SUMS)).kind).toBe('unsigned');
  });

  test("a trusted_root.json inside a bundle is never used: an attacker's own root and attestation are refused", async () => {
    const attacker = makeTestCA();
    // The manifest's verification is never even handed the bundle's root: only the policy's roots count.
    await refusal(verifyBlob(sums, { attestation: jsonl([attacker.attest(sha256Hex(sums))]) }, policy(), SUMS));
    await refusal(verifyBlob(sums, { attestation: jsonl([attacker.attest(sha256Hex(sums))]) }, policyFromArgs({ repo: 'acme/widgets', 'trust-dir': emptyTrustDir }), SUMS));
    const b = format1Bundle({ 'attestation.intoto.jsonl': jsonl([attacker.attest(digest)]), 'trusted_root.json': JSON.stringify(attacker.trustedRoot) });
    await refusal(verifyFormat1Bundle(b, policy()));
    await refusal(verifyFormat1Bundle(b, policyFromArgs({ repo: 'acme/widgets', 'trust-dir': emptyTrustDir })));
  });
});

describe('malformed input: one clear line, INPUT', () => {
  test.each([
    ['not JSON', 'this is not json\n', 'not JSON'],
    ['empty', '\n\n', 'empty'],
    ['unknown media type', JSON.stringify({ mediaType: 'application/vnd.dev.sigstore.bundle+json;version=9.9', verificationMaterial: {} }), 'unknown bundle media type'],
    ['missing verification material', JSON.stringify({ mediaType: 'application/vnd.dev.sigstore.bundle.v0.3+json', dsseEnvelope: { payload: '', payloadType: 'x', signatures: [] } }), 'verification material'],
    ['a JSON array', '[1,2]', 'not a Sigstore bundle'],
    ['one bad line among good ones', `${JSON.stringify(ca.attest(digest))}\n{oops\n`, 'line 2: not JSON'],
  ])('%s', async (_what, content, message) => {
    const e = await refusal(verify(file(content)));
    expect(e.code).toBe('INPUT');
    expect(e.message).toContain(message);
  });

  test('a trusted root that is not one', async () => {
    const e = await refusal(verify(attest([ca.attest(digest)]), policy({ 'trusted-root': file('{"hello":1}') })));
    expect(e.code).toBe('INPUT');
  });
});

describe('policy flags', () => {
  test('--signer-workflow without --repo or --owner is a usage error that says why', () => {
    for (const wf of ['acme/widgets/.github/workflows/release.yml', 'github.com/acme/widgets/.github/workflows/release.yml']) {
      let err: unknown;
      try {
        policyFromArgs({ 'signer-workflow': wf });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ContainaiError);
      expect((err as ContainaiError).exitCode).toBe(2);
      expect((err as ContainaiError).message).toContain('a shared reusable workflow signs with its own identity for every repository that calls it');
    }
    expect(policyFromArgs({ 'signer-workflow': 'acme/widgets/.github/workflows/release.yml', owner: 'acme' }).signerWorkflow).toBe('acme/widgets/.github/workflows/release.yml');
  });

  test('defaults', () => {
    expect(policyFromArgs({})).toMatchObject({ certOidcIssuer: 'https://token.actions.githubusercontent.com', predicateType: 'https://slsa.dev/provenance/v1', publicGood: true, allowUnsigned: false, trustedRootFiles: [], keyFiles: [] });
    expect(policyFromArgs({ key: ['a.pub', 'b.pub'], 'trusted-root': 'r.json' })).toMatchObject({ keyFiles: ['a.pub', 'b.pub'], trustedRootFiles: ['r.json'] });
  });

  test('every malformed value is reported as a usage error, each as "--flag: message"', () => {
    try {
      policyFromArgs({ repo: 'not a repo', owner: 'a/b', 'signer-workflow': 'acme', 'cert-oidc-issuer': 'http://x' });
      throw new Error('expected a usage error');
    } catch (err) {
      const e = err as ContainaiError;
      expect(e.code).toBe('USAGE');
      for (const flag of ['--repo:', '--owner:', '--signer-workflow:', '--cert-oidc-issuer:']) expect(e.message).toContain(flag);
    }
  });
});

describe('signing keys', () => {
  const password = 'correct horse battery staple';

  test('PKCS#8, SEC1 and cosign-encrypted keys all load to the same key', async () => {
    const pair = makeKeyPair('ecdsa');
    const ids = await Promise.all([
      loadSigningKey(file(pair.privatePem)),
      loadSigningKey(file(pair.sec1Pem as string)),
      loadSigningKey(file(await cosignEncryptedPem(pair, password)), { COSIGN_PASSWORD: password }),
      loadSigningKey('env://COSIGN_KEY', { COSIGN_KEY: await cosignEncryptedPem(pair, password), COSIGN_PASSWORD: password }),
    ]);
    expect(new Set(ids.map((k) => k.keyId)).size).toBe(1);
  });

  test('a key pasted as --key (not a path or env://VAR) is refused without echoing it', async () => {
    const pem = makeKeyPair('ecdsa').privatePem;
    const e = await refusal(loadSigningKey(pem));
    expect(e.code).toBe('USAGE');
    expect(e.message).toContain('--key holds key material');
    expect(`${e.message} ${e.hint}`).not.toContain(pem.split('\n')[1] as string);
    expect(e.hint).toContain('env://VAR');
  });

  test('a wrong COSIGN_PASSWORD is one clear line', async () => {
    const pem = await cosignEncryptedPem(makeKeyPair('ecdsa'), password);
    const e = await refusal(loadSigningKey(file(pem), { COSIGN_PASSWORD: 'nope' }));
    expect(e.message).toContain('wrong COSIGN_PASSWORD');
    expect(e.message).not.toContain(password);
  });

  test('hostile scrypt parameters are refused before any work', async () => {
    const pem = await cosignEncryptedPem(makeKeyPair('ecdsa'), password, { N: 1024, r: 8, p: 1 });
    const doc = JSON.parse(Buffer.from(pem.split('\n').slice(1, -2).join(''), 'base64').toString());
    doc.kdf.params.N = 2 ** 30;
    const b64 = Buffer.from(JSON.stringify(doc)).toString('base64');
    const e = await refusal(loadSigningKey(file(`-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n${b64}\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n`), { COSIGN_PASSWORD: password }));
    expect(e.message).toContain('scrypt parameters');
  });

  test('P-384 keys are refused', async () => {
    const { generateKeyPairSync } = await import('node:crypto');
    const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    expect((await refusal(loadSigningKey(file(p384)))).message).toContain('use ECDSA P-256, Ed25519 or RSA (2048 to 4096 bits)');
  });

  test('RSA: PKCS#8, PKCS#1 and cosign-encrypted keys all load to the same key', async () => {
    const pair = makeKeyPair('rsa');
    const keys = await Promise.all([
      loadSigningKey(file(pair.privatePem)),
      loadSigningKey(file(pair.pkcs1Pem as string)),
      loadSigningKey(file(await cosignEncryptedPem(pair, password, { N: 1024, r: 8, p: 1 })), { COSIGN_PASSWORD: password }),
    ]);
    expect(new Set(keys.map((k) => k.keyId)).size).toBe(1);
    expect(keys.map((k) => k.algorithm)).toEqual(['rsa', 'rsa', 'rsa']);
  });

  test('RSA keys under 2048 or over 4096 bits are refused with a clear message, private or pinned', async () => {
    const { createPublicKey, generateKeyPairSync, randomBytes } = await import('node:crypto');
    const small = generateKeyPairSync('rsa', { modulusLength: 1024 });
    const e = await refusal(loadSigningKey(file(small.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string)));
    expect(e.message).toContain('an RSA key of 1024 bits is not accepted; RSA keys must have 2048 to 4096 bits');
    expect(e.hint).toContain('can be broken');
    expect(() => pinnedKeyFromPem(small.publicKey.export({ type: 'spki', format: 'pem' }) as string, 'small.pub')).toThrow('an RSA key of 1024 bits is not accepted');
    // A 4608-bit public key (no primes needed for a public key: any odd modulus of that size).
    const n = randomBytes(576);
    n[0] = (n[0] as number) | 0x80;
    n[575] = (n[575] as number) | 1;
    const big = createPublicKey({ key: { kty: 'RSA', n: n.toString('base64url'), e: 'AQAB' }, format: 'jwk' });
    expect(() => pinnedKeyFromPem(big.export({ type: 'spki', format: 'pem' }) as string, 'big.pub')).toThrow('an RSA key of 4608 bits is not accepted');
    // PKCS#1 public keys ("RSA PUBLIC KEY") pin too.
    const pair = makeKeyPair('rsa');
    expect(pinnedKeyFromPem(pair.publicKey.export({ type: 'pkcs1', format: 'pem' }) as string, 'rsa.pub').algorithm).toBe('rsa');
  });
});

describe('the kept signature (verify-only, check-health): verified again over the manifest, with no payload or bundle on disk', () => {
  async function signedRelease(kind: 'ecdsa' | 'ed25519') {
    const pair = makeKeyPair(kind);
    const paths = writeKeyPair(dir, `kept-${kind}-${n++}`, pair);
    const root = mkdtempSync(join(dir, 'root-'));
    const { dir: releaseDir } = handInstall(root, { key: pair });
    const verifyIt = () => verifyInstalledRelease(root, { policy: policy({ repo: undefined, key: paths.pub }) });
    return { root, releaseDir, verifyIt, key: paths.key };
  }

  for (const kind of ['ecdsa', 'ed25519'] as const) {
    test(`${kind}: an intact release verifies from SHA256SUMS and .containai/ alone`, async () => {
      const { releaseDir, verifyIt } = await signedRelease(kind);
      const v = await verifyIt();
      expect(v.problems).toEqual([]);
      expect(v.ok).toBe(true);
      expect(v.filesChecked).toBeGreaterThan(3);
      expect(readdirSync(join(releaseDir, '.containai')).sort()).toEqual(['SHA256SUMS.sig', 'SHA256SUMS.sigstore.json', 'install.json']);
    });

    test(`${kind}: a SHA256SUMS changed after install, install.json rewritten to match, is refused by the kept signature`, async () => {
      const { releaseDir, verifyIt } = await signedRelease(kind);
      tamperWithSums(releaseDir, 'host/README.md', 'changed\n', { andRecord: true });
      const v = await verifyIt();
      expect(v.ok).toBe(false);
      expect(v.problems.join('\n')).toContain('SHA256SUMS.sig does not verify with any pinned key');
    });

    test(`${kind}: a kept signature over other bytes that claims SHA256SUMS's digest is refused`, async () => {
      // Signed by the release's own key, over other bytes.
      const { releaseDir, verifyIt, key } = await signedRelease(kind);
      const other = await signBlob(file('other bytes\n'), await loadSigningKey(key));
      const swapped = structuredClone(other.bundle) as { messageSignature: { messageDigest: { digest: string } } };
      swapped.messageSignature.messageDigest.digest = Buffer.from(sha256Hex(readFileSync(join(releaseDir, 'SHA256SUMS'))), 'hex').toString('base64');
      writeFileSync(join(releaseDir, '.containai', 'SHA256SUMS.sigstore.json'), JSON.stringify(swapped));
      rmSync(join(releaseDir, '.containai', 'SHA256SUMS.sig'));
      const v = await verifyIt();
      expect(v.ok).toBe(false);
      expect(v.problems.join('\n')).toContain('does not verify with any pinned key');
    });
  }
});
