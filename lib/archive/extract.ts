/**
 * Extracts a release payload under the policy of SPEC ("Archives are extracted
 * under a policy"): the whole archive is refused at its first bad entry and
 * dest is removed, so a refusal leaves nothing behind.
 *
 * How it stays safe while streaming:
 * - dest is created here and is empty, and symlinks are created only after the
 *   last entry, once every target has been resolved against every other link of
 *   the archive. So while files are written no symlink exists under dest, and
 *   no path can lead through one; an entry whose parent is a symlink of the
 *   archive is refused outright.
 * - Files are opened O_CREAT|O_EXCL|O_NOFOLLOW: never an existing file, never a link.
 * - Every name is recorded (implicit parent folders too), so a name seen twice,
 *   in any form, is refused before anything is written for it.
 * - Hardlinks are refused, inside or out: containai-build never writes one, and
 *   allowing "inside only" would mean trusting a second name for a file whose
 *   mode and content another entry already decided.
 * - Sizes are checked on the header before the body is read, and the
 *   decompressed stream is counted as it flows (a gzip bomb stops at the limit).
 *
 * fsync is left to the caller (install fsyncs once, after checking SHA256SUMS);
 * the result lists every file, folder and link it needs for that.
 */
import { closeSync, constants, fchmodSync, mkdirSync, openSync, symlinkSync, chmodSync } from 'node:fs';
import { chmod, readdir, rm, stat } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { ContainaiError, describeCause, isContainaiError } from '../errors.ts';
import { EntryTree, parentsFirst } from '../manifest/entry-tree.ts';
import { checkLinkTarget, entryComponents, type ExtractLimits, HOSTILE_HINT, PAYLOAD_LIMITS, quote } from './policy.ts';
import { HashPool, startStreamHash, writeFully } from './hash-pool.ts';
import { archiveError, type EntrySink, fileChunks, readTarStream, type TarHeader } from './tar.ts';

export { type ExtractLimits, PAYLOAD_LIMITS } from './policy.ts';

export interface ExtractedFile {
  /** Relative to dest, "/"-separated. */
  path: string;
  size: number;
  mode: number;
  /** Hex SHA-256, computed while the file was written. */
  sha256: string;
}

export interface ExtractResult {
  /** Every file written, unless keepRecords was false. */
  files: ExtractedFile[];
  /** How many files were written. */
  fileCount: number;
  directories: string[];
  symlinks: Array<{ path: string; target: string }>;
  /** Sum of the files' sizes. */
  bytes: number;
}

/**
 * What a caller checks while the archive is written (lib/manifest/payload-checks.ts: the install
 * side of the one verifier). Paths are relative to dest (below the top folder).
 */
export interface ExtractionChecks {
  /** Before anything is written for the entry, after the structural policy; throw to refuse it. */
  entry(path: string, header: TarHeader): void;
  /** Files whose bytes the checks want whole, hashed in this thread at their end, before the next entry is read. */
  capture(path: string): boolean;
  /** A file's sha256 (and its bytes, when captured); throw to refuse. Called later, from a worker, for the rest. */
  file(path: string, sha256: string, bytes?: Uint8Array): void;
  /** After the last entry and the last digest, before any link is created; throw to refuse. */
  finish(): void;
}

export interface ExtractOptions {
  limits?: ExtractLimits;
  /** Names the archive in messages ("payload.tar.gz"). Default: the file's name. */
  label?: string;
  /** The archive's compressed size, when known: decides whether hashing goes to workers. */
  sourceBytes?: number;
  checks?: ExtractionChecks;
  /** Check and hash every entry, write nothing (`verify --bundle`): dest is not created. */
  discard?: boolean;
  /**
   * Keep a record of every file in the result (default true). The manifest's checks judge each file
   * as it is written and need no list afterwards: on 50,000 files the records alone are ~10 MB.
   */
  keepRecords?: boolean;
  /** The archive must hold exactly this one top folder; its contents land directly in dest. */
  topFolder?: string;
  /** Compressed bytes read so far (for a progress bar over the archive's size). */
  onBytes?: (n: number) => void;
  /** Worker threads hashing files (0: hash on the main thread). Default: by archive size and CPUs. */
  hashThreads?: number;
}

