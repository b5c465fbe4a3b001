/**
 * SHA-256 of the files a release is made of, in order: the payload's SHA256SUMS
 * (lib/payload/manifest.ts), the agents' containai-host.SHA256SUMS, and the
 * checks of a release folder before sign and repack. The hashing is the host's
 * own (lib/fs/hash-files.ts: batched worker threads, measured there); this only
 * keeps the order and turns a file that cannot be read into the build's refusal.
 */
import { statSync } from 'node:fs';
import { ContainaiError } from '../errors.ts';
import { hashFiles as hashOnWorkers } from '../fs/hash-files.ts';

/** Hex SHA-256 of each file, in order; refuses (INPUT) naming the first file that cannot be read. */
export async function hashFiles(paths: string[]): Promise<string[]> {
  const sizes = paths.map((path) => statSync(path, { throwIfNoEntry: false })?.size ?? 0);
  const results = await hashOnWorkers(paths, sizes.reduce((n, s) => n + s, 0), sizes);
  return paths.map((path) => {
    const result = results.get(path);
    if (!result || 'error' in result) throw new ContainaiError('INPUT', `cannot read ${path}: ${result && 'error' in result ? result.error : 'not hashed'}`);
    return result.sha256;
  });
}
