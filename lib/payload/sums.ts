/**
 * SHA-256 of many files on worker threads, one per core (at most 4): hashing is
 * most of the CPU time of packaging (SHA-256 runs at ~300 MB/s per core without
 * SHA extensions), and the payload's SHA256SUMS (lib/payload/manifest.ts) and the
 * agents' containai-host.SHA256SUMS are made from it.
 */
import { availableParallelism } from 'node:os';
import { ContainaiError } from '../errors.ts';

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