/** Below this, starting workers (~10 ms) costs more than hashing inline. */
const POOL_MIN_ARCHIVE_BYTES = 8 * 1024 * 1024;

function defaultHashThreads(sourceBytes: number | undefined): number {
  if (sourceBytes !== undefined && sourceBytes < POOL_MIN_ARCHIVE_BYTES) return 0;
  // gunzip has a thread of its own and the main thread writes; workers take the rest, up to 4.
  return Math.max(1, Math.min(4, availableParallelism() - 1));
}

const WRITE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
/**
 * Group and other never get write: a root-owned release that a local user
 * could modify would be a privilege escalation. setuid/setgid/sticky are
 * refused before this mask applies.
 */
const MODE_MASK = 0o755;

type Node = 'file' | 'dir' | 'implicit-dir' | 'symlink';

const KIND_WORDS: Record<string, string> = {
  hardlink: 'a hardlink (a release never holds hardlinks)',
  'char-device': 'a character device',
  'block-device': 'a block device',
  fifo: 'a FIFO',
};

/** Extracts a tar.gz file; see extractArchive. */
export async function extractTarGz(archivePath: string, dest: string, options: ExtractOptions = {}): Promise<ExtractResult> {
  const sourceBytes = options.sourceBytes ?? (await stat(archivePath).then((s) => s.size, () => undefined));
  return extractArchive(fileChunks(archivePath, options.onBytes), dest, { ...options, label: options.label ?? archiveLabel(archivePath), sourceBytes, onBytes: undefined });
}

/**
 * Extracts a tar.gz from its compressed bytes into dest, which it creates. Every failure removes
 * dest; a refusal of the checks stops the extraction at that entry (or, for a digest computed on
 * a worker, at the next chunk).
 */
export async function extractArchive(source: AsyncIterable<Uint8Array>, dest: string, options: ExtractOptions = {}): Promise<ExtractResult> {
  const limits = options.limits ?? PAYLOAD_LIMITS;
  const label = options.label ?? 'archive';
  const threads = options.hashThreads ?? defaultHashThreads(options.sourceBytes);
  const counted = options.onBytes ? countBytes(source, options.onBytes) : source;
  const write = options.discard !== true;
  try {
    if (write) mkdirSync(dest, 0o755);
  } catch (err) {
    // Not ours: never remove it.
    throw new ContainaiError('ARCHIVE', `cannot create the extraction folder ${dest}: ${describeCause(err)}`, {
      hint: 'the folder must not exist yet and its parent must be writable',
      cause: err,
    });
  }
  // From here on, every failure removes dest.
  let pool: HashPool | undefined;
  let extraction: Extraction | undefined;
  try {
    if (write) chmodSync(dest, 0o755);
    pool = threads > 0 ? new HashPool(threads) : undefined;
    const hashing = pool;
    const running = new Extraction(dest, label, limits, options.topFolder, hashing, options.checks, write, options.keepRecords !== false);
    extraction = running;
    await readTarStream(counted, running, {
      maxStreamBytes: limits.maxTotalBytes,
      label,
      afterChunk: () => {
        running.raiseFailure();
        return hashing?.flush();
      },
    });
    await hashing?.finish();
    running.raiseFailure();
    return running.finish();
  } catch (err) {
    extraction?.abort();
    const leftover = write ? await removeTree(dest) : undefined;
    const error = isContainaiError(err)
      ? err
      : new ContainaiError('ARCHIVE', `${label}: cannot extract ${quote(extraction?.currentEntry ?? '')}: ${describeCause(err)}`, {
          hint: writeHint(err),
          cause: err,
        });
    if (leftover) {
      throw new ContainaiError(error.code, error.message, { hint: `${error.hint ?? ''}; also remove ${dest} (${leftover})`, cause: error.cause, details: error.details });
    }
    throw error;
  } finally {
    pool?.terminate();
  }
}

