/**
 * containai-build sign: the release manifest (SHA256SUMS) and the agents' sums are signed, as
 * cosign sign-blob would (openssl verifies the bare signature), the bundle is rewritten with the
 * signature, a folder mixing two builds is refused, and keys are never printed.
 */
import { describe, expect, test } from 'bun:test';
import { createPublicKey, verify } from 'node:crypto';
import { copyFileSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { build, expectNoStack, host, tempDir } from '../helpers/cli.ts';
import { fakeAgents, makeRelease, type Release, SMALL_HOST_TREE } from '../helpers/release.ts';
import { cosignEncryptedPem, makeKeyPair, sha256Hex, writeKeyPair } from '../helpers/signing.ts';

function sh(args: string[], cwd?: string): { code: number; out: string } {
  const r = Bun.spawnSync(args, { cwd, stdout: 'pipe', stderr: 'pipe' });
  return { code: r.exitCode, out: r.stdout.toString() + r.stderr.toString() };
}

const members = (bundle: string) => sh(['tar', '-tzf', bundle]).out.trim().split('\n');

function memberBytes(bundle: string, name: string): Buffer {
  const dir = tempDir('cai-x-');
  expect(sh(['tar', '-xzf', bundle, '-C', dir, name]).code).toBe(0);
  return readFileSync(join(dir, name));
}

function snapshot(rel: Release): Map<string, Buffer> {
  return new Map(readdirSync(rel.dir).map((f) => [f, readFileSync(join(rel.dir, f))]));
}

function expectUnchanged(rel: Release, before: Map<string, Buffer>): void {
  expect(readdirSync(rel.dir).sort()).toEqual([...before.keys()].sort());
  for (const [f, bytes] of before) expect(readFileSync(join(rel.dir, f)).equals(bytes), f).toBe(true);
}

const sign = (rel: Release, args: string[], env?: Record<string, string>) => build(['sign', '--version', rel.version, '--out', rel.out, ...args], { env });

describe('containai-build sign', () => {
  for (const kind of ['ecdsa', 'ed25519'] as const) {
    test(`${kind} key: SHA256SUMS and containai-host.SHA256SUMS each get a bundle v0.3 and a .sig that openssl verifies; the bundle carries them`, async () => {
      const rel = await makeRelease();
      const payload = readFileSync(rel.payload);
      const pair = makeKeyPair(kind);
      const keys = writeKeyPair(tempDir(), 'cosign', pair);
      const r = await sign(rel, ['--key', keys.key, '--json']);
      expect(r.code).toBe(0);
      const doc = JSON.parse(r.stdout);
      expect(doc.signed).toEqual(['SHA256SUMS', 'containai-host.SHA256SUMS']);
      expect(doc.members).toEqual(['SHA256SUMS', 'SHA256SUMS.sigstore.json', 'SHA256SUMS.sig', 'payload.sha256', 'payload.tar.gz']);

      for (const file of ['SHA256SUMS', 'containai-host.SHA256SUMS']) {
        const signed = readFileSync(join(rel.dir, file));
        const bundle = JSON.parse(readFileSync(join(rel.dir, `${file}.sigstore.json`), 'utf8'));
        expect(bundle.mediaType).toBe('application/vnd.dev.sigstore.bundle.v0.3+json');
        expect(bundle.verificationMaterial.publicKey.hint).toMatch(/^[0-9a-f]{64}$/);
        expect(Buffer.from(bundle.messageSignature.messageDigest.digest, 'base64').toString('hex')).toBe(sha256Hex(signed));
        const sigText = readFileSync(join(rel.dir, `${file}.sig`), 'utf8');
        expect(sigText).toBe(bundle.messageSignature.signature); // the bare base64, as cosign sign-blob writes it
        const raw = Buffer.from(sigText, 'base64');
        expect(verify(kind === 'ecdsa' ? 'sha256' : null, signed, createPublicKey(pair.publicPem), raw)).toBe(true);

        // cosign's own check of a key signature, done by openssl: the raw signature over the file's bytes.
        const work = tempDir('cai-openssl-');
        writeFileSync(join(work, 'raw.sig'), raw);
        const openssl = (data: string) =>
          kind === 'ecdsa'
            ? sh(['openssl', 'dgst', '-sha256', '-verify', keys.pub, '-signature', join(work, 'raw.sig'), data])
            : sh(['openssl', 'pkeyutl', '-verify', '-pubin', '-inkey', keys.pub, '-rawin', '-in', data, '-sigfile', join(work, 'raw.sig')]);
        const check = openssl(join(rel.dir, file));
        expect(check.out).toContain('Verified');
        expect(check.code).toBe(0);
        // And not over other bytes.
        writeFileSync(join(work, 'other'), Buffer.concat([signed, Buffer.from('x')]));
        expect(openssl(join(work, 'other')).code).not.toBe(0);
      }

      // The bundle: the format's order, the manifest's signature before the payload; payload.tar.gz untouched.
      expect(members(rel.bundle)).toEqual(['SHA256SUMS', 'SHA256SUMS.sigstore.json', 'SHA256SUMS.sig', 'payload.sha256', 'payload.tar.gz']);
      expect(memberBytes(rel.bundle, 'SHA256SUMS.sig').equals(readFileSync(join(rel.dir, 'SHA256SUMS.sig')))).toBe(true);
      expect(memberBytes(rel.bundle, 'payload.tar.gz').equals(payload)).toBe(true);
      expect(readFileSync(rel.payload).equals(payload)).toBe(true);
      expect(readdirSync(rel.dir).filter((f) => f.startsWith('.'))).toEqual([]); // no temp files left
      expect(r.stdout + r.stderr).not.toContain(pair.privatePem.split('\n')[1] as string);
    });
  }

  test('the same Ed25519 key (deterministic signatures) and the same inputs give the same bundle bytes', async () => {
    const agentDir = fakeAgents();
    const a = await makeRelease({ agentDir });
    const b = await makeRelease({ agentDir });
    const keys = writeKeyPair(tempDir(), 'k', makeKeyPair('ed25519'));
    const env = { SOURCE_DATE_EPOCH: '1700000000' };
    expect((await sign(a, ['--key', keys.key], env)).code).toBe(0);
    expect((await sign(b, ['--key', keys.key], env)).code).toBe(0);
    expect(readFileSync(a.bundle).equals(readFileSync(b.bundle))).toBe(true);
  });

  test('a cosign-encrypted key from env://COSIGN_KEY with COSIGN_PASSWORD; neither is printed', async () => {
    const rel = await makeRelease();
    const pair = makeKeyPair('ecdsa');
    const password = 'hunter2-but-longer';
    const pem = await cosignEncryptedPem(pair, password);
    const r = await sign(rel, ['--key', 'env://COSIGN_KEY'], { COSIGN_KEY: pem, COSIGN_PASSWORD: password });
    expect(r.code).toBe(0);
    expect(existsSync(join(rel.dir, 'SHA256SUMS.sigstore.json'))).toBe(true);
    expect(r.stderr).not.toContain(password);
    const bad = await build(['sign', '--version', rel.version, '--out', rel.out, '--key', 'env://COSIGN_KEY', '--json'], { env: { COSIGN_KEY: pem, COSIGN_PASSWORD: 'not-the-password' } });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('wrong COSIGN_PASSWORD');
    expect(bad.stdout + bad.stderr).not.toContain(pem.split('\n')[1] as string);
    expectNoStack(bad.stderr);
  });

  test('without containai-host.SHA256SUMS only SHA256SUMS is signed', async () => {
    const rel = await makeRelease();
    for (const f of ['containai-host.SHA256SUMS', 'containai-host-linux-x64', 'containai-host-linux-arm64']) Bun.spawnSync(['rm', join(rel.dir, f)]);
    const keys = writeKeyPair(tempDir(), 'k', makeKeyPair('ecdsa'));
    const r = await sign(rel, ['--key', keys.key, '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).signed).toEqual(['SHA256SUMS']);
    expect(existsSync(join(rel.dir, 'containai-host.SHA256SUMS.sig'))).toBe(false);
  });

  describe('refuses a folder that mixes two builds, before signing anything', () => {
    const keyFile = () => writeKeyPair(tempDir(), 'k', makeKeyPair('ecdsa')).key;

    test("SHA256SUMS that is not the payload's", async () => {
      const rel = await makeRelease();
      const other = await makeRelease({ hostTree: { ...SMALL_HOST_TREE, 'extra.txt': 'x\n' } });
      copyFileSync(other.sums, rel.sums);
      const before = snapshot(rel);
      const r = await sign(rel, ['--key', keyFile()]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`${rel.sums} is not the payload/SHA256SUMS inside payload.tar.gz`);
      expect(r.stderr).toContain('mixes two builds');
      expectNoStack(r.stderr);
      expectUnchanged(rel, before);
    });

    test("a bundle that is not the folder's (another build's bundle)", async () => {
      const rel = await makeRelease();
      const other = await makeRelease({ hostTree: { ...SMALL_HOST_TREE, 'extra.txt': 'x\n' } });
      copyFileSync(other.bundle, rel.bundle);
      const before = snapshot(rel);
      const r = await sign(rel, ['--key', keyFile()]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("is not this release's bundle: its SHA256SUMS is not the folder's");
      expectUnchanged(rel, before);
    });

    test('a payload.tar.gz that does not match payload.sha256', async () => {
      const rel = await makeRelease();
      writeFileSync(rel.payloadSha256, `${'0'.repeat(64)}  payload.tar.gz\n`);
      const before = snapshot(rel);
      const r = await sign(rel, ['--key', keyFile()]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('payload.tar.gz does not match payload.sha256');
      expectUnchanged(rel, before);
    });

    test('an agent that does not match containai-host.SHA256SUMS', async () => {
      const rel = await makeRelease();
      copyFileSync(rel.agents.x64, `${rel.agents.arm64}.new`);
      Bun.spawnSync(['mv', `${rel.agents.arm64}.new`, rel.agents.arm64]);
      const before = snapshot(rel);
      const r = await sign(rel, ['--key', keyFile()]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('containai-host-linux-arm64 in');
      expect(r.stderr).toContain('does not match containai-host.SHA256SUMS');
      expectUnchanged(rel, before);
    });

    test('a release of the first format (no SHA256SUMS beside the payload)', async () => {
      const rel = await makeRelease();
      Bun.spawnSync(['rm', rel.sums]);
      const before = snapshot(rel);
      const r = await sign(rel, ['--key', keyFile()]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`${rel.sums} is missing`);
      expectUnchanged(rel, before);
    });
  });

  test('no key, a missing release, or a public key given as the key: one line, exit 1, nothing written', async () => {
    const rel = await makeRelease();
    const before = snapshot(rel);
    const keys = writeKeyPair(tempDir(), 'k', makeKeyPair('ecdsa'));
    for (const args of [['--key', 'env://COSIGN_KEY'], ['--key', keys.pub], ['--key', keys.key, '--version', 'v0.0.0-missing']]) {
      const r = await build(['sign', '--version', 'v1.2.3', '--out', rel.out, ...args]);
      expect(r.code).toBe(1);
      expectNoStack(r.stderr);
    }
    const missing = await build(['sign', '--version', 'v0.0.0', '--out', rel.out, '--key', keys.key]);
    expect(missing.stderr).toContain(`no release at ${join(rel.out, 'v0.0.0')}`);
    expect(missing.stderr).toContain('containai-build package --version v0.0.0');
    expectUnchanged(rel, before);
    expect(readdirSync(rel.out)).toEqual(['v1.2.3']);
  });

  test('RSA keys sign as cosign does (PKCS#1 v1.5, SHA-256): a PKCS#1 file and a cosign-encrypted key from env; the host verifies with the pinned RSA key', async () => {
    const pair = makeKeyPair('rsa');
    const password = 'rsa-password-long-enough';
    for (const [args, env] of [
      [['--key', 'FILE'], {}],
      [['--key', 'env://COSIGN_KEY'], { COSIGN_KEY: await cosignEncryptedPem(pair, password), COSIGN_PASSWORD: password }],
    ] as const) {
      const rel = await makeRelease();
      const keys = writeKeyPair(tempDir(), 'rsa', pair);
      writeFileSync(keys.key, pair.pkcs1Pem as string);
      const r = await sign(rel, args.map((a) => (a === 'FILE' ? keys.key : a)), env);
      expect(r.code, r.stderr).toBe(0);
      const sums = readFileSync(rel.sums);
      const sig = Buffer.from(readFileSync(join(rel.dir, 'SHA256SUMS.sig'), 'utf8'), 'base64');
      expect(sig.length).toBe(256);
      expect(verify('sha256', sums, createPublicKey(pair.publicPem), sig)).toBe(true);
      const v = await host(['verify', '--bundle', rel.bundle, '--key', keys.pub, '--no-public-good', '--json']);
      expect(v.code, v.stderr).toBe(0);
      expect(JSON.parse(v.stdout)).toMatchObject({ signer: { kind: 'key' }, format: 2 });
      expect(r.stdout + r.stderr).not.toContain((pair.pkcs1Pem as string).split('\n')[1] as string);
    }
  });
});
