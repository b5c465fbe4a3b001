import { afterAll, describe, expect, test } from 'bun:test';
import { existsSync, lstatSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkPayloadHash, unpackBundle } from '../../lib/bundle/read.ts';
import { ContainaiError } from '../../lib/errors.ts';
import { buildTarGz, goodBundle, goodPayloadEntries, hostileBundles, sha256Hex, tarHeader } from '../helpers/archives.ts';
import { removeDir, tempDir } from '../helpers/cli.ts';

const roots: string[] = [];
afterAll(() => roots.forEach(removeDir));

function sandbox(bundle: Buffer) {
  const root = tempDir('cai-bundle-');
  roots.push(root);
  const bundlePath = join(root, 'containai-v1.2.3.tar.gz');
  writeFileSync(bundlePath, bundle);
  return { root, bundlePath, dest: join(root, 'unpacked') };
}

async function expectRefused(bundle: Buffer, message: RegExp): Promise<ContainaiError> {
  const box = sandbox(bundle);
  const err = await unpackBundle(box.bundlePath, box.dest).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ContainaiError);
  const error = err as ContainaiError;
  expect(error.code).toBe('ARCHIVE');
  expect(error.message).toMatch(message);
  expect(error.hint).toBeTruthy();
  expect(existsSync(box.dest)).toBe(false);
  expect(readdirSync(box.root)).toEqual(['containai-v1.2.3.tar.gz']);
  return error;
}

describe('unpackBundle', () => {
  test('unpacks every member SPEC names and checks the payload hash', async () => {
    const payload = buildTarGz(goodPayloadEntries());
    const box = sandbox(
      goodBundle(payload, { 'attestation.intoto.jsonl': '{}\n', 'payload.sigstore.json': '{}', 'trusted_root.json': '{}', cosign: 'bin' }),
    );
    const bundle = await unpackBundle(box.bundlePath, box.dest);
    expect(bundle.dir).toBe(box.dest);
    expect(Object.keys(bundle.members).sort()).toEqual([
      'attestation.intoto.jsonl',
      'cosign',
      'payload.sha256',
      'payload.sigstore.json',
      'payload.tar.gz',
      'trusted_root.json',
    ]);
    expect(readFileSync(bundle.members['payload.tar.gz'] as string).equals(payload)).toBe(true);
    expect(bundle.members['payload.tar.gz']).toBe(join(box.dest, 'payload.tar.gz'));
    expect(lstatSync(bundle.members.cosign as string).isFile()).toBe(true);
    expect(await checkPayloadHash(bundle)).toBe(sha256Hex(payload));
    // Without the hash recorded while unpacking, the file is read again.
    expect(await checkPayloadHash({ dir: bundle.dir, members: bundle.members })).toBe(sha256Hex(payload));
  });

  test('a large bundle (hashed on a worker) gives the same hash', async () => {
    const { randomBytes } = await import('node:crypto');
    const payload = buildTarGz([{ name: 'payload/', type: 'dir' }, { name: 'payload/big.bin', body: randomBytes(10 * 2 ** 20) }]);
    const box = sandbox(goodBundle(payload, { cosign: randomBytes(2 ** 20) }));
    const bundle = await unpackBundle(box.bundlePath, box.dest);
    expect(bundle.sha256?.['payload.tar.gz']).toBe(sha256Hex(payload));
    expect(bundle.sha256?.cosign).toBe(sha256Hex(readFileSync(bundle.members.cosign as string)));
    expect(await checkPayloadHash(bundle)).toBe(sha256Hex(payload));
  });

  test('a member other than those SPEC names is refused by name', () => expectRefused(hostileBundles.unknownMember(), /"install.sh" is not a member SPEC names/));
  test('a nested path is refused', () => expectRefused(hostileBundles.nestedPath(), /"extra\/cosign" is a nested path/));
  test('a path traversal member is refused', () => expectRefused(hostileBundles.traversalMember(), /"\.\.\/payload.sig" is a nested path/));
  test('a missing payload.sha256', () => expectRefused(hostileBundles.missingSha256(), /lacks payload.sha256/));
  test('a missing payload.tar.gz', () => expectRefused(hostileBundles.missingPayload(), /lacks payload.tar.gz/));
  test('a member twice', () => expectRefused(hostileBundles.duplicateMember(), /"payload.tar.gz" appears twice/));
  test('a symlink member', () => expectRefused(hostileBundles.symlinkMember(), /"payload.tar.gz" is a symlink, not a regular file/));
  test('a folder member', () => expectRefused(hostileBundles.dirMember(), /"cosign\/" is a nested path|"cosign\/"/));
  test('a truncated bundle', () => expectRefused(hostileBundles.truncated(), /truncated/));
  test('garbage', () => expectRefused(hostileBundles.garbage(), /not valid gzip/));
  test('a member over its size cap is refused on the header', async () => {
    const { gzipSync } = await import('node:zlib');
    const huge = Buffer.concat([tarHeader({ name: 'payload.sig', typeflag: '0', size: 10 * 2 ** 20, mode: 0o644 })]);
    await expectRefused(gzipSync(huge), /"payload.sig" declares 10485760 bytes \(limit 65536\)/);
  });

  test('payload.sha256 mismatch is a VERIFY error', async () => {
    const box = sandbox(hostileBundles.shaMismatch());
    const bundle = await unpackBundle(box.bundlePath, box.dest);
    const err = await checkPayloadHash(bundle).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ContainaiError);
    expect((err as ContainaiError).code).toBe('VERIFY');
    expect((err as ContainaiError).message).toMatch(/payload.tar.gz does not match payload.sha256/);
  });

  test('a payload changed on disk after unpacking is caught when the hash is re-read', async () => {
    const box = sandbox(goodBundle());
    const bundle = await unpackBundle(box.bundlePath, box.dest);
    writeFileSync(bundle.members['payload.tar.gz'] as string, 'tampered');
    await expect(checkPayloadHash({ dir: bundle.dir, members: bundle.members })).rejects.toThrow(/does not match/);
  });

  test('a malformed payload.sha256 is refused', async () => {
    const payload = buildTarGz(goodPayloadEntries());
    const box = sandbox(buildTarGz([{ name: 'payload.tar.gz', body: payload }, { name: 'payload.sha256', body: 'not a sum\n' }]));
    const bundle = await unpackBundle(box.bundlePath, box.dest);
    await expect(checkPayloadHash(bundle)).rejects.toThrow(/payload.sha256 is malformed/);
  });
});

