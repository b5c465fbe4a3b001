/**
 * A large blob (the payload) downloaded to a file and handed onward as it
 * arrives: every chunk is written to <dir>/sha256-<hex>.partial and then
 * yielded, so extraction works while the download runs and nothing waits
 * for the whole blob.
 *
 * The file is what makes a download resumable: a run killed at 60% leaves
 * the first 60% on disk, and the next run yields those bytes from the file
 * and asks the registry only for the rest (`Range: bytes=N-`). A connection
 * cut mid-blob is resumed the same way within the run (a range retry). The
 * digest is computed over every byte yielded, the file's and the network's;
 * when the last byte is in and it does not match, the file is removed and
 * the iteration throws, so the consumer, who has seen every byte, drops its
 * work. The file is owned by root and mode 0600, opened with O_NOFOLLOW.
 */
import { constants, writeSync } from 'node:fs';
import { mkdir, open, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { ContainaiError, describeCause } from '../errors.ts';
import type { RegistryClient } from './client.ts';
import { digestHex, type Descriptor } from './types.ts';

const CHUNK = 1 << 20;

export interface BlobDownloadOptions {
  /** Where the partial file lives: <install-root>/state/downloads/ or a folder the caller gives. */
  dir: string;
  /** Names the blob in messages ("payload.tar.gz"). */
  label: string;
  /** Keep the finished, verified file (default: removed once its last byte is yielded and checked). */
  keep?: boolean;
  /** Range retries after a connection cut mid-blob (within one run). */
  rangeRetries?: number;
  /** No byte for this long ends an attempt (then it is resumed). */
  idleTimeoutMs?: number;
  signal?: AbortSignal;
  /** Bytes already on disk when the download started (tests and progress). */
  onResume?: (offset: number) => void;
  /**
   * Write exactly this file instead of <dir>/sha256-<hex>.partial: created
   * exclusively with this mode (never an existing file, never through a
   * link), so nothing is resumed from it (self-update's new agent).
   */
  file?: { path: string; mode: number };
}

export function partialPath(dir: string, digest: string): string {
  return join(dir, `sha256-${digestHex(digest)}.partial`);
}

/** Opens (or creates) the partial file: never through a link, never readable by others. */
async function openPartial(path: string): Promise<FileHandle> {
  return open(path, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
}

/**
 * The blob's bytes in order, from the partial file first, then the registry.
 * Throws ContainaiError('VERIFY') after the last byte when the digest does not match.
 */
export async function* downloadBlob(client: RegistryClient, descriptor: Descriptor, options: BlobDownloadOptions): AsyncGenerator<Uint8Array> {
  const path = options.file?.path ?? partialPath(options.dir, descriptor.digest);
  let handle: FileHandle;
  try {
    if (options.file) {
      handle = await open(path, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, options.file.mode);
    } else {
      await mkdir(options.dir, { recursive: true, mode: 0o700 });
      handle = await openPartial(path);
    }
  } catch (err) {
    throw new ContainaiError('STATE', `cannot open the download file for ${options.label} in ${options.dir}: ${describeCause(err)}`, {
      hint: 'the downloads folder must be a real folder writable by this user (a link there is refused)',
    });
  }
  let finished = false;
  const hasher = new Bun.CryptoHasher('sha256');
  try {
    let offset = (await handle.stat()).size;
    if (offset > descriptor.size) {
      // Not a prefix of this blob: start over.
      await handle.truncate(0);
      offset = 0;
    }
    if (offset > 0) options.onResume?.(offset);

    // What an earlier run left, re-read and re-hashed: the digest covers every byte handed onward.
    let position = 0;
    while (position < offset) {
      const buffer = Buffer.allocUnsafe(Math.min(CHUNK, offset - position));
      const { bytesRead } = await handle.read(buffer, 0, buffer.byteLength, position);
      if (bytesRead === 0) break;
      const chunk = buffer.subarray(0, bytesRead);
      hasher.update(chunk);
      position += bytesRead;
      yield chunk;
    }

    const retries = options.rangeRetries ?? 5;
    let lastProblem = '';
    for (let attempt = 0; position < descriptor.size; attempt++) {
      if (attempt > retries) {
        throw new ContainaiError('NETWORK', `download of ${options.label} from ${client.where} stopped at ${position} of ${descriptor.size} bytes: ${lastProblem}`, {
          hint: 'run the command again: it resumes where this one stopped',
        });
      }
      if (attempt > 0) await Bun.sleep(Math.min(250 * 2 ** (attempt - 1), 4000));
      const before = position;
      try {
        for await (const chunk of rangeChunks(client, descriptor, position, options)) {
          if (position + chunk.byteLength > descriptor.size) {
            throw new ContainaiError('VERIFY', `${options.label} from ${client.where} is larger than its descriptor's ${descriptor.size} bytes`, {
              hint: 'the registry served other bytes than the digest names: do not use it',
            });
          }
          writeAll(handle.fd, chunk, position, options.label);
          hasher.update(chunk);
          position += chunk.byteLength;
          yield chunk;
        }
        if (position < descriptor.size) lastProblem = 'the connection ended before the blob did';
      } catch (err) {
        if (!(err instanceof CutShort)) throw err;
        lastProblem = err.message;
      }
      // Progress resets the budget: a slow but moving link is not a failing one.
      if (position > before) attempt = -1;
    }

    const actual = `sha256:${hasher.digest('hex')}`;
    if (actual !== descriptor.digest) {
      await handle.close();
      finished = true;
      await rm(path, { force: true });
      throw new ContainaiError('VERIFY', `${options.label} from ${client.where} does not match its digest (expected ${descriptor.digest}, got ${actual})`, {
        hint: 'the registry served other bytes than the manifest names (a swapped layer?): nothing from it is used; the download was removed',
      });
    }
    // A file that is kept (a mirror's blob, a new agent) must be on disk; one removed now must not be
    // written there first: fsync of a 100 MB payload about to be unlinked cost an install ~0.3 s (bench/registry.ts).
    if (options.keep) await handle.sync();
    await handle.close();
    finished = true;
    if (!options.keep) await rm(path, { force: true });
  } finally {
    if (!finished) await handle.close().catch(() => undefined);
  }
}

/**
 * pwrite(2) of a chunk, synchronously: into the page cache, a few hundred µs a chunk. The awaited
 * FileHandle.write it replaces made a thread-pool round trip per chunk; a worker thread that hashed
 * and wrote beside the extraction was slower on 2 cores (the install's file hashing already has one).
 */
function writeAll(fd: number, chunk: Uint8Array, position: number, label: string): void {
  try {
    let written = 0;
    while (written < chunk.byteLength) written += writeSync(fd, chunk, written, chunk.byteLength - written, position + written);
  } catch (err) {
    throw new ContainaiError('STATE', `cannot write the download file for ${label}: ${describeCause(err)}`, {
      hint: 'check the free space and the file system of the downloads folder, then run again: it resumes',
    });
  }
}

/** A connection that ended before the blob did: resumed with a range request. */
class CutShort extends Error {}

/** One GET of the blob from `offset` on; its chunks, and CutShort when the body ends early or stalls. */
async function* rangeChunks(client: RegistryClient, descriptor: Descriptor, offset: number, options: BlobDownloadOptions): AsyncGenerator<Uint8Array> {
  const controller = new AbortController();
  const idleMs = options.idleTimeoutMs ?? 60_000;
  let idle: ReturnType<typeof setTimeout> | undefined;
  let stalled = false;
  const arm = () => {
    clearTimeout(idle);
    idle = setTimeout(() => {
      stalled = true;
      controller.abort();
    }, idleMs);
  };
  const onOuterAbort = () => controller.abort();
  options.signal?.addEventListener('abort', onOuterAbort);
  try {
    arm();
    let response: Response;
    try {
      response = await client.send({
        method: 'GET',
        path: client.repoPath(`blobs/${descriptor.digest}`),
        headers: offset > 0 ? { range: `bytes=${offset}-` } : {},
        what: `${options.label} (blob ${descriptor.digest})`,
        signal: controller.signal,
        accept: (s) => s === 200 || s === 206,
      });
    } catch (err) {
      if (stalled) throw new CutShort(`no answer for ${idleMs / 1000} s`);
      throw err;
    }
    // A registry that ignores Range sends the whole blob: skip what we have.
    let skip = 0;
    if (offset > 0 && response.status === 206) {
      const start = /^bytes (\d+)-/.exec(response.headers.get('content-range') ?? '')?.[1];
      if (start === undefined || Number(start) !== offset) {
        await response.body?.cancel().catch(() => undefined);
        throw new ContainaiError('NETWORK', `${options.label}: the registry answered a range request with another range`, { hint: 'run again; if it persists, remove the download file and tell the registry operator' });
      }
    } else if (offset > 0) {
      skip = offset;
    }
    if (!response.body) throw new CutShort('the answer had no body');
    try {
      for await (const raw of response.body as AsyncIterable<Uint8Array>) {
        arm();
        let chunk = raw;
        if (skip > 0) {
          const drop = Math.min(skip, chunk.byteLength);
          skip -= drop;
          chunk = chunk.subarray(drop);
          if (chunk.byteLength === 0) continue;
        }
        yield chunk;
      }
    } catch (err) {
      if (err instanceof ContainaiError) throw err;
      throw new CutShort(stalled ? `no data for ${idleMs / 1000} s` : describeCause(err));
    }
    if (options.signal?.aborted) throw new ContainaiError('NETWORK', `download of ${options.label} was stopped`, { hint: 'the registry (or something between) answered what no registry should: try again; if it persists, tell its operator' });
  } finally {
    clearTimeout(idle);
    options.signal?.removeEventListener('abort', onOuterAbort);
    controller.abort();
  }
}
