/**
 * A reproducible tar.gz writer: the same entries and mtime give the same bytes
 * on every machine. We write the ustar headers ourselves (rather than node-tar's
 * Pack) because every byte of a header must be ours to decide: no uid/gid or
 * user names from the build machine, no atime/ctime pax records, fixed mtime,
 * one order. Files are streamed from disk and the output is hashed as it is
 * written, so memory stays flat whatever the size.
 *
 * The gzip framing is ours too, pigz-style: the tar stream is cut into 1 MiB
 * blocks at fixed offsets, each deflated on its own (ending on a full flush, so
 * the blocks concatenate into one valid deflate stream) on zlib's thread pool,
 * several at a time, and written in order. A 64 KiB segment that looks
 * incompressible (compressed or random data) is stored instead: deflate spends most of its
 * time failing to shrink such data (60 MB/s against memcpy). Block offsets and
 * the store-or-deflate choice depend only on the bytes, so the output is the
 * same on every run. The gzip header has no time and no name, and says Unix.
 */
import { closeSync, constants as fsConstants, fstatSync, openSync, readSync } from 'node:fs';
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { constants as zlibConstants, crc32, deflateRaw } from 'node:zlib';
import { comparePaths } from '../digest.ts';
import { ContainaiError, describeCause } from '../errors.ts';
import { fsyncDir, tempSibling } from '../fs/atomic.ts';

export interface ArchiveEntry {
  /** POSIX path relative to the archive root, e.g. 'payload/host/x'; no trailing slash. */
  path: string;
  type: 'file' | 'directory' | 'symlink';
  /** The file whose bytes a 'file' entry holds; streamed, never read whole. */
  source?: string;
  /** Permission bits; setuid, setgid and sticky are always dropped. */
  mode: number;
  linkTarget?: string;
}

export interface WriteTarGzOptions {
  /** Every entry's mtime, in unix seconds (SOURCE_DATE_EPOCH or a fixed default). */
  mtime: number;
  /** Deflate level for compressible blocks, 0 (store everything) to 9; default 1 (see DEFAULT_LEVEL). */
  level?: number;
  /** Called with the number of file bytes read, for a progress bar. */
  onBytes?: (n: number) => void;
  /**
   * 'sorted' (default): byte-wise by path, whatever order the entries come in. 'given': as listed,
   * for a format that fixes its own order (the payload's manifest first, the bundle's small members first).
   */
  order?: 'sorted' | 'given';
}

/**
 * Level 1: on a Bun binary (most of a payload) it gives 59% of the size at 90 MB/s,
 * where level 6 gives 48% at 35 MB/s. The payload is downloaded once per host and
 * built on every CI run.
 */
export const DEFAULT_LEVEL = 1;

/**
 * The mtime archives carry when SOURCE_DATE_EPOCH is unset: 1980-01-01T00:00:00Z,
 * a fixed date (as zip and wheel builders use) rather than the clock or the last
 * commit, so an archive is reproducible even when nobody set the variable.
 */
export const DEFAULT_MTIME = 315_532_800;

/** SOURCE_DATE_EPOCH (reproducible-builds.org) if set, else DEFAULT_MTIME. */
export function archiveMtime(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.SOURCE_DATE_EPOCH;
  if (raw === undefined || raw === '') return DEFAULT_MTIME;
  if (!/^\d{1,11}$/.test(raw)) {
    throw new ContainaiError('INPUT', `SOURCE_DATE_EPOCH "${raw}" is not a number of seconds since 1970`, {
      hint: 'set it to a unix time such as $(git log -1 --format=%ct), or unset it',
    });
  }
  return Number(raw);
}

const BLOCK = 512;
const ZEROS = Buffer.alloc(BLOCK * 2);
/** The largest size an 11-digit octal field holds; larger files get a pax size record. */
const MAX_OCTAL_SIZE = 0o77777777777;

/** Writes a tar.gz of the entries (sorted by path unless `order: 'given'`) and returns its SHA-256 and size. */
export async function writeTarGz(
  entries: ArchiveEntry[],
  outPath: string,
  options: WriteTarGzOptions,
): Promise<{ sha256: string; bytes: number }> {
  const hasher = new Bun.CryptoHasher('sha256');
  const bytes = await writeArchive(entries, outPath, options, hasher);
  return { sha256: hasher.digest('hex'), bytes };
}

