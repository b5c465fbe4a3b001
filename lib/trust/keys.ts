/**
 * Keys: public keys an operator pins (PEM SPKI; ECDSA P-256, Ed25519, or RSA
 * of 2048 to 4096 bits, PKCS#1 v1.5 with SHA-256 as cosign signs with RSA),
 * and the private key `sign` uses: PKCS#8, SEC1 or PKCS#1 PEM, or cosign's
 * encrypted PEM (scrypt + NaCl secretbox, password from COSIGN_PASSWORD). Key
 * material and passwords are registered as secrets the moment they are read.
 */
import { createHash, createPrivateKey, createPublicKey, scryptSync, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { ContainaiError, describeCause } from '../errors.ts';
import { registerSecret, secretFromEnv } from '../secrets.ts';

export type KeyAlgorithm = 'ecdsa-p256' | 'ed25519' | 'rsa';

/** RSA below 2048 bits is breakable or nearly so; above 4096 is what no signer we know makes (and slow to verify). */
export const RSA_MIN_BITS = 2048;
export const RSA_MAX_BITS = 4096;

export interface PinnedKey {
  /** Hex SHA-256 of the SPKI DER: also the hint `sign` writes. */
  keyId: string;
  algorithm: KeyAlgorithm;
  key: KeyObject;
  source: string;
}

export function keyAlgorithm(key: KeyObject, source: string): KeyAlgorithm {
  if (key.asymmetricKeyType === 'ed25519') return 'ed25519';
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ecdsa-p256';
  if (key.asymmetricKeyType === 'rsa') {
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits < RSA_MIN_BITS || bits > RSA_MAX_BITS) {
      throw new ContainaiError('INPUT', `${source}: an RSA key of ${bits} bits is not accepted; RSA keys must have ${RSA_MIN_BITS} to ${RSA_MAX_BITS} bits`, {
        hint: bits < RSA_MIN_BITS ? 'a key this short can be broken: make a new key (cosign generate-key-pair, ECDSA P-256) and sign again' : 'use a key of 2048 to 4096 bits, or ECDSA P-256',
      });
    }
    return 'rsa';
  }
  const detail = key.asymmetricKeyType === 'ec' ? `ec ${key.asymmetricKeyDetails?.namedCurve}` : key.asymmetricKeyType;
  throw new ContainaiError('INPUT', `${source}: ${detail} keys are not accepted; use ECDSA P-256, Ed25519 or RSA (2048 to 4096 bits)`);
}

export function keyIdOf(publicKey: KeyObject): string {
  return createHash('sha256').update(publicKey.export({ type: 'spki', format: 'der' })).digest('hex');
}

export function pinnedKeyFromPem(pem: string, source: string): PinnedKey {
  if (!/-----BEGIN (RSA )?PUBLIC KEY-----/.test(pem)) {
    throw new ContainaiError('INPUT', `${source} is not a PEM public key ("-----BEGIN PUBLIC KEY-----")`, {
      hint: 'pin the public half (cosign.pub), never the private key',
    });
  }
  let key: KeyObject;
  try {
    key = createPublicKey({ key: pem, format: 'pem' });
  } catch (err) {
    throw new ContainaiError('INPUT', `${source} is not a valid public key: ${describeCause(err)}`, { cause: err });
  }
  return { keyId: keyIdOf(key), algorithm: keyAlgorithm(key, source), key, source };
}

export async function readPinnedKey(path: string): Promise<PinnedKey> {
  let pem: string;
  try {
    pem = await readFile(path, 'utf8');
  } catch (err) {
    throw new ContainaiError('NOT_FOUND', `cannot read key ${path}: ${describeCause(err)}`, { cause: err });
  }
  return pinnedKeyFromPem(pem, path);
}

// ---------------------------------------------------------------------------
// Private keys (sign)

export interface SigningKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
  algorithm: KeyAlgorithm;
  keyId: string;
}

const COSIGN_LABELS = ['ENCRYPTED SIGSTORE PRIVATE KEY', 'ENCRYPTED COSIGN PRIVATE KEY'];

const cosignKeySchema = z.object({
  kdf: z.object({
    name: z.literal('scrypt'),
    params: z.object({ N: z.number().int(), r: z.number().int(), p: z.number().int() }),
    salt: z.string().min(1),
  }),
  cipher: z.object({ name: z.literal('nacl/secretbox'), nonce: z.string().min(1) }),
  ciphertext: z.string().min(1),
});

function pemBlocks(text: string): Array<{ label: string; body: Buffer }> {
  const blocks: Array<{ label: string; body: Buffer }> = [];
  for (const m of text.matchAll(/-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g)) {
    blocks.push({ label: m[1] as string, body: Buffer.from((m[2] as string).replace(/\s+/g, ''), 'base64') });
  }
  return blocks;
}

