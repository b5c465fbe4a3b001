/**
 * Signing material the tests make for themselves: key pairs (PEM files), a
 * test CA with a Fulcio-like leaf certificate, a fake Rekor log that writes
 * real inclusion promises and proofs, and the trusted_root.json that pins
 * both. The production verifier checks these exactly as it checks the public
 * good instance; nothing here loosens it.
 */
import { createHash, createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { json as canonicalJson } from '@sigstore/core';

// ---------------------------------------------------------------------------
// A minimal DER writer: enough for X.509 certificates.

function len(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}
const tlv = (tag: number, body: Buffer) => Buffer.concat([Buffer.from([tag]), len(body.length), body]);
const seq = (...items: Buffer[]) => tlv(0x30, Buffer.concat(items));
const set = (...items: Buffer[]) => tlv(0x31, Buffer.concat(items));
const octets = (b: Buffer) => tlv(0x04, b);
const utf8 = (s: string) => tlv(0x0c, Buffer.from(s, 'utf8'));
const bool = (v: boolean) => tlv(0x01, Buffer.from([v ? 0xff : 0]));
const explicit = (n: number, body: Buffer) => tlv(0xa0 + n, body);
const bitString = (b: Buffer, unused = 0) => tlv(0x03, Buffer.concat([Buffer.from([unused]), b]));
function integer(v: bigint | number): Buffer {
  let hex = BigInt(v).toString(16);
  if (hex.length % 2) hex = `0${hex}`;
  let b = Buffer.from(hex, 'hex');
  if ((b[0] as number) & 0x80) b = Buffer.concat([Buffer.from([0]), b]);
  return tlv(0x02, b);
}
function oid(dotted: string): Buffer {
  const parts = dotted.split('.').map(Number);
  const out = [40 * (parts[0] as number) + (parts[1] as number)];
  for (const p of parts.slice(2)) {
    const stack = [p & 0x7f];
    for (let v = Math.floor(p / 128); v > 0; v = Math.floor(v / 128)) stack.unshift(0x80 | (v & 0x7f));
    out.push(...stack);
  }
  return tlv(0x06, Buffer.from(out));
}
function time(d: Date): Buffer {
  const iso = d.toISOString().replace(/[-:T]/g, '').slice(0, 14) + 'Z';
  return d.getUTCFullYear() < 2050 ? tlv(0x17, Buffer.from(iso.slice(2))) : tlv(0x18, Buffer.from(iso));
}
const name = (cn: string) => seq(set(seq(oid('2.5.4.10'), utf8('containai-test'))), set(seq(oid('2.5.4.3'), utf8(cn))));
const ext = (id: string, critical: boolean, value: Buffer) => seq(oid(id), ...(critical ? [bool(true)] : []), octets(value));
const ECDSA_SHA256 = seq(oid('1.2.840.10045.4.3.2'));

const spki = (key: KeyObject) => key.export({ type: 'spki', format: 'der' }) as Buffer;
const keyId = (key: KeyObject) => createHash('sha1').update(spki(key)).digest();

interface CertOptions {
  subject: string;
  issuer: string;
  publicKey: KeyObject;
  signer: KeyObject;
  issuerKey: KeyObject;
  notBefore: Date;
  notAfter: Date;
  extensions: Buffer[];
}

function certificate(o: CertOptions): Buffer {
  const tbs = seq(
    explicit(0, integer(2)),
    integer(BigInt(`0x${createHash('sha256').update(o.subject + Math.random()).digest('hex').slice(0, 30)}`)),
    ECDSA_SHA256,
    name(o.issuer),
    seq(time(o.notBefore), time(o.notAfter)),
    name(o.subject),
    spki(o.publicKey),
    explicit(3, seq(ext('2.5.29.14', false, octets(keyId(o.publicKey))), ext('2.5.29.35', false, seq(tlv(0x80, keyId(o.issuerKey)))), ...o.extensions)),
  );
  return seq(tbs, ECDSA_SHA256, bitString(sign('sha256', tbs, o.signer)));
}

// ---------------------------------------------------------------------------
// Keys

export type KeyKind = 'ecdsa' | 'ed25519' | 'rsa' | 'rsa4096';

export interface TestKeyPair {
  privateKey: KeyObject;
  publicKey: KeyObject;
  publicPem: string;
  /** PKCS#8 PEM. */
  privatePem: string;
  /** SEC1 PEM (ECDSA only). */
  sec1Pem?: string;
  /** PKCS#1 PEM ("RSA PRIVATE KEY", RSA only). */
  pkcs1Pem?: string;
}

function generate(kind: KeyKind): { privateKey: KeyObject; publicKey: KeyObject } {
  switch (kind) {
    case 'ecdsa':
      return generateKeyPairSync('ec', { namedCurve: 'P-256' });
    case 'ed25519':
      return generateKeyPairSync('ed25519');
    case 'rsa':
      return generateKeyPairSync('rsa', { modulusLength: 2048 });
    case 'rsa4096':
      return generateKeyPairSync('rsa', { modulusLength: 4096 });
  }
}

export function makeKeyPair(kind: KeyKind = 'ecdsa'): TestKeyPair {
  const { privateKey, publicKey } = generate(kind);
  return {
    privateKey,
    publicKey,
    publicPem: publicKey.export({ type: 'spki', format: 'pem' }) as string,
    privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    sec1Pem: kind === 'ecdsa' ? (privateKey.export({ type: 'sec1', format: 'pem' }) as string) : undefined,
    pkcs1Pem: kind.startsWith('rsa') ? (privateKey.export({ type: 'pkcs1', format: 'pem' }) as string) : undefined,
  };
}

/** Writes NAME.pub and NAME.key (PKCS#8) into dir; returns their paths. */
export function writeKeyPair(dir: string, nameBase: string, pair: TestKeyPair): { pub: string; key: string } {
  const pub = join(dir, `${nameBase}.pub`);
  const key = join(dir, `${nameBase}.key`);
  writeFileSync(pub, pair.publicPem);
  writeFileSync(key, pair.privatePem, { mode: 0o600 });
  return { pub, key };
}

/**
 * cosign's encrypted key format, made here because cosign cannot be installed:
 * PEM "ENCRYPTED SIGSTORE PRIVATE KEY" around JSON {kdf: scrypt, cipher:
 * nacl/secretbox, ciphertext} sealing the PKCS#8 DER.
 */
export async function cosignEncryptedPem(pair: TestKeyPair, password: string, params = { N: 32768, r: 8, p: 1 }): Promise<string> {
  const { scryptSync, randomBytes } = await import('node:crypto');
  const { xsalsa20poly1305 } = await import('@noble/ciphers/salsa.js');
  const salt = randomBytes(32);
  const nonce = randomBytes(24);
  const key = scryptSync(Buffer.from(password), salt, 32, { ...params, maxmem: 256 * params.N * params.r });
  const der = pair.privateKey.export({ type: 'pkcs8', format: 'der' }) as Buffer;
  const ciphertext = xsalsa20poly1305(new Uint8Array(key), new Uint8Array(nonce)).encrypt(new Uint8Array(der));
  const doc = {
    kdf: { name: 'scrypt', params, salt: salt.toString('base64') },
    cipher: { name: 'nacl/secretbox', nonce: nonce.toString('base64') },
    ciphertext: Buffer.from(ciphertext).toString('base64'),
  };
  const b64 = Buffer.from(JSON.stringify(doc)).toString('base64').replace(/(.{64})/g, '$1\n');
  return `-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n${b64}\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n`;
}

// ---------------------------------------------------------------------------
// Bundles signed with a key (what `containai-build sign` and `cosign attest-blob --key` write)

export const IN_TOTO = 'application/vnd.in-toto+json';
export const SLSA = 'https://slsa.dev/provenance/v1';

export function statement(sha256: string, predicateType = SLSA, subjectName = 'payload.tar.gz'): Buffer {
  return Buffer.from(
    JSON.stringify({ _type: 'https://in-toto.io/Statement/v1', subject: [{ name: subjectName, digest: { sha256 } }], predicateType, predicate: {} }),
  );
}

const pae = (type: string, body: Buffer) =>
  Buffer.concat([Buffer.from(`DSSEv1 ${Buffer.byteLength(type)} ${type} ${body.length} `), body]);

export function signWith(key: KeyObject, data: Buffer): Buffer {
  return sign(key.asymmetricKeyType === 'ed25519' ? null : 'sha256', data, key);
}

export function keyDsseBundle(pair: TestKeyPair, payload: Buffer): Record<string, unknown> {
  return {
    mediaType: 'application/vnd.dev.sigstore.bundle.v0.3+json',
    verificationMaterial: {
      publicKey: { hint: createHash('sha256').update(spki(pair.publicKey)).digest('hex') },
      tlogEntries: [],
      timestampVerificationData: {},
    },
    dsseEnvelope: {
      payload: payload.toString('base64'),
      payloadType: IN_TOTO,
      signatures: [{ sig: signWith(pair.privateKey, pae(IN_TOTO, payload)).toString('base64'), keyid: '' }],
    },
  };
}

// ---------------------------------------------------------------------------
// A test CA and a fake Rekor: attestations shaped like GitHub's

export interface Identity {
  repo: string; // OWNER/REPO
  workflowPath: string; // .github/workflows/release.yml
  ref: string; // refs/heads/main
  issuer: string;
}

export const DEFAULT_IDENTITY: Identity = {
  repo: 'acme/widgets',
  workflowPath: '.github/workflows/release.yml',
  ref: 'refs/tags/v1.0.0',
  issuer: 'https://token.actions.githubusercontent.com',
};

export interface AttestOptions {
  identity?: Partial<Identity>;
  predicateType?: string;
  /** The leaf's validity; by default ten minutes around the log's integration time. */
  notBefore?: Date;
  notAfter?: Date;
  /** When the fake log says it saw the entry (default: now). */
  integratedTime?: Date;
  /** Change the statement after signing (tamper test). */
  tamperStatement?: boolean;
  payload?: Buffer;
}

export interface TestCA {
  /** trusted_root.json pinning this CA and this log. */
  trustedRoot: Record<string, unknown>;
  /** A DSSE attestation for the artifact digest, as a bundle v0.3 object. */
  attest(sha256: string, options?: AttestOptions): Record<string, unknown>;
  attestBlob(artifact: Buffer, options?: AttestOptions): Record<string, unknown>;
}

const b64 = (b: Buffer) => b.toString('base64');

export function makeTestCA(): TestCA {
  const ca = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const log = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const caNotBefore = new Date(Date.now() - 365 * 86400_000);
  const caCert = certificate({
    subject: 'test-ca',
    issuer: 'test-ca',
    publicKey: ca.publicKey,
    signer: ca.privateKey,
    issuerKey: ca.publicKey,
    notBefore: caNotBefore,
    notAfter: new Date(Date.now() + 10 * 365 * 86400_000),
    extensions: [ext('2.5.29.19', true, seq(bool(true))), ext('2.5.29.15', true, bitString(Buffer.from([0x06]), 1))],
  });
  const logId = createHash('sha256').update(spki(log.publicKey)).digest();
  const logUrl = 'https://rekor.containai.test';
  const origin = 'rekor.containai.test - 1';

  const trustedRoot = {
    mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
    tlogs: [
      {
        baseUrl: logUrl,
        hashAlgorithm: 'SHA2_256',
        publicKey: { rawBytes: b64(spki(log.publicKey)), keyDetails: 'PKIX_ECDSA_P256_SHA_256', validFor: { start: caNotBefore.toISOString() } },
        logId: { keyId: b64(logId) },
      },
    ],
    certificateAuthorities: [
      {
        subject: { organization: 'containai-test', commonName: 'test-ca' },
        uri: 'https://fulcio.containai.test',
        certChain: { certificates: [{ rawBytes: b64(caCert) }] },
        validFor: { start: caNotBefore.toISOString() },
      },
    ],
    ctlogs: [],
    timestampAuthorities: [],
  };

  function attest(sha256: string, o: AttestOptions = {}): Record<string, unknown> {
    const id = { ...DEFAULT_IDENTITY, ...o.identity };
    const owner = id.repo.split('/')[0] as string;
    const san = `https://github.com/${id.repo}/${id.workflowPath}@${id.ref}`;
    const integrated = o.integratedTime ?? new Date(Math.floor(Date.now() / 1000) * 1000);
    const leaf = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const v2 = (n: number, value: string) => ext(`1.3.6.1.4.1.57264.1.${n}`, false, utf8(value));
    const leafCert = certificate({
      subject: '',
      issuer: 'test-ca',
      publicKey: leaf.publicKey,
      signer: ca.privateKey,
      issuerKey: ca.publicKey,
      notBefore: o.notBefore ?? new Date(integrated.getTime() - 60_000),
      notAfter: o.notAfter ?? new Date(integrated.getTime() + 10 * 60_000),
      extensions: [
        ext('2.5.29.15', true, bitString(Buffer.from([0x80]), 7)),
        ext('2.5.29.37', false, seq(oid('1.3.6.1.5.5.7.3.3'))),
        ext('2.5.29.17', true, seq(tlv(0x86, Buffer.from(san)))),
        ext('1.3.6.1.4.1.57264.1.1', false, Buffer.from(id.issuer)),
        v2(8, id.issuer),
        v2(9, san),
        v2(12, `https://github.com/${id.repo}`),
        v2(14, id.ref),
        v2(15, '123456'),
        v2(16, `https://github.com/${owner}`),
        v2(17, '654321'),
      ],
    });

    const payload = o.payload ?? statement(sha256, o.predicateType);
    const sig = signWith(leaf.privateKey, pae(IN_TOTO, payload));
    const body = Buffer.from(
      canonicalJson.canonicalize({
        apiVersion: '0.0.1',
        kind: 'dsse',
        spec: {
          envelopeHash: { algorithm: 'sha256', value: createHash('sha256').update(payload).digest('hex') },
          payloadHash: { algorithm: 'sha256', value: createHash('sha256').update(payload).digest('hex') },
          signatures: [{ signature: b64(sig), verifier: b64(Buffer.from(`-----BEGIN CERTIFICATE-----\n${b64(leafCert)}\n-----END CERTIFICATE-----\n`)) }],
        },
      }),
    );
    const logIndex = 0;
    const integratedTime = Math.floor(integrated.getTime() / 1000);
    const set = sign(
      'sha256',
      Buffer.from(canonicalJson.canonicalize({ body: b64(body), integratedTime, logIndex, logID: logId.toString('hex') })),
      log.privateKey,
    );
    // A tree of one leaf: the root is the leaf hash, and the proof is empty.
    const rootHash = createHash('sha256').update(Buffer.concat([Buffer.from([0]), body])).digest();
    const note = `${origin}\n1\n${b64(rootHash)}\n`;
    const noteSig = Buffer.concat([logId.subarray(0, 4), sign('sha256', Buffer.from(note), log.privateKey)]);
    const envelope = `${note}\n\u2014 rekor.containai.test ${b64(noteSig)}\n`;

    const finalPayload = o.tamperStatement ? statement(sha256, `${o.predicateType ?? SLSA}`, 'other-name') : payload;
    return {
      mediaType: 'application/vnd.dev.sigstore.bundle.v0.3+json',
      verificationMaterial: {
        certificate: { rawBytes: b64(leafCert) },
        tlogEntries: [
          {
            logIndex: String(logIndex),
            logId: { keyId: b64(logId) },
            kindVersion: { kind: 'dsse', version: '0.0.1' },
            integratedTime: String(integratedTime),
            inclusionPromise: { signedEntryTimestamp: b64(set) },
            inclusionProof: { logIndex: String(logIndex), rootHash: b64(rootHash), treeSize: '1', hashes: [], checkpoint: { envelope } },
            canonicalizedBody: b64(body),
          },
        ],
        timestampVerificationData: {},
      },
      dsseEnvelope: { payload: b64(finalPayload), payloadType: IN_TOTO, signatures: [{ sig: b64(sig), keyid: '' }] },
    };
  }


  function attestBlob(artifact: Buffer, o: AttestOptions = {}): Record<string, unknown> {
    const id = { ...DEFAULT_IDENTITY, ...o.identity };
    const owner = id.repo.split('/')[0] as string;
    const san = `https://github.com/${id.repo}/${id.workflowPath}@${id.ref}`;
    const integrated = new Date(Math.floor(Date.now() / 1000) * 1000);
    const leaf = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const v2 = (n: number, value: string) => ext(`1.3.6.1.4.1.57264.1.${n}`, false, utf8(value));
    const leafCert = certificate({
      subject: '', issuer: 'test-ca', publicKey: leaf.publicKey, signer: ca.privateKey, issuerKey: ca.publicKey,
      notBefore: new Date(integrated.getTime() - 60_000), notAfter: new Date(integrated.getTime() + 10 * 60_000),
      extensions: [
        ext('2.5.29.15', true, bitString(Buffer.from([0x80]), 7)),
        ext('2.5.29.37', false, seq(oid('1.3.6.1.5.5.7.3.3'))),
        ext('2.5.29.17', true, seq(tlv(0x86, Buffer.from(san)))),
        ext('1.3.6.1.4.1.57264.1.1', false, Buffer.from(id.issuer)),
        v2(8, id.issuer), v2(9, san), v2(12, `https://github.com/${id.repo}`), v2(14, id.ref), v2(15, '123456'),
        v2(16, `https://github.com/${owner}`), v2(17, '654321'),
      ],
    });
    const digest = createHash('sha256').update(artifact).digest();
    const sig = sign('sha256', artifact, leaf.privateKey);
    const body = Buffer.from(canonicalJson.canonicalize({
      apiVersion: '0.0.1', kind: 'hashedrekord',
      spec: { data: { hash: { algorithm: 'sha256', value: digest.toString('hex') } },
              signature: { content: b64(sig), publicKey: { content: b64(Buffer.from(`-----BEGIN CERTIFICATE-----\n${b64(leafCert)}\n-----END CERTIFICATE-----\n`)) } } },
    }));
    const logIndex = 0;
    const integratedTime = Math.floor(integrated.getTime() / 1000);
    const set = sign('sha256', Buffer.from(canonicalJson.canonicalize({ body: b64(body), integratedTime, logIndex, logID: logId.toString('hex') })), log.privateKey);
    const rootHash = createHash('sha256').update(Buffer.concat([Buffer.from([0]), body])).digest();
    const note = `${origin}\n1\n${b64(rootHash)}\n`;
    const noteSig = Buffer.concat([logId.subarray(0, 4), sign('sha256', Buffer.from(note), log.privateKey)]);
    const envelope = `${note}\n\u2014 rekor.containai.test ${b64(noteSig)}\n`;
    return {
      mediaType: 'application/vnd.dev.sigstore.bundle.v0.3+json',
      verificationMaterial: {
        certificate: { rawBytes: b64(leafCert) },
        tlogEntries: [{ logIndex: String(logIndex), logId: { keyId: b64(logId) }, kindVersion: { kind: 'hashedrekord', version: '0.0.1' },
          integratedTime: String(integratedTime), inclusionPromise: { signedEntryTimestamp: b64(set) },
          inclusionProof: { logIndex: String(logIndex), rootHash: b64(rootHash), treeSize: '1', hashes: [], checkpoint: { envelope } },
          canonicalizedBody: b64(body) }],
        timestampVerificationData: {},
      },
      messageSignature: { messageDigest: { algorithm: 'SHA2_256', digest: b64(digest) }, signature: b64(sig) },
    };
  }
  return { trustedRoot, attest, attestBlob };
}

/** SHA-256 hex of bytes, for statements. */
export const sha256Hex = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');
export { createPublicKey };
