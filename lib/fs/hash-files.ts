/**
 * SHA-256 of many files at once, on worker threads: packaging a release and
 * checking one again are both bound by hashing (one core: about 1 GB/s with SHA
 * extensions, 200 MB/s without). The one hasher of both binaries. Workers are
 * made from an inline script so the compiled binary needs no second entry point.
 */
import { availableParallelism } from 'node:os';
import { sha256File } from '../digest.ts';

const WORKER_SOURCE = `
const { openSync, readSync, closeSync } = require('node:fs');
const buffer = Buffer.allocUnsafe(1 << 20);
function hash(path) {
  try {
    const hasher = new Bun.CryptoHasher('sha256');
    const fd = openSync(path, 'r');
    try {
      for (;;) {
        const n = readSync(fd, buffer, 0, buffer.length, null);
        if (n === 0) break;
        hasher.update(buffer.subarray(0, n));
      }
    } finally {
      closeSync(fd);
    }
    return { path, sha256: hasher.digest('hex') };
  } catch (err) {
    return { path, error: String(err && err.code ? err.code + ': ' + err.message : err) };
  }
}
self.onmessage = (event) => postMessage(event.data.map(hash));
`;

/**
 * Paths go to the workers in batches: a message round trip per file cost as much as hashing the
 * bench tree's 5,000 files itself (measured: 250 ms one path a message, 116 ms in batches, 200 MB,
 * 2 cores with SHA extensions). A batch holds up to BATCH_BYTES or BATCH_FILES; a large file is a
 * batch of its own, so the largest still start first.
 */
const BATCH_BYTES = 4 << 20;
const BATCH_FILES = 256;

function batchesOf(paths: readonly string[], sizes: readonly number[] | undefined): string[][] {
  const batches: string[][] = [];
  let batch: string[] = [];
  let bytes = 0;
  paths.forEach((path, i) => {
    batch.push(path);
    bytes += sizes?.[i] ?? BATCH_BYTES;
    if (bytes >= BATCH_BYTES || batch.length >= BATCH_FILES) {
      batches.push(batch);
      batch = [];
      bytes = 0;
    }
  });
  if (batch.length > 0) batches.push(batch);
  return batches;
}

export type HashResult = { sha256: string } | { error: string };

/** Files smaller than this in total are hashed in-process: starting workers costs more. */
const WORKER_THRESHOLD = 16 << 20;

/**
 * Hashes every path; the result maps each path to its digest or the error met.
 * Give the paths largest first so one big file does not finish last alone.
 */
export async function hashFiles(paths: readonly string[], totalBytes = Infinity, sizes?: readonly number[]): Promise<Map<string, HashResult>> {
  const results = new Map<string, HashResult>();
  const threads = Math.min(availableParallelism(), 8, paths.length);
  if (threads < 1 || totalBytes < WORKER_THRESHOLD) {
    for (const path of paths) {
      try {
        results.set(path, { sha256: await sha256File(path) });
      } catch (err) {
        results.set(path, { error: String((err as Error).message) });
      }
    }
    return results;
  }
  const url = URL.createObjectURL(new Blob([WORKER_SOURCE], { type: 'application/javascript' }));
  const batches = batchesOf(paths, sizes);
  let next = 0;
  const workers: Worker[] = [];
  try {
    await Promise.all(
      Array.from({ length: Math.min(threads, batches.length) }, () => {
        const worker = new Worker(url);
        workers.push(worker);
        return new Promise<void>((resolve, reject) => {
          const feed = () => {
            if (next >= batches.length) return resolve();
            worker.postMessage(batches[next++]);
          };
          worker.onmessage = (event: MessageEvent) => {
            for (const { path, sha256, error } of event.data as Array<{ path: string; sha256?: string; error?: string }>) {
              results.set(path, sha256 ? { sha256 } : { error: error ?? 'unknown error' });
            }
            feed();
          };
          worker.onerror = (event) => reject(new Error(`hash worker failed: ${(event as ErrorEvent).message}`));
          feed();
        });
      }),
    );
  } finally {
    for (const worker of workers) worker.terminate();
    URL.revokeObjectURL(url);
  }
  return results;
}