/**
 * The same archive without hashing what is written: for the bundle, whose hash
 * nobody needs at build time, SHA-256 would be a third of packaging's CPU time.
 */
export async function writeTarGzUnhashed(entries: ArchiveEntry[], outPath: string, options: WriteTarGzOptions): Promise<{ bytes: number }> {
  return { bytes: await writeArchive(entries, outPath, options) };
}

async function writeArchive(entries: ArchiveEntry[], outPath: string, options: WriteTarGzOptions, hasher?: Bun.CryptoHasher): Promise<number> {
  const ordered = checkEntries(options.order === 'given' ? entries : [...entries].sort((a, b) => comparePaths(a.path, b.path)));
  const level = options.level ?? DEFAULT_LEVEL;
  if (!Number.isInteger(level) || level < 0 || level > 9) throw new ContainaiError('INTERNAL', `compression level ${level} is not 0-9`);
  const temp = tempSibling(outPath);
  let bytes: number;
  try {
    const out = await open(temp, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, 0o644);
    try {
      const gzip = new BlockGzip(out, level, hasher);
      await writeEntries(ordered, gzip, options);
      bytes = await gzip.end();
      await out.sync();
    } finally {
      await out.close();
    }
    await rename(temp, outPath);
  } catch (err) {
    await rm(temp, { force: true });
    // Only system errors (disk full, permissions) are ours to word; anything else is a bug and stays one.
    if (err instanceof ContainaiError || !(err as NodeJS.ErrnoException).code) throw err;
    throw new ContainaiError('ARCHIVE', `cannot write ${outPath}: ${describeCause(err)}`, { cause: err });
  }
  await fsyncDir(dirname(outPath));
  return bytes;
}

function checkEntries(entries: ArchiveEntry[]): ArchiveEntry[] {
  const seen = new Set<string>();
  for (const entry of entries) {
    if (!entry.path || entry.path.startsWith('/') || entry.path.endsWith('/') || entry.path.split('/').includes('..')) {
      throw new ContainaiError('INTERNAL', `archive entry "${entry.path}" is not a relative path`);
    }
    if (seen.has(entry.path)) throw new ContainaiError('INTERNAL', `archive entry "${entry.path}" is listed twice`);
    seen.add(entry.path);
  }
  return entries;
}

/**
 * Feeds the tar stream, header by header and file by file, into the gzip writer. Source files are
 * read with synchronous calls straight into the gzip block: a payload is thousands of small files,
 * and an async open, stat, read and close each is a thread-pool round trip (measured on the bench
 * tree: most of packaging's system time). Deflate still runs on zlib's pool, blocks in flight.
 */
async function writeEntries(entries: ArchiveEntry[], gzip: BlockGzip, options: WriteTarGzOptions): Promise<void> {
  const probe = Buffer.alloc(1);
  for (const entry of entries) {
    if (entry.type !== 'file') {
      await gzip.write(entryHeaders(entry, 0, options.mtime));
      continue;
    }
    if (!entry.source) throw new ContainaiError('INTERNAL', `archive entry "${entry.path}" has no source file`);
    const fd = openSource(entry);
    try {
      const size = fstatSync(fd).size;
      await gzip.write(entryHeaders(entry, size, options.mtime));
      let remaining = size;
      while (remaining > 0) {
        const bytesRead = await gzip.readFrom(fd, remaining);
        if (bytesRead === 0) throw changedWhileReading(entry);
        options.onBytes?.(bytesRead);
        remaining -= bytesRead;
      }
      // A file that grew after we wrote its size would put a wrong archive on disk.
      if (readSync(fd, probe, 0, 1, null) !== 0) throw changedWhileReading(entry);
      const padding = (BLOCK - (size % BLOCK)) % BLOCK;
      if (padding) await gzip.write(ZEROS.subarray(0, padding));
    } finally {
      closeSync(fd);
    }
  }
  await gzip.write(ZEROS);
}

