/**
 * The least CPU an install and a verify-only must spend on this machine,
 * whatever the code around it: the hashing and inflating that SPEC and issue 3
 * require, each timed alone in one thread from the page cache, then spread
 * perfectly over every core. Writes, reads, syscalls and the flush to disk are
 * left out, so the real floor is higher; a target below this one cannot be met
 * here without skipping a check.
 *
 * install:     SHA-256 of the bundle (install.json's bundle sha256), of
 *              payload.tar.gz (payload.sha256 and the signature), and of every
 *              extracted byte (SHA256SUMS); gunzip of the bundle and the payload.
 * verify-only: SHA-256 of every installed byte (SHA256SUMS) and of the kept
 *              bundle (an unsigned release is checked against install.json's digest).
 */
import { createReadStream } from 'node:fs';
import { availableParallelism } from 'node:os';
import { createGunzip } from 'node:zlib';

export interface WorkFloor {
  cores: number;
  /** Milliseconds of one thread for each piece of work. */
  pieces: { shaBundle: number; shaPayload: number; shaTree: number; gunzipBundle: number; gunzipPayload: number };
  /** Bytes the payload inflates to (the tar stream, a little more than the tree). */
  treeBytes: number;
  /** Wall-clock floors in milliseconds: the pieces' sum over the cores. */
  install: number;
  verifyOnly: number;
}

const CHUNK = 1 << 20;

/** Milliseconds to hash a file's bytes, read once beforehand so the page cache holds them. */
async function timeSha256(path: string): Promise<number> {
  for await (const _ of createReadStream(path, { highWaterMark: CHUNK })) {
    // warm the page cache
  }
  const hasher = new Bun.CryptoHasher('sha256');
  const started = performance.now();
  for await (const chunk of createReadStream(path, { highWaterMark: CHUNK })) hasher.update(chunk as Buffer);
  hasher.digest();
  return performance.now() - started;
}

/** Milliseconds to gunzip a file; and, timed apart, to hash what it inflates to. */
async function timeGunzip(path: string, hashOutput: boolean): Promise<{ gunzip: number; sha: number; bytes: number }> {
  const hasher = new Bun.CryptoHasher('sha256');
  let sha = 0;
  let bytes = 0;
  const started = performance.now();
  for await (const chunk of createReadStream(path, { highWaterMark: CHUNK }).pipe(createGunzip({ chunkSize: CHUNK }))) {
    bytes += (chunk as Buffer).length;
    if (!hashOutput) continue;
    const t = performance.now();
    hasher.update(chunk as Buffer);
    sha += performance.now() - t;
  }
  hasher.digest();
  return { gunzip: performance.now() - started - sha, sha, bytes };
}

export async function measureWorkFloor(bundlePath: string, payloadPath: string): Promise<WorkFloor> {
  const cores = availableParallelism();
  const shaBundle = await timeSha256(bundlePath);
  const shaPayload = await timeSha256(payloadPath);
  const outer = await timeGunzip(bundlePath, false);
  const inner = await timeGunzip(payloadPath, true);
  const pieces = { shaBundle, shaPayload, shaTree: inner.sha, gunzipBundle: outer.gunzip, gunzipPayload: inner.gunzip };
  const install = (shaBundle + shaPayload + inner.sha + outer.gunzip + inner.gunzip) / cores;
  const verifyOnly = (inner.sha + shaBundle) / cores;
  return { cores, pieces, treeBytes: inner.bytes, install, verifyOnly };
}