/** What to do about a write that failed, by its errno. */
function writeHint(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EDQUOT') return 'free disk space under the install root (containai-host prune) and retry';
  if (code === 'EROFS') return 'the install root is on a read-only file system: remount it read-write, or choose another --install-root';
  if (code === 'EACCES' || code === 'EPERM') return 'the install root is not writable by this user: run as root, or fix its ownership';
  return 'check the destination file system';
}

async function* countBytes(source: AsyncIterable<Uint8Array>, onBytes: (n: number) => void): AsyncGenerator<Uint8Array> {
  for await (const chunk of source) {
    onBytes(chunk.length);
    yield chunk;
  }
}

function archiveLabel(path: string): string {
  return path.split('/').pop() || path;
}

/** The visitor: policy checks on each header, then the file written straight from the stream. */
class Extraction {
  private readonly nodes = new Map<string, Node>([['', 'dir']]);
  private readonly files: ExtractedFile[] = [];
  /** Every folder created, with the mode it gets at the end; insertion order is creation order. */
  private readonly directories = new Map<string, number>();
  private readonly links = new Map<string, string>();
  private readonly linkList: Array<{ path: string; parts: string[]; target: string }> = [];
  private entries = 0;
  private bytes = 0;
  private sawTop = false;
  private openFd: number | undefined;
  private lastParent = '';
  private readonly umask = process.umask();
  /** A refusal of the checks raised where it could not be thrown (a digest from a worker). */
  private failure: unknown;
  currentEntry = '';

  constructor(
    private readonly dest: string,
    private readonly label: string,
    private readonly limits: ExtractLimits,
    private readonly topFolder: string | undefined,
    private readonly pool: HashPool | undefined,
    private readonly checks: ExtractionChecks | undefined,
    /** False: judge and hash only (nothing is created under dest). */
    private readonly write: boolean,
    private readonly keepRecords: boolean,
  ) {}

  private fileCount = 0;

  /** Throws a refusal recorded from a worker's digest: called between chunks, so extraction stops at once. */
  raiseFailure(): void {
    if (this.failure !== undefined) throw this.failure;
  }

