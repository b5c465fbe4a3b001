/** containai-build sign: payload.sigstore.json and payload.sig that verify with the pinned public key; keys never printed. */
import { describe, expect, test } from 'bun:test';
import { createPublicKey, verify } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeBundle } from '../../lib/bundle/write.ts';
import { build, expectNoStack, host, tempDir } from '../helpers/cli.ts';
import { cosignEncryptedPem, makeKeyPair, sha256Hex, writeKeyPair } from '../helpers/signing.ts';

/** dist/<version>/ as package leaves it: payload, payload.sha256 and the bundle holding both. */
async function release(version = 'v1.0.0', sum?: string): Promise<{ out: string; dir: string; payload: Buffer; bundle: string }> {
  const out = tempDir('cai-sign-');
  const dir = join(out, version);
  mkdirSync(dir);
  const payload = Buffer.from(`payload ${crypto.randomUUID()}\n`);
  writeFileSync(join(dir, 'payload.tar.gz'), payload);
  writeFileSync(join(dir, 'payload.sha256'), `${sum ?? sha256Hex(payload)}  payload.tar.gz\n`);
  const bundle = join(dir, `containai-${version}.tar.gz`);
  await writeBundle(bundle, { 'payload.tar.gz': join(dir, 'payload.tar.gz'), 'payload.sha256': join(dir, 'payload.sha256') }, { mtime: 0 });
  return { out, dir, payload, bundle };
}