/** Cosign's format: JSON {kdf: scrypt(N,r,p,salt), cipher: nacl/secretbox(nonce), ciphertext} whose plaintext is PKCS#8 DER. */
async function decryptCosignKey(body: Buffer, password: string, source: string): Promise<Buffer> {
  let doc: z.infer<typeof cosignKeySchema>;
  try {
    doc = cosignKeySchema.parse(JSON.parse(body.toString('utf8')));
  } catch {
    throw new ContainaiError('INPUT', `${source} is not a cosign encrypted key (expected scrypt + nacl/secretbox JSON)`);
  }
  const { N, r, p } = doc.kdf.params;
  // Bounded so a hostile key file cannot make us allocate gigabytes (cosign writes N=32768, r=8, p=1).
  if (N < 2 || N > 1 << 20 || (N & (N - 1)) !== 0 || r < 1 || r > 16 || p < 1 || p > 16) {
    throw new ContainaiError('INPUT', `${source}: unexpected scrypt parameters N=${N} r=${r} p=${p}`);
  }
  const salt = Buffer.from(doc.kdf.salt, 'base64');
  const nonce = Buffer.from(doc.cipher.nonce, 'base64');
  const ciphertext = Buffer.from(doc.ciphertext, 'base64');
  if (nonce.length !== 24) throw new ContainaiError('INPUT', `${source}: the secretbox nonce is not 24 bytes`);
  const key = scryptSync(Buffer.from(password, 'utf8'), salt, 32, { N, r, p, maxmem: 256 * N * r + (1 << 20) });
  // node:crypto has scrypt but no XSalsa20-Poly1305; @noble/ciphers is the audited, dependency-free one.
  const { xsalsa20poly1305 } = await import('@noble/ciphers/salsa.js');
  try {
    return Buffer.from(xsalsa20poly1305(new Uint8Array(key), new Uint8Array(nonce)).decrypt(new Uint8Array(ciphertext)));
  } catch {
    throw new ContainaiError('INPUT', `cannot decrypt ${source}: wrong COSIGN_PASSWORD, or the key is damaged`, {
      hint: 'set COSIGN_PASSWORD to the password the key was made with',
    });
  }
}

/** Reads "env://VAR" (the PEM in that variable) or a file path. */
async function readKeySpec(spec: string, env: NodeJS.ProcessEnv): Promise<{ text: string; source: string }> {
  if (spec.includes('-----BEGIN')) {
    // The key itself was pasted on the command line: it is never echoed, and it is in the process list already.
    registerSecret(spec);
    throw new ContainaiError('USAGE', '--key holds key material, not a file path or env://VAR (the key is not shown)', {
      hint: 'pass the key as a file path, or put it in an environment variable and give --key env://VAR',
    });
  }
  if (spec.startsWith('env://')) {
    const name = spec.slice('env://'.length);
    const text = secretFromEnv(name, env);
    if (!text) throw new ContainaiError('INPUT', `--key ${spec}: ${name} is not set or empty`);
    return { text, source: `$${name}` };
  }
  try {
    const text = await readFile(spec, 'utf8');
    registerSecret(text);
    return { text, source: spec };
  } catch (err) {
    throw new ContainaiError('NOT_FOUND', `cannot read key ${spec}: ${describeCause(err)}`, { cause: err });
  }
}

export async function loadSigningKey(spec: string, env: NodeJS.ProcessEnv = process.env): Promise<SigningKey> {
  const { text, source } = await readKeySpec(spec, env);
  const block = pemBlocks(text).find((b) => /PRIVATE KEY$/.test(b.label));
  if (!block) {
    throw new ContainaiError('INPUT', `${source} holds no PEM private key`, {
      hint: 'give a PKCS#8 ("PRIVATE KEY"), SEC1 ("EC PRIVATE KEY"), PKCS#1 ("RSA PRIVATE KEY") or cosign ("ENCRYPTED SIGSTORE PRIVATE KEY") key',
    });
  }
  registerSecret(block.body.toString('base64'));
  let privateKey: KeyObject;
  try {
    if (COSIGN_LABELS.includes(block.label)) {
      const password = env.COSIGN_PASSWORD ?? '';
      registerSecret(password);
      const der = await decryptCosignKey(block.body, password, source);
      privateKey = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
    } else if (block.label === 'PRIVATE KEY') {
      privateKey = createPrivateKey({ key: block.body, format: 'der', type: 'pkcs8' });
    } else if (block.label === 'EC PRIVATE KEY') {
      privateKey = createPrivateKey({ key: block.body, format: 'der', type: 'sec1' });
    } else if (block.label === 'RSA PRIVATE KEY') {
      privateKey = createPrivateKey({ key: block.body, format: 'der', type: 'pkcs1' });
    } else {
      throw new ContainaiError('INPUT', `${source}: "${block.label}" keys are not supported`, {
        hint: 'give a PKCS#8, SEC1, PKCS#1 or cosign encrypted key; decrypt other encrypted keys first',
      });
    }
  } catch (err) {
    if (err instanceof ContainaiError) throw err;
    // The cause may quote key bytes: keep it out of the message.
    throw new ContainaiError('INPUT', `${source} is not a valid private key`, { cause: err });
  }
  const publicKey = createPublicKey(privateKey);
  return { privateKey, publicKey, algorithm: keyAlgorithm(publicKey, source), keyId: keyIdOf(publicKey) };
}
