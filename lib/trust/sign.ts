/**
 * Key-based signing of payload.tar.gz, as `cosign sign-blob --key` does:
 * a Sigstore bundle v0.3 with a message signature and a public-key hint
 * (payload.sigstore.json), and the bare signature in base64 (payload.sig);
 * and of an in-toto statement (a rollout), as `cosign attest-blob --key`
 * does: a DSSE envelope in the same kind of bundle.
 * No transparency log: the host trusts the key because its operator pinned it.
 */
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createSign, sign as signBytes } from 'node:crypto';
import { dsse } from '@sigstore/core';
import { sha256File } from '../digest.ts';
import type { SigningKey } from './keys.ts';

export interface BlobSignature {
  /** The Sigstore bundle, ready for JSON.stringify. */
  bundle: Record<string, unknown>;
  /** Base64 signature, as cosign sign-blob --output-signature writes it. */
  signatureBase64: string;
  sha256: string;
}

/** ECDSA and RSA (PKCS#1 v1.5, SHA-256, as cosign signs with RSA keys) stream the file; Ed25519 (pure EdDSA) signs the bytes whole. */
async function signFile(path: string, key: SigningKey): Promise<Buffer> {
  if (key.algorithm === 'ed25519') return signBytes(null, await readFile(path), key.privateKey);
  const signer = createSign('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) signer.update(chunk as Buffer);
  return signer.sign(key.privateKey);
}

export async function signBlob(path: string, key: SigningKey): Promise<BlobSignature> {
  const [sha256, signature] = await Promise.all([sha256File(path), signFile(path, key)]);
  const signatureBase64 = signature.toString('base64');
  return {
    sha256,
    signatureBase64,
    bundle: {
      mediaType: 'application/vnd.dev.sigstore.bundle.v0.3+json',
      verificationMaterial: {
        publicKey: { hint: key.keyId },
        tlogEntries: [],
        timestampVerificationData: { rfc3161Timestamps: [] },
      },
      messageSignature: {
        messageDigest: { algorithm: 'SHA2_256', digest: Buffer.from(sha256, 'hex').toString('base64') },
        signature: signatureBase64,
      },
    },
  };
}

/**
 * A DSSE envelope over `payload` (an in-toto statement), signed with the key, in a Sigstore bundle
 * v0.3 with a public-key hint: what `cosign attest-blob --key` writes, and what lib/trust/verify.ts
 * checks on the key route (signature over PAE(payloadType, payload), then the statement's
 * predicate type and subject). No transparency log, as for signBlob.
 */
export function signDsse(payload: Uint8Array, key: SigningKey, payloadType = 'application/vnd.in-toto+json'): Record<string, unknown> {
  const body = Buffer.from(payload);
  const pae = dsse.preAuthEncoding(payloadType, body);
  const signature = signBytes(key.algorithm === 'ed25519' ? null : 'sha256', pae, key.privateKey);
  return {
    mediaType: 'application/vnd.dev.sigstore.bundle.v0.3+json',
    verificationMaterial: {
      publicKey: { hint: key.keyId },
      tlogEntries: [],
      timestampVerificationData: { rfc3161Timestamps: [] },
    },
    dsseEnvelope: {
      payload: body.toString('base64'),
      payloadType,
      signatures: [{ sig: signature.toString('base64'), keyid: '' }],
    },
  };
}
