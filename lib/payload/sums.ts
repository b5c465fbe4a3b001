/**
 * SHA256SUMS over every other file of the staged payload, in the format
 * `sha256sum -c` reads, with paths relative to payload/. Hosts check it after
 * extracting, and check-health checks it again.
 *
 * Hashing is most of the CPU time of packaging (SHA-256 runs at ~300 MB/s per
 * core here), so files are hashed on worker threads, one per core.
 */
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { SUMS_FILE } from '../bundle/layout.ts';
import { formatSums, type SumEntry } from '../digest.ts';
import { ContainaiError } from '../errors.ts';
import { writeFileAtomic } from '../fs/atomic.ts';
import { scanTree } from './tree.ts';

/** Hashes every file of the payload (links are not files) and writes payload/SHA256SUMS; returns how many. */
export async function writePayloadSums(payloadDir: string): Promise<number> {
  const files = (await scanTree(payloadDir, 'payload')).filter((e) => e.type === 'file' && e.path !== SUMS_FILE);
  const hashes = await hashFiles(files.map((f) => f.absolute));
  const sums: SumEntry[] = files.map((f, i) => ({ path: f.path, sha256: hashes[i] as string }));
  await writeFileAtomic(join(payloadDir, SUMS_FILE), formatSums(sums));
  return files.length;
}

/**
 * The worker's code. It lives here as text because a compiled binary can only
 * start workers whose code it carries: a Blob keeps it in this module instead of
 * a second build entry point. It streams the file, so memory stays flat.
 */
const WORKER_SOURCE = `
self.onmessage = async ({ data: { index, path } }) => {
  try {
    const hasher = new Bun.CryptoHasher('sha256');
    for await (const chunk of Bun.file(path).stream()) hasher.update(chunk);
    postMessage({ index, hex: hasher.digest('hex') });
  } catch (err) {
    postMessage({ index, error: String(err && err.message || err) });
  }
};`;

interface WorkerReply {
  index: number;
  hex?: string;
  error?: string;
}

/** Hex SHA-256 of each file, in order, on up to one worker per core (at most 4). */
export async function hashFiles(paths: string[]): Promise<string[]> {
  const hashes: string[] = new Array(paths.length);
  if (paths.length === 0) return hashes;
  const url = URL.createObjectURL(new Blob([WORKER_SOURCE], { type: 'application/javascript' }));
  const workers = Array.from({ length: Math.min(paths.length, Math.max(2, Math.min(4, availableParallelism()))) }, () => new Worker(url));
  let next = 0;
  try {
    await Promise.all(
      workers.map(
        (worker) =>
          new Promise<void>((resolve, reject) => {
            const send = () => {
              if (next >= paths.length) return resolve();
              const index = next++;
              worker.postMessage({ index, path: paths[index] });
            };
            worker.onmessage = ({ data }: MessageEvent<WorkerReply>) => {
              if (data.error !== undefined || !data.hex) {
                return reject(new ContainaiError('INPUT', `cannot read ${paths[data.index]}: ${data.error}`));
              }
              hashes[data.index] = data.hex;
              send();
            };
            worker.onerror = (event) => reject(new ContainaiError('INTERNAL', `hashing worker failed: ${event.message}`));
            send();
          }),
      ),
    );
  } finally {
    for (const worker of workers) worker.terminate();
    URL.revokeObjectURL(url);
  }
  return hashes;
}
