/**
 * SHA256SUMS over every other file of the staged payload, in the format
 * `sha256sum -c` reads, with paths relative to payload/. Hosts check it after
 * extracting, and check-health checks it again.
 */
import { join } from 'node:path';
import { SUMS_FILE } from '../bundle/layout.ts';
import { formatSums, sha256File, type SumEntry } from '../digest.ts';
import { writeFileAtomic } from '../fs/atomic.ts';
import { scanTree } from './tree.ts';

/** Files hashed at once: enough to overlap reading one file with hashing another. */
const CONCURRENCY = 4;

/** Hashes every file of the payload (links are not files) and writes payload/SHA256SUMS; returns how many. */
export async function writePayloadSums(payloadDir: string, onBytes?: (n: number) => void): Promise<number> {
  const files = (await scanTree(payloadDir, 'payload')).filter((e) => e.type === 'file' && e.path !== SUMS_FILE);
  const sums: SumEntry[] = new Array(files.length);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < files.length; i = next++) {
      const file = files[i]!;
      sums[i] = { path: file.path, sha256: await sha256File(file.absolute, onBytes) };
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  await writeFileAtomic(join(payloadDir, SUMS_FILE), formatSums(sums));
  return files.length;
}
