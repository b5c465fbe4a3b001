/**
 * SHA-256 of files (streamed, never held in memory) and the SHA256SUMS format
 * that `sha256sum -c` reads: "<64 hex>  <path>\n", sorted by path.
 */
import { open } from 'node:fs/promises';
import { ContainaiError } from './errors.ts';

const CHUNK = 1 << 20;
const HEX64 = /^[0-9a-f]{64}$/;

/** Hex SHA-256 of a file, read in 1 MiB chunks. */
export async function sha256File(path: string, onBytes?: (n: number) => void): Promise<string> {
  const hasher = new Bun.CryptoHasher('sha256');
  const handle = await open(path, 'r');
  try {
    const buffer = Buffer.allocUnsafe(CHUNK);
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, CHUNK, null);
      if (bytesRead === 0) break;
      hasher.update(buffer.subarray(0, bytesRead));
      onBytes?.(bytesRead);
    }
  } finally {
    await handle.close();
  }
  return hasher.digest('hex');
}

export function sha256Bytes(data: Uint8Array | string): string {
  return new Bun.CryptoHasher('sha256').update(data).digest('hex');
}

export interface SumEntry {
  path: string;
  sha256: string;
}

/** Byte-wise order of UTF-8 paths, as `LC_ALL=C sort` gives: stable on every machine. */
export function comparePaths(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/** Paths sha256sum would escape (newline, backslash) or that are not relative are refused upstream. */
export function isSummablePath(path: string): boolean {
  return path.length > 0 && !path.includes('\n') && !path.includes('\\') && !path.startsWith('/');
}

export function formatSums(entries: readonly SumEntry[]): string {
  return [...entries]
    .sort((a, b) => comparePaths(a.path, b.path))
    .map((e) => `${e.sha256}  ${e.path}\n`)
    .join('');
}

/**
 * SHA256SUMS as a map of path to digest, in one pass over the text (a release's manifest lists up to
 * 100,000 files: no array of lines, no array of entries beside the map). Strict as parseSums.
 */
export function parseSumsMap(text: string, source = 'SHA256SUMS'): Map<string, string> {
  const map = new Map<string, string>();
  const problems: string[] = [];
  let start = 0;
  for (let line = 1; start < text.length; line++) {
    let end = text.indexOf('\n', start);
    if (end === -1) end = text.length;
    const row = text.slice(start, end);
    start = end + 1;
    const match = /^([0-9a-f]{64}) [ *](.+)$/.exec(row);
    const path = match?.[2];
    if (!match || path === undefined || !isSummablePath(path)) {
      if (problems.length < 5) problems.push(`${source}:${line}: not "<sha256>  <path>"`);
      continue;
    }
    if (map.has(path)) {
      if (problems.length < 5) problems.push(`${source}:${line}: ${path} listed twice`);
      continue;
    }
    map.set(path, match[1] as string);
  }
  if (problems.length > 0) {
    throw new ContainaiError('INPUT', `${source} is malformed: ${problems.join('; ')}`, {
      hint: 'the release is damaged or was not made by containai-build; fetch it again',
    });
  }
  return map;
}

/** Parses SHA256SUMS strictly; every bad line is named. */
export function parseSums(text: string, source = 'SHA256SUMS'): SumEntry[] {
  const entries: SumEntry[] = [];
  const problems: string[] = [];
  const seen = new Set<string>();
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  lines.forEach((line, i) => {
    const match = /^([0-9a-f]{64}) [ *](.+)$/.exec(line);
    if (!match || !HEX64.test(match[1] ?? '') || !isSummablePath(match[2] ?? '')) {
      problems.push(`${source}:${i + 1}: not "<sha256>  <path>"`);
      return;
    }
    const path = match[2] as string;
    if (seen.has(path)) problems.push(`${source}:${i + 1}: ${path} listed twice`);
    seen.add(path);
    entries.push({ path, sha256: match[1] as string });
  });
  if (problems.length > 0) {
    throw new ContainaiError('INPUT', `${source} is malformed: ${problems.slice(0, 5).join('; ')}`, {
      hint: 'the release is damaged or was not made by containai-build; fetch it again',
    });
  }
  return entries;
}

/** Reads "<hex>  <name>" as payload.sha256 holds it. */
export function parseSingleSum(text: string, expectedName: string, source: string): string {
  const match = /^([0-9a-f]{64}) [ *](\S+)\n?$/.exec(text);
  if (!match || match[2] !== expectedName) {
    throw new ContainaiError('INPUT', `${source} is malformed: expected "<sha256>  ${expectedName}"`, {
      hint: 'the bundle is damaged or was not made by containai-build',
    });
  }
  return match[1] as string;
}