describe('unpackBundle with keepCopy (install keeps the bundle from the pass that unpacks it)', () => {
  async function expectCopy(bytes: Buffer): Promise<void> {
    const box = sandbox(bytes);
    const copyPath = join(box.root, 'kept.tar.gz');
    const bundle = await unpackBundle(box.bundlePath, box.dest, { keepCopy: copyPath });
    expect(bundle.copy).toEqual({ path: copyPath, sha256: sha256Hex(bytes), bytes: bytes.length });
    expect(readFileSync(copyPath).equals(bytes)).toBe(true);
    expect(lstatSync(copyPath).mode & 0o777).toBe(0o600);
    expect(await checkPayloadHash(bundle)).toBeTruthy();
  }

  test('a small bundle: the copy is the file, byte for byte, with its sha256', () => expectCopy(goodBundle()));

  test('a large bundle (hashed on workers): the same', async () => {
    const { randomBytes } = await import('node:crypto');
    const payload = buildTarGz([{ name: 'payload/', type: 'dir' }, { name: 'payload/big.bin', body: randomBytes(12 * 2 ** 20) }]);
    await expectCopy(goodBundle(payload, { cosign: randomBytes(2 ** 20) }));
  });

  test('bytes after the gzip stream (zero padding) are in the copy too', async () => {
    await expectCopy(Buffer.concat([goodBundle(), Buffer.alloc(3 * 2 ** 20)]));
  });

  test('a refused bundle leaves neither the copy nor the folder', async () => {
    const box = sandbox(hostileBundles.unknownMember());
    const copyPath = join(box.root, 'kept.tar.gz');
    await expect(unpackBundle(box.bundlePath, box.dest, { keepCopy: copyPath })).rejects.toThrow(/is not a member SPEC names/);
    expect(readdirSync(box.root)).toEqual(['containai-v1.2.3.tar.gz']);
  });

  test('an existing file at the copy path is neither followed nor replaced', async () => {
    const box = sandbox(goodBundle());
    const copyPath = join(box.root, 'kept.tar.gz');
    writeFileSync(copyPath, 'mine');
    await expect(unpackBundle(box.bundlePath, box.dest, { keepCopy: copyPath })).rejects.toThrow();
    expect(readFileSync(copyPath, 'utf8')).toBe('mine');
    expect(existsSync(box.dest)).toBe(false);
  });
});

describe('unpackBundle with hashPayloadOnly (a kept bundle checked again without writing its payload)', () => {
  test('payload.tar.gz is hashed as it passes and never written; the other members are', async () => {
    const payload = buildTarGz(goodPayloadEntries());
    const box = sandbox(goodBundle(payload, { 'payload.sigstore.json': '{}' }));
    const bundle = await unpackBundle(box.bundlePath, box.dest, { hashPayloadOnly: true });
    expect(bundle.payloadNotWritten).toBe(true);
    expect(bundle.members['payload.tar.gz']).toBeUndefined();
    expect(readdirSync(box.dest).sort()).toEqual(['payload.sha256', 'payload.sigstore.json']);
    expect(bundle.sha256?.['payload.tar.gz']).toBe(sha256Hex(payload));
    expect(await checkPayloadHash(bundle)).toBe(sha256Hex(payload));
  });

  test('a large bundle (hashed on a worker): the same digest, nothing written for the payload', async () => {
    const { randomBytes } = await import('node:crypto');
    const payload = buildTarGz([{ name: 'payload/', type: 'dir' }, { name: 'payload/big.bin', body: randomBytes(12 * 2 ** 20) }]);
    const box = sandbox(goodBundle(payload));
    const bundle = await unpackBundle(box.bundlePath, box.dest, { hashPayloadOnly: true });
    expect(readdirSync(box.dest)).toEqual(['payload.sha256']);
    expect(await checkPayloadHash(bundle)).toBe(sha256Hex(payload));
  });

  test('a tampered payload is still refused (VERIFY), with no payload file written', async () => {
    const box = sandbox(hostileBundles.shaMismatch());
    const bundle = await unpackBundle(box.bundlePath, box.dest, { hashPayloadOnly: true });
    expect(readdirSync(box.dest)).toEqual(['payload.sha256']);
    const err = await checkPayloadHash(bundle).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ContainaiError);
    expect((err as ContainaiError).code).toBe('VERIFY');
    expect((err as ContainaiError).message).toMatch(/payload.tar.gz does not match payload.sha256/);
  });

  test('the member rules still hold: a payload twice, or none, is refused', async () => {
    for (const [bytes, message] of [
      [hostileBundles.duplicateMember(), /"payload.tar.gz" appears twice/],
      [hostileBundles.missingPayload(), /lacks payload.tar.gz/],
    ] as const) {
      const box = sandbox(bytes);
      await expect(unpackBundle(box.bundlePath, box.dest, { hashPayloadOnly: true })).rejects.toThrow(message);
      expect(existsSync(box.dest)).toBe(false);
    }
  });
});
