/**
 * Offline verification of a release: a Sigstore attestation (DSSE in-toto,
 * certificate from a pinned or compiled-in trusted root) or a key signature
 * (payload.sigstore.json, pinned key) over an artifact, then the policy.
 * Trust comes only from the policy (compiled-in roots, --trusted-root,
 * --key, the trust dir), never from the files being verified.
 *
 * Each bundle is checked as a list of steps; the first that fails is the
 * reason given. Several bundles (.jsonl lines, or an attestation and a key
 * signature): the artifact passes when one of them satisfies the whole policy.
 */
import { constants, createHash, publicDecrypt, timingSafeEqual, verify as verifySignature } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { X509Certificate, dsse } from '@sigstore/core';
import type { Bundle } from '@sigstore/bundle';
import { HashAlgorithm } from '@sigstore/protobuf-specs';
import { toSignedEntity } from '@sigstore/verify';
import { PAYLOAD_ARCHIVE } from '../bundle/layout.ts';
import { sha256File } from '../digest.ts';
import { ContainaiError, describeCause } from '../errors.ts';
import { parseBundles, parseStatement, readBundles, subjectMatches, type ArtifactDigests, type ParsedBundle } from './attestation.ts';
import { certificateIdentity, repoName, type CertificateIdentity } from './certificate.ts';
import { readPinnedKey, type PinnedKey } from './keys.ts';
import {
  expectedOwnerUri,
  expectedRepoUri,
  expectedWorkflowUri,
  matchesSignerWorkflow,
  namesSigner,
  sameUri,
  type TrustPolicy,
} from './policy.ts';
import { rootVerifier, trustedRoots, type RootVerifier } from './roots.ts';
import { trustDirFiles } from './trust-dir.ts';

export interface Verdict {
  kind: 'attestation' | 'key' | 'unsigned';
  artifactSha256: string;
  signer?: {
    sourceRepository?: string;
    sourceRepositoryOwner?: string;
    /** The certificate SAN: the workflow that signed, with its ref. */
    workflow?: string;
    ref?: string;
    issuer?: string;
    keyId?: string;
  };
  predicateType?: string;
  /** Which line (0-based) of the .jsonl satisfied the policy. */
  bundleIndex?: number;
}

export interface VerifyInput {
  artifactPath: string;
  attestationPath?: string;
  /** payload.sigstore.json: a key-signed Sigstore bundle. */
  signaturePath?: string;
}


/** A check that failed for one bundle: the reason a person reads. */
class Refusal extends Error {}

/**
 * Thrown, not a verdict, when a check needs payload.tar.gz's bytes (an Ed25519 key signature, a
 * subject by sha512 alone) and the bundle was read with
 * hashPayloadOnly: the caller verifies again from a bundle unpacked whole.
 */
export class PayloadBytesNeeded extends Error {
  constructor() {
    super(`this signature is checked over ${PAYLOAD_ARCHIVE}'s bytes, which were hashed but not kept`);
  }
}

/**
 * The artifact and its SHA-256, computed in this run from the bytes on disk
 * (sha256File, or while the bundle was unpacked): never a digest a bundle or
 * a stamp claims. ECDSA key signatures are checked against it.
 */
interface Artifact extends ArtifactDigests {
  /** Where its bytes are; undefined when only its digest was kept (hashPayloadOnly) or they are in memory. */
  path: string | undefined;
  /** Its bytes, when it is small and in memory (SHA256SUMS): never read again from disk. */
  bytes?: Uint8Array;
}

function artifactFrom(path: string | undefined, sha256: string, bytes?: Uint8Array): Artifact {
  let sha512: Promise<string> | undefined;
  return {
    path,
    bytes,
    sha256,
    sha512: () => (sha512 ??= bytes ? Promise.resolve(createHash('sha512').update(bytes).digest('hex')) : hashFile(artifactPath({ path }), 'sha512')),
  };
}

function artifactPath(artifact: { path: string | undefined }): string {
  if (artifact.path === undefined) throw new PayloadBytesNeeded();
  return artifact.path;
}

/** The artifact's bytes, from memory or its file. */
async function artifactBytes(artifact: Artifact): Promise<Uint8Array> {
  return artifact.bytes ?? (await readFile(artifactPath(artifact)));
}

