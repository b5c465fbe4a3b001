/**
 * A synthetic host tree for benchmarks: by default 200 MB in 5,000 files, half
 * random bytes and half text, one file in ten executable, spread over nested
 * folders. The same options give the same tree, byte for byte (seeded PRNG),
 * so timings compare like with like across runs and machines.
 *
 *   bun bench/make-tree.ts DIR [--bytes 200000000] [--files 5000] [--seed 1]
 */
import { chmod, mkdir, open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

export interface TreeOptions {
  bytes?: number;
  files?: number;
  seed?: number;
}

export interface TreeSummary {
  dir: string;
  files: number;
  bytes: number;
  executables: number;
}

const WORDS = (
  'container agent proxy image registry release payload bundle host health check install rollback ' +
  'verify signature attestation digest profile network policy socket engine timer status prune ' +
  'the a of to and in for on with from by at as is be it this that which not or'
).split(' ');

/** xorshift128: fast, seedable, and good enough that random files do not compress. */
function prng(seed: number): () => number {
  let x = seed | 0 || 1;
  let y = 362436069;
  let z = 521288629;
  let w = 88675123;
  return () => {
    const t = x ^ (x << 11);
    x = y;
    y = z;
    z = w;
    w = (w ^ (w >>> 19) ^ (t ^ (t >>> 8))) >>> 0;
    return w;
  };
}

function randomBytes(next: () => number, size: number): Uint8Array {
  const words = new Uint32Array(Math.ceil(size / 4));
  for (let i = 0; i < words.length; i++) words[i] = next();
  return new Uint8Array(words.buffer, 0, size);
}

function text(next: () => number, size: number, executable: boolean): Uint8Array {
  const parts: string[] = executable ? ['#!/bin/sh\n# generated\n'] : [];
  let length = parts[0]?.length ?? 0;
  while (length < size) {
    const n = next();
    const word = WORDS[n % WORDS.length] as string;
    const sep = n % 11 === 0 ? '\n' : ' ';
    parts.push(word, sep);
    length += word.length + 1;
  }
  return new TextEncoder().encode(parts.join('')).subarray(0, size);
}

/** Writes the tree under dir (emptied first) and says what it made. */
export async function makeTree(dir: string, options: TreeOptions = {}): Promise<TreeSummary> {
  const totalBytes = options.bytes ?? 200_000_000;
  const count = options.files ?? 5000;
  const next = prng(options.seed ?? 1);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });

  // Sizes vary over two orders of magnitude, as real trees do; scaled so they sum to totalBytes.
  const weights = Array.from({ length: count }, () => 0.1 + (next() / 2 ** 32) ** 3 * 10);
  const scale = totalBytes / weights.reduce((a, b) => a + b, 0);
  const sizes = weights.map((w) => Math.floor(w * scale));
  sizes[0] = (sizes[0] as number) + totalBytes - sizes.reduce((a, b) => a + b, 0);

  let executables = 0;
  for (let i = 0; i < count; i++) {
    const folder = join(dir, `group-${i % 20}`, `part-${(i >> 4) % 8}`);
    await mkdir(folder, { recursive: true });
    const isText = i % 2 === 0;
    const executable = i % 10 === 0;
    const size = sizes[i] as number;
    const data = isText ? text(next, size, executable) : randomBytes(next, size);
    const path = join(folder, `${isText ? 'doc' : 'blob'}-${i}${isText ? (executable ? '.sh' : '.txt') : '.bin'}`);
    const handle = await open(path, 'w');
    try {
      await handle.writeFile(data);
    } finally {
      await handle.close();
    }
    await chmod(path, executable ? 0o755 : 0o644);
    if (executable) executables++;
  }
  return { dir, files: count, bytes: totalBytes, executables };
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { bytes: { type: 'string' }, files: { type: 'string' }, seed: { type: 'string' } },
  });
  const dir = positionals[0];
  if (!dir) {
    process.stderr.write('usage: bun bench/make-tree.ts DIR [--bytes N] [--files N] [--seed N]\n');
    process.exit(2);
  }
  const summary = await makeTree(dir, {
    bytes: values.bytes ? Number(values.bytes) : undefined,
    files: values.files ? Number(values.files) : undefined,
    seed: values.seed ? Number(values.seed) : undefined,
  });
  process.stderr.write(`made ${summary.files} files, ${summary.bytes} bytes (${summary.executables} executable) in ${summary.dir}\n`);
}