  entry(header: TarHeader): EntrySink | undefined {
    const { label, limits } = this;
    this.currentEntry = header.path;
    const q = quote(header.path);
    if (++this.entries > limits.maxEntries) {
      throw archiveError(`${label}: more than ${limits.maxEntries} entries (the limit for one release)`, HOSTILE_HINT);
    }
    if (header.kind !== 'file' && header.kind !== 'directory' && header.kind !== 'symlink') {
      const what = KIND_WORDS[header.kind] ?? `an entry of unsupported tar type ${JSON.stringify(header.typeflag)}`;
      throw archiveError(`${label}: entry ${q} is ${what}`, HOSTILE_HINT);
    }
    let parts = entryComponents(header.path, label, limits);
    if (header.kind === 'file' && header.path.endsWith('/')) {
      throw archiveError(`${label}: file entry ${q} has a name ending in "/"`, HOSTILE_HINT);
    }
    if (header.mode & 0o7000) {
      const bits = [header.mode & 0o4000 ? 'setuid' : '', header.mode & 0o2000 ? 'setgid' : '', header.mode & 0o1000 ? 'sticky' : '']
        .filter(Boolean)
        .join('+');
      throw archiveError(`${label}: entry ${q} has the ${bits} bit (mode ${header.mode.toString(8)})`, HOSTILE_HINT);
    }
    if (header.kind === 'file') {
      if (header.size > limits.maxEntryBytes) {
        throw archiveError(`${label}: entry ${q} declares ${header.size} bytes (limit ${limits.maxEntryBytes} per file)`, HOSTILE_HINT);
      }
      if (this.bytes + header.size > limits.maxTotalBytes) {
        throw archiveError(`${label}: entry ${q} brings the release over ${limits.maxTotalBytes} bytes`, HOSTILE_HINT);
      }
    } else if (header.size !== 0) {
      throw archiveError(`${label}: ${header.kind} entry ${q} carries ${header.size} bytes of data`, HOSTILE_HINT);
    }

    if (this.topFolder !== undefined) {
      if (parts[0] !== this.topFolder) {
        throw archiveError(`${label}: entry ${q} is outside the top folder "${this.topFolder}/"`, HOSTILE_HINT);
      }
      if (parts.length === 1) {
        if (header.kind !== 'directory' || this.sawTop) {
          throw archiveError(`${label}: entry ${q} is ${this.sawTop ? 'listed twice' : `a ${header.kind}, not the top folder`}`, HOSTILE_HINT);
        }
        this.sawTop = true;
        return undefined;
      }
      parts = parts.slice(1);
    } else if (parts.length === 0) {
      if (header.kind !== 'directory') throw archiveError(`${label}: entry ${q} is not a folder`, HOSTILE_HINT);
      return undefined; // "./": dest itself
    }

    const rel = parts.join('/');
    this.claim(rel, parts, header);
    if (header.kind === 'symlink') checkLinkTarget(header.path, header.linkpath, label, limits);
    this.checks?.entry(rel, header);
    const abs = join(this.dest, rel);
    switch (header.kind) {
      case 'directory':
        if (this.write && this.nodes.get(rel) !== 'implicit-dir') mkdirSync(abs, 0o700);
        this.nodes.set(rel, 'dir');
        this.directories.set(rel, header.mode & MODE_MASK);
        return undefined;
      case 'symlink':
        this.nodes.set(rel, 'symlink');
        this.links.set(rel, header.linkpath);
        this.linkList.push({ path: rel, parts, target: header.linkpath });
        return undefined;
      default:
        this.nodes.set(rel, 'file');
        return this.fileSink(abs, rel, header);
    }
  }

  /** Checks the name is new and every parent is a folder (creating implicit ones), never a link or a file. */
  private claim(rel: string, parts: string[], header: TarHeader): void {
    const q = quote(header.path);
    const existing = this.nodes.get(rel);
    if (existing !== undefined && !(existing === 'implicit-dir' && header.kind === 'directory')) {
      throw archiveError(`${this.label}: entry ${q} appears twice in the archive`, HOSTILE_HINT);
    }
    const parent = parts.length > 1 ? rel.slice(0, rel.length - (parts[parts.length - 1] as string).length - 1) : '';
    if (parent === this.lastParent) return;
    let prefix = '';
    for (let i = 0; i < parts.length - 1; i++) {
      prefix = i === 0 ? (parts[0] as string) : `${prefix}/${parts[i]}`;
      const node = this.nodes.get(prefix);
      if (node === 'dir' || node === 'implicit-dir') continue;
      if (node === 'symlink') {
        throw archiveError(`${this.label}: entry ${q} would be written through the symlink ${quote(prefix)}`, HOSTILE_HINT);
      }
      if (node === 'file') throw archiveError(`${this.label}: entry ${q} is inside ${quote(prefix)}, which is a file`, HOSTILE_HINT);
      // Folders implied by a path count as entries: 50,000 paths 64 folders deep must not make 3.2 million folders.
      if (++this.entries > this.limits.maxEntries) {
        throw archiveError(`${this.label}: more than ${this.limits.maxEntries} entries, counting implied folders (the limit for one release)`, HOSTILE_HINT);
      }
      if (this.write) mkdirSync(join(this.dest, prefix), 0o700);
      this.nodes.set(prefix, 'implicit-dir');
      this.directories.set(prefix, 0o755);
    }
    this.lastParent = parent;
  }