describe('containai-build sign', () => {
  for (const kind of ['ecdsa', 'ed25519'] as const) {
    test(`${kind} PKCS#8 key file: writes a bundle v0.3 and payload.sig that verify`, async () => {
      const { out, dir, payload, bundle: bundlePath } = await release();
      const pair = makeKeyPair(kind);
      const keys = writeKeyPair(out, 'cosign', pair);
      const r = await build(['sign', '--version', 'v1.0.0', '--out', out, '--key', keys.key, '--json']);
      expect(r.code).toBe(0);
      const bundle = JSON.parse(readFileSync(join(dir, 'payload.sigstore.json'), 'utf8'));
      expect(bundle.mediaType).toBe('application/vnd.dev.sigstore.bundle.v0.3+json');
      expect(bundle.verificationMaterial.publicKey.hint).toMatch(/^[0-9a-f]{64}$/);
      expect(Buffer.from(bundle.messageSignature.messageDigest.digest, 'base64').toString('hex')).toBe(sha256Hex(payload));
      const sig = Buffer.from(readFileSync(join(dir, 'payload.sig'), 'utf8'), 'base64');
      expect(verify(kind === 'ecdsa' ? 'sha256' : null, payload, createPublicKey(pair.publicPem), sig)).toBe(true);
      // The bundle was repacked with both, and the host verifies it with the pinned key.
      const v = await host(['verify', '--bundle', bundlePath, '--key', keys.pub, '--no-public-good', '--trust-dir', out, '--json']);
      expect(v.code).toBe(0);
      expect(JSON.parse(v.stdout)).toMatchObject({ kind: 'key', artifactSha256: sha256Hex(payload) });
      const list = Bun.spawnSync(['tar', '-tzf', bundlePath]).stdout.toString().split('\n').filter(Boolean).sort();
      expect(list).toEqual(['payload.sha256', 'payload.sig', 'payload.sigstore.json', 'payload.tar.gz']);
      const artifact = await host(['verify', '--artifact', join(dir, 'payload.tar.gz'), '--attestation', join(dir, 'payload.sigstore.json'), '--key', keys.pub, '--no-public-good', '--trust-dir', out]);
      expect(artifact.code).toBe(0);
      expect(r.stdout + r.stderr).not.toContain(pair.privatePem.split('\n')[1] as string);
    });
  }

  test('a cosign-encrypted key from env://COSIGN_KEY with COSIGN_PASSWORD; neither is printed', async () => {
    const { out, dir } = await release();
    const pair = makeKeyPair('ecdsa');
    const password = 'hunter2-but-longer';
    const pem = await cosignEncryptedPem(pair, password);
    const r = await build(['sign', '--version', 'v1.0.0', '--out', out, '--key', 'env://COSIGN_KEY'], { env: { COSIGN_KEY: pem, COSIGN_PASSWORD: password } });
    expect(r.code).toBe(0);
    expect(existsSync(join(dir, 'payload.sigstore.json'))).toBe(true);
    expect(r.stderr).not.toContain(password);
    const bad = await build(['sign', '--version', 'v1.0.0', '--out', out, '--key', 'env://COSIGN_KEY', '--json'], { env: { COSIGN_KEY: pem, COSIGN_PASSWORD: 'not-the-password' } });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('wrong COSIGN_PASSWORD');
    expect(bad.stdout + bad.stderr).not.toContain(pem.split('\n')[1] as string);
    expectNoStack(bad.stderr);
  });

  test('a SEC1 key works; a bundle whose payload does not match payload.sha256 is not signed', async () => {
    const pair = makeKeyPair('ecdsa');
    const good = await release();
    const key = join(good.out, 'sec1.key');
    writeFileSync(key, pair.sec1Pem as string);
    expect((await build(['sign', '--version', 'v1.0.0', '--out', good.out, '--key', key])).code).toBe(0);
    const bad = await release('v1.0.0', '0'.repeat(64));
    const r = await build(['sign', '--version', 'v1.0.0', '--out', bad.out, '--key', key]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('payload.sha256');
    expect(existsSync(join(bad.dir, 'payload.sigstore.json'))).toBe(false);
  });

  test('RSA keys sign as cosign does (PKCS#1 v1.5, SHA-256): a PKCS#1 file and a cosign-encrypted key from env; the host verifies with the pinned RSA key', async () => {
    const pair = makeKeyPair('rsa');
    const password = 'rsa-password-long-enough';
    for (const [args, env] of [
      [['--key', 'FILE'], {}],
      [['--key', 'env://COSIGN_KEY'], { COSIGN_KEY: await cosignEncryptedPem(pair, password), COSIGN_PASSWORD: password }],
    ] as const) {
      const { out, dir, payload, bundle: bundlePath } = await release();
      const keys = writeKeyPair(out, 'rsa', pair);
      writeFileSync(keys.key, pair.pkcs1Pem as string);
      const r = await build(['sign', '--version', 'v1.0.0', '--out', out, ...args.map((a) => (a === 'FILE' ? keys.key : a))], { env });
      expect(r.code, r.stderr).toBe(0);
      const sig = Buffer.from(readFileSync(join(dir, 'payload.sig'), 'utf8'), 'base64');
      expect(sig.length).toBe(256);
      expect(verify('sha256', payload, createPublicKey(pair.publicPem), sig)).toBe(true);
      const v = await host(['verify', '--bundle', bundlePath, '--key', keys.pub, '--no-public-good', '--trust-dir', out, '--json']);
      expect(v.code, v.stderr).toBe(0);
      expect(JSON.parse(v.stdout)).toMatchObject({ kind: 'key', artifactSha256: sha256Hex(payload) });
      expect(r.stdout + r.stderr).not.toContain((pair.pkcs1Pem as string).split('\n')[1] as string);
    }
  });

  test('no key, a missing release, or a public key given as the key: one line, exit 1', async () => {
    const { out } = await release();
    const pair = makeKeyPair('ecdsa');
    const keys = writeKeyPair(out, 'k', pair);
    for (const args of [['--key', 'env://COSIGN_KEY'], ['--key', keys.pub], ['--key', keys.key, '--version', 'v0.0.0-missing']]) {
      const r = await build(['sign', '--version', 'v1.0.0', '--out', out, ...args]);
      expect(r.code).toBe(1);
      expectNoStack(r.stderr);
    }
  });
});