function openSource(entry: ArchiveEntry): number {
  try {
    // O_NOFOLLOW: a file entry must be the file that was checked, not where a link swapped in now points.
    return openSync(entry.source as string, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
  } catch (err) {
    throw new ContainaiError('INPUT', `cannot read ${entry.source}: ${describeCause(err)}`, { cause: err });
  }
}

function changedWhileReading(entry: ArchiveEntry): ContainaiError {
  return new ContainaiError('INPUT', `${entry.source} changed while it was being archived`, {
    hint: 'nothing may write to the tree while it is packaged; run again',
  });
}

// ---- gzip, in independent blocks ----

const GZIP_BLOCK = 1 << 20;
/** Blocks deflating at once: enough to keep two cores busy while the main thread reads and hashes. */
const IN_FLIGHT = 3;
/** ID1 ID2 CM=deflate FLG=0 MTIME=0 XFL=0 OS=3 (Unix). */
const GZIP_HEADER = Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]);
/** An empty stored block with BFINAL set: the end of the deflate stream. */
const DEFLATE_END = Buffer.from([0x01, 0x00, 0x00, 0xff, 0xff]);
const STORED_MAX = 0xffff;

class BlockGzip {
  /** Blocks whose output has been written, ready to be filled again: no fresh memory (and page faults) per block. */
  private readonly free: Buffer[] = [];
  private block: Buffer = Buffer.allocUnsafe(GZIP_BLOCK);
  private fill = 0;
  private crc = 0;
  private inputBytes = 0;
  private outputBytes = 0;
  private readonly pending: Array<{ block: Buffer; pieces: Promise<Uint8Array[]> }> = [];

  constructor(
    private readonly out: FileHandle,
    private readonly level: number,
    private readonly hasher?: Bun.CryptoHasher,
  ) {}

  async write(data: Uint8Array): Promise<void> {
    let offset = 0;
    while (offset < data.length) {
      const n = Math.min(data.length - offset, GZIP_BLOCK - this.fill);
      this.block.set(data.subarray(offset, offset + n), this.fill);
      this.fill += n;
      offset += n;
      if (this.fill === GZIP_BLOCK) await this.submit();
    }
  }

  /** Reads file bytes straight into the current block (no extra copy); returns how many. */
  async readFrom(fd: number, max: number): Promise<number> {
    const want = Math.min(max, GZIP_BLOCK - this.fill);
    const bytesRead = readSync(fd, this.block, this.fill, want, null);
    this.fill += bytesRead;
    if (this.fill === GZIP_BLOCK) await this.submit();
    return bytesRead;
  }

  /** Flushes everything and returns the size of the gzip file. */
  async end(): Promise<number> {
    if (this.fill > 0) await this.submit();
    while (this.pending.length > 0) await this.emitOldest();
    const trailer = Buffer.alloc(8);
    trailer.writeUInt32LE(this.crc >>> 0, 0);
    trailer.writeUInt32LE(this.inputBytes % 2 ** 32, 4);
    await this.emit([DEFLATE_END, trailer]);
    return this.outputBytes;
  }

  private async submit(): Promise<void> {
    const block = this.block;
    const data = block.subarray(0, this.fill);
    this.block = this.free.pop() ?? Buffer.allocUnsafe(GZIP_BLOCK);
    this.fill = 0;
    this.crc = crc32(data, this.crc);
    this.inputBytes += data.length;
    this.pending.push({ block, pieces: compressBlock(data, this.level) });
    if (this.pending.length >= IN_FLIGHT) await this.emitOldest();
  }

  private async emitOldest(): Promise<void> {
    const { block, pieces } = this.pending.shift() as { block: Buffer; pieces: Promise<Uint8Array[]> };
    await this.emit(await pieces);
    this.free.push(block);
  }

  private async emit(pieces: Uint8Array[]): Promise<void> {
    if (this.outputBytes === 0) pieces = [GZIP_HEADER, ...pieces];
    for (const piece of pieces) {
      this.hasher?.update(piece);
      this.outputBytes += piece.length;
    }
    await writeAll(this.out, pieces);
  }
}