async function hashFile(path: string, algorithm: string): Promise<string> {
  const hash = createHash(algorithm);
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** The roots and keys the policy trusts, loaded once per verification. */
interface TrustContext {
  policy: TrustPolicy;
  roots: () => Promise<RootVerifier[]>;
  keys: PinnedKey[];
  /** Keys pinned in the trust dir but not counted because the policy names a signer. */
  ignoredDirKeys: number;
}

async function trustContext(policy: TrustPolicy): Promise<TrustContext> {
  const dirKeys = trustDirFiles(policy.trustDir, '.pub');
  const countDirKeys = !namesSigner(policy);
  const keys = await Promise.all([...policy.keyFiles, ...(countDirKeys ? dirKeys : [])].map(readPinnedKey));
  let roots: Promise<RootVerifier[]> | undefined;
  return {
    policy,
    keys,
    ignoredDirKeys: countDirKeys ? 0 : dirKeys.length,
    roots: () => (roots ??= trustedRoots(policy).then((list) => list.map(rootVerifier))),
  };
}

/** Verifies any file against an attestation and/or a key-signed bundle, as `gh attestation verify F --bundle A` does. */
export async function verifyArtifact(input: VerifyInput, policy: TrustPolicy): Promise<Verdict> {
  if (!input.attestationPath && !input.signaturePath) {
    throw new ContainaiError('USAGE', 'nothing to verify the artifact against', { hint: 'give --attestation FILE' });
  }
  const trust = await trustContext(policy);
  const candidates: ParsedBundle[] = [];
  if (input.attestationPath) candidates.push(...(await readBundles(input.attestationPath)));
  if (input.signaturePath) candidates.push(...(await readBundles(input.signaturePath)));
  const sha256 = await sha256FileOrRefuse(input.artifactPath);
  return decide(candidates, artifactFrom(input.artifactPath, sha256), trust);
}

/**
 * The signature material of a small file held in memory (SHA256SUMS, containai-host.SHA256SUMS), as
 * a release carries it: attestation lines, a key-signed Sigstore bundle, and the bare base64
 * signature cosign sign-blob writes. Texts as read; nothing here is trusted until verified.
 */
export interface BlobSignatures {
  attestation?: string;
  sigstoreBundle?: string;
  /** The base64 signature (`<name>.sig`); when present it must verify too, as `cosign verify-blob --key` would check it. */
  sig?: string;
}

/** Labels for messages: which file each piece of material came from. */
export interface BlobLabels {
  artifact: string;
  attestation?: string;
  sigstoreBundle?: string;
  sig?: string;
}

/**
 * Verifies a small file's bytes (never re-read from disk) against its signature material under the
 * policy; the one entry point for the manifest and the agent sums. Material that is present must
 * not be ignored: a .sig that no pinned key verifies fails the whole verification, even beside a
 * Sigstore bundle that verifies (a cosign user checking the .sig would be refused too).
 */
export async function verifyBlob(bytes: Uint8Array, material: BlobSignatures, policy: TrustPolicy, labels: BlobLabels): Promise<Verdict> {
  return verifySigned({ sha256: createHash('sha256').update(bytes).digest('hex'), bytes }, material, policy, labels);
}

/**
 * The same for an artifact known by its digest (computed in this run from its bytes), with its bytes
 * in memory or at a path when a scheme needs them (Ed25519 signs the message itself): without
 * either, such a signature throws PayloadBytesNeeded for the caller to retry with the bytes.
 */
export async function verifySigned(
  subject: { sha256: string; bytes?: Uint8Array; path?: string },
  material: BlobSignatures,
  policy: TrustPolicy,
  labels: BlobLabels,
): Promise<Verdict> {
  const artifact = artifactFrom(subject.path, subject.sha256, subject.bytes);
  const sha256 = subject.sha256;
  const trust = await trustContext(policy);
  const candidates: ParsedBundle[] = [];
  if (material.attestation !== undefined) candidates.push(...parseBundles(material.attestation, labels.attestation ?? 'attestation'));
  if (material.sigstoreBundle !== undefined) candidates.push(...parseBundles(material.sigstoreBundle, labels.sigstoreBundle ?? 'signature bundle'));
  const rawSig = material.sig === undefined ? undefined : await verifyRawSignature(material.sig, artifact, trust, labels.sig ?? `${labels.artifact}.sig`);
  if (candidates.length === 0) {
    if (rawSig) return rawSig;
    if (policy.allowUnsigned) return { kind: 'unsigned', artifactSha256: sha256 };
    throw new ContainaiError('VERIFY', `${labels.artifact} is unsigned: no attestation and no signature came with it`, {
      hint: 'attest the release (gh attestation) or sign it (containai-build sign); --allow-unsigned accepts it for development only',
    });
  }
  return decide(candidates, artifact, trust);
}

/**
 * The bare signature: checked with every key the policy counts. Returns a key verdict when one
 * verifies it; refuses when keys are pinned and none does. With no key to check it against (a
 * policy of attestations only) it decides nothing either way and is left to the other material.
 */
async function verifyRawSignature(text: string, artifact: Artifact, trust: TrustContext, label: string): Promise<Verdict | undefined> {
  if (trust.keys.length === 0) return undefined;
  const signature = Buffer.from(text.trim(), 'base64');
  for (const key of trust.keys) {
    if (signature.length > 0 && (await verifyMessage(artifact, key, signature))) {
      return { kind: 'key', artifactSha256: artifact.sha256, signer: { keyId: key.keyId } };
    }
  }
  throw new ContainaiError('VERIFY', `${label} does not verify with any pinned key (altered, or signed by another key)`, {
    hint: 'a signature that came with the release must verify, whatever else does: do not install it, or remove the stray .sig from the release if you made it by mistake',
  });
}

async function sha256FileOrRefuse(path: string): Promise<string> {
  try {
    return await sha256File(path);
  } catch (err) {
    throw new ContainaiError('NOT_FOUND', `cannot read ${path}: ${describeCause(err)}`, { cause: err });
  }
}

async function decide(candidates: ParsedBundle[], artifact: Artifact, trust: TrustContext): Promise<Verdict> {
  const failures: string[] = [];
  for (const candidate of candidates) {
    try {
      const verdict = await verifyOne(candidate, artifact, trust);
      return { ...verdict, bundleIndex: candidate.index };
    } catch (err) {
      if (!(err instanceof Refusal)) throw err;
      failures.push(`${candidate.where}: ${err.message}`);
    }
  }
  const shown = failures.length > 3 ? [...failures.slice(0, 3), `and ${failures.length - 3} more`] : failures;
  throw new ContainaiError('VERIFY', `verification failed: ${shown.join('; ')}`, {
    hint: hintFor(trust),
    details: { failures },
  });
}

function hintFor(trust: TrustContext): string {
  const p = trust.policy;
  const identity = [p.repo && `--repo ${p.repo}`, p.owner && `--owner ${p.owner}`, p.signerWorkflow && `--signer-workflow ${p.signerWorkflow}`]
    .filter(Boolean)
    .join(' ');
  return `do not install this artifact; check that it was signed by ${identity || 'a pinned key'} (issuer ${p.certOidcIssuer}, predicate ${p.predicateType})`;
}

async function verifyOne(candidate: ParsedBundle, artifact: Artifact, trust: TrustContext): Promise<Omit<Verdict, 'bundleIndex'>> {
  const { bundle } = candidate;
  return bundle.verificationMaterial.content.$case === 'publicKey'
    ? verifyKeySigned(bundle, artifact, trust)
    : verifyCertificateSigned(bundle, artifact, trust);
}

// ---------------------------------------------------------------------------
// Certificate (attestation) route: chain, log, timestamp via @sigstore/verify; then the policy.

function leafCertificate(bundle: Bundle): X509Certificate {
  const content = bundle.verificationMaterial.content;
  const raw =
    content.$case === 'certificate'
      ? content.certificate.rawBytes
      : content.$case === 'x509CertificateChain'
        ? content.x509CertificateChain.certificates[0]?.rawBytes
        : undefined;
  if (!raw) throw new Refusal('the bundle carries no certificate');
  try {
    return X509Certificate.parse(Buffer.from(raw));
  } catch {
    throw new Refusal('the bundle certificate cannot be parsed');
  }
}

async function verifyCertificateSigned(bundle: Bundle, artifact: Artifact, trust: TrustContext): Promise<Omit<Verdict, 'bundleIndex'>> {
  const policy = trust.policy;
  if (!namesSigner(policy)) {
    throw new Refusal(
      policy.signerWorkflow
        ? 'an attestation counts only for a named repository or owner: a workflow alone (a shared reusable one signs for every caller) is not enough; give --repo or --owner'
        : 'an attestation counts only for a named signer: give --repo or --owner',
    );
  }
  const roots = await trust.roots();
  if (roots.length === 0) throw new Refusal('no trusted root to verify the certificate against (--no-public-good and no --trusted-root)');

  // A certificate signature counts only as an attestation, and the policy's predicate type is
  // checked in the statement: a bare message signature (cosign sign-blob) has none to check.
  if (bundle.content.$case !== 'dsseEnvelope') {
    throw new Refusal('an attestation must be an in-toto DSSE statement; its predicate type cannot be checked (this is a message signature)');
  }
  const envelope = bundle.content.dsseEnvelope;

  let entity;
  try {
    entity = toSignedEntity(bundle);
  } catch (err) {
    throw new Refusal(`the bundle's verification material cannot be read: ${describeCause(err)}`);
  }
  const errors: unknown[] = [];
  let verifiedBy: string | undefined;
  for (const root of roots) {
    try {
      root.verifier.verify(entity);
      verifiedBy = root.name;
      break;
    } catch (err) {
      errors.push(err);
    }
  }
  if (!verifiedBy) throw new Refusal(sigstoreFailure(errors));

  const identity = certificateIdentity(leafCertificate(bundle));
  checkIdentity(identity, policy);

  const predicateType = await checkStatement(envelope.payloadType, envelope.payload, artifact, policy);
  return {
    kind: 'attestation',
    artifactSha256: artifact.sha256,
    predicateType,
    signer: {
      sourceRepository: repoName(identity.sourceRepositoryUri),
      sourceRepositoryOwner: repoName(identity.sourceRepositoryOwnerUri),
      workflow: identity.subjectAlternativeName,
      ref: identity.sourceRepositoryRef,
      issuer: identity.issuer,
    },
  };
}

/** The identity policy, in the order a person checks it; exact or anchored matches only. */
function checkIdentity(identity: CertificateIdentity, policy: TrustPolicy): void {
  if (identity.issuer !== policy.certOidcIssuer) {
    throw new Refusal(`certificate issuer ${show(identity.issuer)} is not ${policy.certOidcIssuer} (--cert-oidc-issuer)`);
  }
  if (policy.repo && !sameUri(identity.sourceRepositoryUri, expectedRepoUri(policy.repo))) {
    throw new Refusal(`certificate source repository ${show(identity.sourceRepositoryUri)} is not ${expectedRepoUri(policy.repo)} (--repo)`);
  }
  if (policy.owner && !sameUri(identity.sourceRepositoryOwnerUri, expectedOwnerUri(policy.owner))) {
    throw new Refusal(`certificate source repository owner ${show(identity.sourceRepositoryOwnerUri)} is not ${expectedOwnerUri(policy.owner)} (--owner)`);
  }
  if (policy.signerWorkflow && !matchesSignerWorkflow(identity.subjectAlternativeName, policy.signerWorkflow)) {
    const expected = expectedWorkflowUri(policy.signerWorkflow);
    throw new Refusal(`certificate signer workflow ${show(identity.subjectAlternativeName)} is not ${expected.includes('@') ? expected : `${expected}@<ref>`} (--signer-workflow)`);
  }
}

const show = (v: string | undefined) => (v === undefined ? '(none)' : v);

/** One line for why no root verified the bundle; a chain failure is reported only when nothing got further. */
function sigstoreFailure(errors: unknown[]): string {
  const lines = errors.map(describeSigstoreError);
  return lines.find((l) => !l.startsWith('the certificate does not chain')) ?? lines[0] ?? 'not verified';
}

function describeSigstoreError(err: unknown): string {
  const code = (err as { code?: string }).code;
  const message = err instanceof Error ? err.message : String(err);
  const cause = (err as { cause?: unknown }).cause;
  const causeMessage = cause instanceof Error ? cause.message : '';
  switch (code) {
    case 'CERTIFICATE_ERROR':
      if (/expired|not valid/.test(causeMessage)) return 'the certificate was not valid at the time of signing';
      if (/SCT/.test(message)) return `the certificate has no valid SCT from a trusted CT log (${message})`;
      return 'the certificate does not chain to a trusted root';
    case 'SIGNATURE_ERROR':
      return 'the signature does not match the signed content (altered, or signed by another key)';
    case 'TIMESTAMP_ERROR':
      return `no verified signing time (${message})`;
    case 'TLOG_ERROR':
    case 'TLOG_INCLUSION_PROOF_ERROR':
    case 'TLOG_INCLUSION_PROMISE_ERROR':
    case 'TLOG_MISSING_INCLUSION_ERROR':
    case 'TLOG_BODY_ERROR':
      return `the transparency log entry does not verify (${message})`;
    case 'PUBLIC_KEY_ERROR':
      return `the signing key is not trusted (${message})`;
    default:
      return `the bundle does not verify (${message.split('\n')[0]})`;
  }
}

async function checkStatement(payloadType: string, payload: Buffer, artifact: Artifact, policy: TrustPolicy): Promise<string> {
  let statement;
  try {
    statement = parseStatement(payloadType, payload);
  } catch (err) {
    throw new Refusal(err instanceof Error ? err.message : String(err));
  }
  if (statement.predicateType !== policy.predicateType) {
    throw new Refusal(`predicate type ${statement.predicateType} is not ${policy.predicateType} (--predicate-type)`);
  }
  if (!(await subjectMatches(statement, artifact))) {
    throw new Refusal(`the artifact (sha256:${artifact.sha256}) is not a subject of the attestation`);
  }
  return statement.predicateType;
}

function checkMessageDigest(digest: { algorithm: HashAlgorithm; digest: Buffer } | undefined, artifact: Artifact): void {
  if (!digest || digest.algorithm !== HashAlgorithm.SHA2_256) throw new Refusal('the message signature is not over a SHA-256 digest');
  if (digest.digest.toString('hex') !== artifact.sha256) {
    throw new Refusal(`the signature is for another artifact (signed sha256:${digest.digest.toString('hex')}, artifact sha256:${artifact.sha256})`);
  }
}

// ---------------------------------------------------------------------------
// Key route: a pinned key, no log required.

async function verifyKeySigned(bundle: Bundle, artifact: Artifact, trust: TrustContext): Promise<Omit<Verdict, 'bundleIndex'>> {
  if (trust.keys.length === 0) {
    throw new Refusal(
      trust.ignoredDirKeys > 0
        ? 'signed by a key, and the policy names a signer: a key signature counts only for a key given with --key'
        : 'signed by a key, and no key is pinned (--key, or the trust dir)',
    );
  }
  const hint = bundle.verificationMaterial.content.$case === 'publicKey' ? bundle.verificationMaterial.content.publicKey.hint : '';
  // The hint only orders the search; every pinned key is tried and only a pinned key can pass.
  const keys = [...trust.keys].sort((a, b) => Number(b.keyId === hint) - Number(a.keyId === hint));
  // The hint names the key it claims to be signed by: worth saying when no pinned key is that one (a
  // rollback to a release signed only by a key removed in a rotation), never worth trusting.
  const notPinned = () =>
    /^[0-9a-f]{64}$/.test(hint) && !trust.keys.some((k) => k.keyId === hint)
      ? `the signature does not verify with any pinned key: it names key ${hint}, which this host does not pin (removed in a key rotation, or another signer)`
      : 'the signature does not verify with any pinned key (altered, or signed by another key)';

  if (bundle.content.$case === 'messageSignature') {
    const { messageDigest, signature } = bundle.content.messageSignature;
    checkMessageDigest(messageDigest, artifact);
    for (const key of keys) {
      if (await verifyMessage(artifact, key, signature)) {
        return { kind: 'key', artifactSha256: artifact.sha256, signer: { keyId: key.keyId } };
      }
    }
    throw new Refusal(notPinned());
  }

  const envelope = bundle.content.dsseEnvelope;
  if (envelope.signatures.length !== 1) throw new Refusal('the DSSE envelope must carry exactly one signature');
  const pae = dsse.preAuthEncoding(envelope.payloadType, envelope.payload);
  const sig = (envelope.signatures[0] as { sig: Buffer }).sig;
  const key = keys.find((k) => verifySignature(k.algorithm === 'ed25519' ? null : 'sha256', pae, k.key, sig));
  if (!key) throw new Refusal(notPinned());
  const predicateType = await checkStatement(envelope.payloadType, envelope.payload, artifact, trust.policy);
  return { kind: 'key', artifactSha256: artifact.sha256, predicateType, signer: { keyId: key.keyId } };
}

/**
 * A message signature is over the artifact's bytes. ECDSA signs SHA-256(bytes),
 * so it is checked against the digest this run computed from the bytes on disk
 * (while the bundle was unpacked, or by sha256File): the payload is read once.
 * node:crypto cannot verify ECDSA from a digest, hence @noble/curves there.
 * RSA PKCS#1 v1.5 signs DigestInfo(SHA-256(bytes)): bytes in memory are
 * verified by node:crypto over the bytes, otherwise against our digest.
 * Ed25519 (pure EdDSA, RFC 8032) hashes R || A || message inside the
 * signature scheme, so no digest of ours can stand in for the message: its
 * bytes are read whole and verified by node:crypto.
 */
async function verifyMessage(artifact: Artifact, key: PinnedKey, signature: Buffer): Promise<boolean> {
  try {
    if (key.algorithm === 'ed25519') return verifySignature(null, await artifactBytes(artifact), key.key, signature);
    if (key.algorithm === 'rsa') {
      return artifact.bytes ? verifySignature('sha256', artifact.bytes, { key: key.key, padding: constants.RSA_PKCS1_PADDING }, signature) : verifyRsaDigest(key, artifact.sha256, signature);
    }
    return await verifyEcdsaDigest(key, artifact.sha256, signature);
  } catch (err) {
    if (err instanceof PayloadBytesNeeded) throw err;
    return false;
  }
}

/**
 * ECDSA P-256 over a SHA-256 digest (prehashed), DER signature as cosign and
 * OpenSSL write it. High-S signatures are accepted as OpenSSL and Go accept
 * them (half of the signatures they make are high-S); the signature binds the
 * digest and the key either way.
 */
async function verifyEcdsaDigest(key: PinnedKey, sha256: string, signature: Buffer): Promise<boolean> {
  if (!/^[0-9a-f]{64}$/.test(sha256)) return false;
  const { p256 } = await import('@noble/curves/nist.js');
  return p256.verify(new Uint8Array(signature), Buffer.from(sha256, 'hex'), ecPublicKeyBytes(key), {
    prehash: false,
    format: 'der',
    lowS: false,
  });
}

/** DER of DigestInfo { sha256, NULL } with the 32-byte digest to follow (RFC 8017 section 9.2, note 1). */
const SHA256_DIGEST_INFO_PREFIX = Buffer.from('3031300d060960864801650304020105000420', 'hex');

/**
 * RSA PKCS#1 v1.5 over a SHA-256 digest. node:crypto (and Bun's) verify takes the message, not a
 * digest, so the signature is opened with the public key (publicDecrypt checks the type-1 padding
 * 00 01 FF.. 00 and returns what it wraps), and what it wraps must be exactly DigestInfo(sha256,
 * our digest): the encoding is compared whole, never parsed (no BER leniency to forge through).
 */
function verifyRsaDigest(key: PinnedKey, sha256: string, signature: Buffer): boolean {
  if (!/^[0-9a-f]{64}$/.test(sha256)) return false;
  const modulusBytes = Math.ceil((key.key.asymmetricKeyDetails?.modulusLength ?? 0) / 8);
  if (signature.length !== modulusBytes) return false;
  const expected = Buffer.concat([SHA256_DIGEST_INFO_PREFIX, Buffer.from(sha256, 'hex')]);
  const wrapped = publicDecrypt({ key: key.key, padding: constants.RSA_PKCS1_PADDING }, signature);
  return wrapped.length === expected.length && timingSafeEqual(wrapped, expected);
}

/** The SEC1 uncompressed point (0x04 || x || y) of a P-256 public key. */
function ecPublicKeyBytes(key: PinnedKey): Uint8Array {
  const jwk = key.key.export({ format: 'jwk' });
  if (jwk.crv !== 'P-256' || !jwk.x || !jwk.y) throw new Refusal(`${key.source} is not a P-256 key`);
  return new Uint8Array(Buffer.concat([Buffer.of(4), Buffer.from(jwk.x, 'base64url'), Buffer.from(jwk.y, 'base64url')]));
}