  private fileSink(abs: string, rel: string, header: TarHeader): EntrySink {
    const mode = header.mode & MODE_MASK;
    // Created with its final mode when the umask leaves it whole (the usual case),
    // which saves an fchmod per file; never wider than 0o600 otherwise until written.
    const exact = (mode & this.umask) === 0;
    const fd = this.write ? openSync(abs, WRITE_FLAGS, exact ? mode : 0o600) : -1;
    if (this.write) this.openFd = fd;
    const write = this.write;
    const record: ExtractedFile = { path: rel, size: header.size, mode, sha256: '' };
    const checks = this.checks;
    // The manifest's own files are wanted whole and judged before the next entry is read.
    const captured: Uint8Array[] | undefined = checks?.capture(rel) ? [] : undefined;
    const hash = captured ? startStreamHash(undefined) : startStreamHash(this.pool);
    return {
      write(chunk) {
        hash.update(chunk);
        captured?.push(chunk.slice());
        if (write) writeFully(fd, chunk);
      },
      end: () => {
        if (write) {
          if (!exact) fchmodSync(fd, mode);
          this.openFd = undefined;
          closeSync(fd);
        }
        this.bytes += header.size;
        this.fileCount++;
        if (this.keepRecords) this.files.push(record);
        hash.end((hex) => {
          record.sha256 = hex;
          if (!checks) return;
          if (captured) {
            checks.file(rel, hex, Buffer.concat(captured));
            return;
          }
          try {
            checks.file(rel, hex);
          } catch (err) {
            this.failure ??= err;
          }
        });
      },
    };
  }

  finish(): ExtractResult {
    if (this.topFolder !== undefined && !this.sawTop && this.nodes.size === 1) {
      throw archiveError(`${this.label}: the archive does not hold the top folder "${this.topFolder}/"`, HOSTILE_HINT);
    }
    if (this.entries === 0) throw archiveError(`${this.label}: the archive is empty`, HOSTILE_HINT);
    this.checks?.finish();
    // Every link resolved as the kernel will once they exist, and none through another link (lib/manifest/entry-tree.ts).
    const tree = new EntryTree();
    for (const path of parentsFirst(this.nodes.keys(), (p) => p)) {
      if (path === '') continue;
      const node = this.nodes.get(path) as Node;
      tree.add(path, node === 'implicit-dir' ? 'dir' : node, this.links.get(path));
    }
    const bad = tree.firstBadLink();
    if (bad) {
      this.currentEntry = bad.link.path;
      throw archiveError(`${this.label}: symlink ${quote(bad.link.path)} -> ${quote(bad.link.target ?? '')} ${bad.problem}`, HOSTILE_HINT);
    }
    const dirs = [...this.directories.keys()];
    if (this.write) {
      for (const link of this.linkList) symlinkSync(link.target, join(this.dest, link.path));
      // Deepest first, so a read-only folder is closed only after its contents exist.
      for (const dir of [...dirs].sort((a, b) => b.length - a.length)) chmodSync(join(this.dest, dir), this.directories.get(dir) as number);
    }
    return {
      files: this.files,
      fileCount: this.fileCount,
      directories: dirs,
      symlinks: this.linkList.map((l) => ({ path: l.path, target: l.target })),
      bytes: this.bytes,
    };
  }

  abort(): void {
    if (this.openFd !== undefined) {
      try {
        closeSync(this.openFd);
      } catch {
        // already closed
      }
      this.openFd = undefined;
    }
  }
}

/** rm -rf that also works without root when a folder was made read-only; returns why it failed, if it did. */
async function removeTree(dir: string): Promise<string | undefined> {
  try {
    await rm(dir, { recursive: true, force: true });
    return undefined;
  } catch {
    await makeWritable(dir);
    return rm(dir, { recursive: true, force: true }).then(
      () => undefined,
      (err: unknown) => `it could not be removed: ${describeCause(err)}`,
    );
  }
}

async function makeWritable(dir: string): Promise<void> {
  await chmod(dir, 0o700).catch(() => undefined);
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const entry of entries) if (entry.isDirectory()) await makeWritable(join(dir, entry.name));
}