async function writeAll(out: FileHandle, pieces: Uint8Array[]): Promise<void> {
  const total = pieces.reduce((n, p) => n + p.length, 0);
  const { bytesWritten } = await out.writev(pieces);
  if (bytesWritten === total) return;
  // A short write: finish byte by byte range, which writev does not resume for us.
  let skip = bytesWritten;
  for (const piece of pieces) {
    if (skip >= piece.length) {
      skip -= piece.length;
      continue;
    }
    let offset = skip;
    skip = 0;
    while (offset < piece.length) offset += (await out.write(piece, offset, piece.length - offset)).bytesWritten;
  }
}

/**
 * One block as deflate data: each 64 KiB segment is judged on its own (files of
 * every kind sit side by side in a block), runs of incompressible segments are
 * stored and the other runs deflated, in parallel on zlib's thread pool. Stored
 * runs point into the block rather than copying it.
 */
async function compressBlock(data: Buffer, level: number): Promise<Uint8Array[]> {
  if (level === 0) return storedBlocks(data);
  const runs: Array<{ start: number; end: number; store: boolean }> = [];
  for (let start = 0; start < data.length; start += SEGMENT) {
    const end = Math.min(start + SEGMENT, data.length);
    const store = looksIncompressible(data.subarray(start, end));
    const last = runs.at(-1);
    if (last && last.store === store) last.end = end;
    else runs.push({ start, end, store });
  }
  const pieces = await Promise.all(
    runs.map((r) => (r.store ? storedBlocks(data.subarray(r.start, r.end)) : deflateBlock(data.subarray(r.start, r.end), level).then((b) => [b]))),
  );
  return pieces.flat();
}

/** Deflates one block on zlib's thread pool, ending byte-aligned with no final bit and no history carried over. */
function deflateBlock(data: Uint8Array, level: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    deflateRaw(data, { level, finishFlush: zlibConstants.Z_FULL_FLUSH }, (err, out) => (err ? reject(err) : resolve(out)));
  });
}

/** The data as deflate "stored" blocks (BTYPE 00, not final): a 5-byte header per 64 KiB, then the bytes themselves. */
function storedBlocks(data: Uint8Array): Uint8Array[] {
  const pieces: Uint8Array[] = [];
  for (let offset = 0; offset < data.length; offset += STORED_MAX) {
    const len = Math.min(STORED_MAX, data.length - offset);
    const header = Buffer.allocUnsafe(5);
    header[0] = 0;
    header.writeUInt16LE(len, 1);
    header.writeUInt16LE(~len & 0xffff, 3);
    pieces.push(header, data.subarray(offset, offset + len));
  }
  return pieces;
}

const SEGMENT = 64 * 1024;
const SAMPLE = 2048;
/** Bits per byte above which deflate cannot win: compressed or random data sits near 8, text near 5. */
const INCOMPRESSIBLE_ENTROPY = 7.5;

/**
 * A cheap, deterministic guess at whether deflate would help a segment: the
 * Shannon entropy of 2 KiB at its start and at its middle. Only a segment that
 * looks random at both is stored; a short segment is always deflated.
 */
export function looksIncompressible(segment: Uint8Array): boolean {
  if (segment.length < SEGMENT / 2) return false;
  const middle = segment.length >> 1;
  return (
    entropy(segment.subarray(0, SAMPLE)) > INCOMPRESSIBLE_ENTROPY &&
    entropy(segment.subarray(middle, middle + SAMPLE)) > INCOMPRESSIBLE_ENTROPY
  );
}

/** c·log2(c) for every count a sample can hold: the entropy sum without a log per segment. */
const C_LOG_C = Float64Array.from({ length: SAMPLE + 1 }, (_, c) => (c === 0 ? 0 : c * Math.log2(c)));

/** Bits per byte of the sample: log2(n) − Σ c·log2(c) / n over the byte counts c. */
function entropy(sample: Uint8Array): number {
  const counts = new Uint16Array(256);
  for (let i = 0; i < sample.length; i++) counts[sample[i] as number]!++;
  let sum = 0;
  for (let i = 0; i < 256; i++) sum += C_LOG_C[counts[i] as number] as number;
  return Math.log2(sample.length) - sum / sample.length;
}

// ---- ustar headers ----

const TYPEFLAG = { file: '0', symlink: '2', directory: '5' } as const;

