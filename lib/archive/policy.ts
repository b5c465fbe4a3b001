/**
 * The rules an archive's names and links must follow before anything lands on
 * disk (SPEC, host: "Archives are extracted under a policy"). Pure functions:
 * no I/O, so the same rules serve the extractor, the bundle reader and tests.
 * Every rule refuses; none repairs: a payload made by containai-build never
 * breaks one, so an archive that does is damaged or hostile.
 */
import { archiveError } from './tar.ts';

export interface ExtractLimits {
  maxEntries: number;
  maxTotalBytes: number;
  maxEntryBytes: number;
  maxDepth: number;
  maxPathBytes: number;
}

const GiB = 1024 ** 3;

/**
 * Limits for a release payload. A payload is the host tree, the SBOM and a few
 * tools: a few hundred files and a few hundred MB; the benchmark tree is 5,000
 * files / 200 MB. Each limit is ten times or more what a real payload needs and
 * still small enough that a hostile archive cannot fill a server's disk, inode
 * table or memory before it is refused.
 */
export const PAYLOAD_LIMITS: ExtractLimits = {
  /**
   * Twice the largest tree the benchmarks hold a release to (50,000 files and their folders,
   * bench/scale.ts); 100,000 inodes are harmless on any host filesystem.
   */
  maxEntries: 100_000,
  /** Counted on the decompressed stream while it flows, so a gzip bomb stops here, not at ENOSPC. */
  maxTotalBytes: 16 * GiB,
  /** The largest real member is a single-file binary (containai-host, cosign: ~100 MB). */
  maxEntryBytes: 4 * GiB,
  /** The host tree is a handful of levels deep; 64 leaves room and stops "2,000 folders deep". */
  maxDepth: 64,
  /** Well under PATH_MAX (4096) even below a long install root, and printable in one message line. */
  maxPathBytes: 1024,
};

export const HOSTILE_HINT = 'a release made by containai-build never holds such an entry: the archive is damaged or hostile; do not install it';

/** Characters that break SHA256SUMS lines, terminals or messages. */
const UNSAFE_CHARS = /[\u0000-\u001f\u007f\\]/;

/**
 * A name from an archive, quoted for one line of a message: JSON escapes quotes, backslashes and C0
 * controls; DEL, the C1 controls (U+009B opens a terminal escape) and the line separators are
 * escaped here too, once (never a name already escaped: that would double its backslashes).
 */
export function quote(name: string): string {
  return JSON.stringify(name.length > 200 ? `${name.slice(0, 200)}…` : name).replace(
    /[\u007f-\u009f\u2028\u2029]/g,
    (c) => (c.charCodeAt(0) <= 0xff ? `\\x${c.charCodeAt(0).toString(16)}` : `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`),
  );
}

/**
 * Splits an entry name into components after checking every rule on names.
 * Returns [] for the archive root ("./"). A trailing slash is dropped, so
 * "a" and "a/" are the same name (and so a duplicate of each other).
 */
export function entryComponents(name: string, label: string, limits: ExtractLimits): string[] {
  const q = quote(name);
  if (name.length === 0) throw archiveError(`${label}: an entry has an empty name`, HOSTILE_HINT);
  if (Buffer.byteLength(name) > limits.maxPathBytes) {
    throw archiveError(`${label}: entry ${q} has a name longer than ${limits.maxPathBytes} bytes`, HOSTILE_HINT);
  }
  if (UNSAFE_CHARS.test(name)) throw archiveError(`${label}: entry ${q} has a control character or backslash in its name`, HOSTILE_HINT);
  if (name.startsWith('/')) throw archiveError(`${label}: entry ${q} has an absolute path`, HOSTILE_HINT);
  let rest = name.startsWith('./') ? name.slice(2) : name;
  if (rest.endsWith('/')) rest = rest.slice(0, -1);
  if (rest === '' || rest === '.') return [];
  const parts = rest.split('/');
  for (const part of parts) {
    if (part === '..') throw archiveError(`${label}: entry ${q} has a ".." component (path traversal)`, HOSTILE_HINT);
    if (part === '' || part === '.') throw archiveError(`${label}: entry ${q} has an empty or "." component`, HOSTILE_HINT);
  }
  if (parts.length > limits.maxDepth) {
    throw archiveError(`${label}: entry ${q} is ${parts.length} folders deep (limit ${limits.maxDepth})`, HOSTILE_HINT);
  }
  return parts;
}

/** The link target text itself: relative, printable, bounded. Where it leads is resolveEscapes's job. */
export function checkLinkTarget(name: string, target: string, label: string, limits: ExtractLimits): void {
  const q = quote(name);
  if (target.length === 0) throw archiveError(`${label}: symlink ${q} has an empty target`, HOSTILE_HINT);
  if (target.startsWith('/')) throw archiveError(`${label}: symlink ${q} points to an absolute path ${quote(target)}`, HOSTILE_HINT);
  if (Buffer.byteLength(target) > limits.maxPathBytes) {
    throw archiveError(`${label}: symlink ${q} has a target longer than ${limits.maxPathBytes} bytes`, HOSTILE_HINT);
  }
  if (UNSAFE_CHARS.test(target)) throw archiveError(`${label}: symlink ${q} has a control character or backslash in its target`, HOSTILE_HINT);
}

const MAX_HOPS = 40; // as Linux's MAXSYMLINKS

/**
 * Where a symlink leads, resolved the way the kernel would once every symlink
 * of the archive exists: components that are themselves symlinks in the
 * archive are followed, ".." pops. Lexical checks alone miss `a -> d/up/../..`
 * where `d/up -> ..`. Returns a reason when the link leaves the root, else
 * undefined. `links` maps a path (components joined by "/") to its target.
 */
export function linkEscapes(linkPath: readonly string[], target: string, links: ReadonlyMap<string, string>): string | undefined {
  const stack = linkPath.slice(0, -1);
  const pending = target.split('/').reverse();
  let hops = 0;
  while (pending.length > 0) {
    const part = pending.pop() as string;
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (stack.length === 0) return 'resolves outside the release';
      stack.pop();
      continue;
    }
    stack.push(part);
    const next = links.get(stack.join('/'));
    if (next !== undefined) {
      if (++hops > MAX_HOPS) return 'is a symlink loop';
      if (next.startsWith('/')) return 'resolves outside the release';
      stack.pop();
      const parts = next.split('/');
      for (let i = parts.length - 1; i >= 0; i--) pending.push(parts[i] as string);
    }
  }
  return undefined;
}