/** The header block(s) for one entry: a pax header first when a name or size does not fit ustar. */
export function entryHeaders(entry: ArchiveEntry, size: number, mtime: number): Buffer {
  const name = entry.type === 'directory' ? `${entry.path}/` : entry.path;
  const link = entry.type === 'symlink' ? (entry.linkTarget ?? '') : '';
  const split = splitName(name);
  const pax: Array<[string, string]> = [];
  if (!split) pax.push(['path', name]);
  if (Buffer.byteLength(link) > 100) pax.push(['linkpath', link]);
  if (size > MAX_OCTAL_SIZE) pax.push(['size', String(size)]);

  const main = header({
    name: split?.name ?? name,
    prefix: split?.prefix ?? '',
    mode: entry.mode & 0o777,
    size: size > MAX_OCTAL_SIZE ? 0 : size,
    mtime,
    typeflag: TYPEFLAG[entry.type],
    linkname: link,
  });
  if (pax.length === 0) return main;

  const body = Buffer.from(pax.map(([k, v]) => paxRecord(k, v)).join(''));
  const paxHeader = header({
    // A fixed name: GNU tar's default would embed the process id.
    name: `PaxHeaders/${name.replace(/\/$/, '').split('/').pop() ?? ''}`,
    prefix: '',
    mode: 0o644,
    size: body.length,
    mtime,
    typeflag: 'x',
    linkname: '',
  });
  const padding = Buffer.alloc((BLOCK - (body.length % BLOCK)) % BLOCK);
  return Buffer.concat([paxHeader, body, padding, main]);
}

/** Splits a name into ustar's prefix (≤155 bytes) and name (≤100 bytes) at a slash, or null if it cannot. */
function splitName(name: string): { name: string; prefix: string } | null {
  if (Buffer.byteLength(name) <= 100) return { name, prefix: '' };
  for (let i = name.indexOf('/'); i !== -1; i = name.indexOf('/', i + 1)) {
    const prefix = name.slice(0, i);
    const rest = name.slice(i + 1);
    if (Buffer.byteLength(prefix) <= 155 && Buffer.byteLength(rest) <= 100 && rest !== '') return { name: rest, prefix };
  }
  return null;
}

/** "<len> key=value\n", where len counts the whole record including its own digits. */
function paxRecord(key: string, value: string): string {
  const rest = ` ${key}=${value}\n`;
  const restBytes = Buffer.byteLength(rest);
  let len = restBytes + 1;
  while (String(len).length + restBytes !== len) len = restBytes + String(len).length;
  return `${len}${rest}`;
}

interface HeaderFields {
  name: string;
  prefix: string;
  mode: number;
  size: number;
  mtime: number;
  typeflag: string;
  linkname: string;
}

/** One 512-byte ustar block; Buffer.write cuts a too-long field at a character boundary (the pax record holds it whole). */
function header(f: HeaderFields): Buffer {
  const block = Buffer.alloc(BLOCK);
  block.write(f.name, 0, 100, 'utf8');
  writeOctal(block, 100, 8, f.mode);
  writeOctal(block, 108, 8, 0); // uid
  writeOctal(block, 116, 8, 0); // gid
  writeOctal(block, 124, 12, f.size);
  writeOctal(block, 136, 12, f.mtime);
  block.write(' '.repeat(8), 148, 8, 'latin1'); // checksum placeholder, as the format defines
  block.write(f.typeflag, 156, 1, 'latin1');
  block.write(f.linkname, 157, 100, 'utf8');
  block.write('ustar\u000000', 257, 8, 'latin1');
  // uname/gname (265, 297) stay empty: no user of the build machine is named.
  writeOctal(block, 329, 8, 0); // devmajor
  writeOctal(block, 337, 8, 0); // devminor
  block.write(f.prefix, 345, 155, 'utf8');
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += block[i] as number;
  block.write(`${sum.toString(8).padStart(6, '0')}\u0000 `, 148, 8, 'latin1');
  return block;
}

/** A zero-padded octal number that fills the field but its last byte (NUL). */
function writeOctal(block: Buffer, offset: number, length: number, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) throw new ContainaiError('INTERNAL', `tar header value ${value} is out of range`);
  block.write(`${value.toString(8).padStart(length - 1, '0')}\u0000`, offset, length, 'latin1');
}
