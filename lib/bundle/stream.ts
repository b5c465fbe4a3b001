/**
 * Reading a bundle (containai-<version>.tar.gz) once, front to back, as a
 * stream: the small members first (SHA256SUMS, the signature material,
 * payload.sha256), handed over whole, and then payload.tar.gz's bytes as they
 * come, only when asked for. openBundle stops at the payload's header, so a
 * caller verifies the manifest before a single payload byte is read, and the
 * payload is never written anywhere but into the tree it is extracted to.
 *
 * The bundle is flat and strict (SPEC "The release"): only the members SPEC
 * names, each a regular file, each at most once, each under its size limit,
 * SHA256SUMS first. A bundle whose first member is not SHA256SUMS is of the
 * first format, which lib/release/format1.ts reads on its own.
 */
import { quote } from '../archive/policy.ts';
import { archiveError, fileChunks, gunzipChunks, type EntrySink, type TarHeader, TarParser } from '../archive/tar.ts';
import { PAYLOAD_LIMITS } from '../archive/policy.ts';
import { ContainaiError, describeCause } from '../errors.ts';
import { BUNDLE_MEMBERS, type BundleMember, FORMAT1_MEMBERS, isBundleMember, PAYLOAD_ARCHIVE, REQUIRED_MEMBERS, SUMS_FILE } from './layout.ts';

const KiB = 1024;
const MiB = 1024 * KiB;

/** The largest each member can legitimately be. Everything before the payload is held in memory. */
export const MEMBER_LIMITS: Readonly<Record<BundleMember, number>> = {
  SHA256SUMS: 64 * MiB,
  'attestation.intoto.jsonl': 16 * MiB,
  'SHA256SUMS.sigstore.json': 1 * MiB,
  'SHA256SUMS.sig': 64 * KiB,
  'trusted_root.json': 16 * MiB,
  'payload.sha256': 4 * KiB,
  'payload.tar.gz': PAYLOAD_LIMITS.maxTotalBytes,
  cosign: 512 * MiB,
};
const STREAM_LIMIT = Object.values(MEMBER_LIMITS).reduce((a, b) => a + b, 0) + MiB;

export const BUNDLE_HINT = 'the bundle is damaged or was not made by containai-build: download it again, or rebuild it with `containai-build package`';

export interface OpenedBundle {
  format: 1 | 2;
  /** The members read before payload.tar.gz, whole (format 2 only). */
  members: ReadonlyMap<BundleMember, Uint8Array>;
  /** payload.tar.gz's bytes, from the first on; may be iterated once, after the caller verified the members. */
  payload(): AsyncIterable<Uint8Array>;
  /** Stops reading (the file is closed); safe to call at any time, and more than once. */
  close(): Promise<void>;
}

/**
 * Opens a bundle from its compressed bytes and reads up to payload.tar.gz's header. A first-format
 * bundle is recognised by its first member and returned with format 1 and nothing read.
 */
export async function openBundle(source: AsyncIterable<Uint8Array>, label: string): Promise<OpenedBundle> {
  const chunks = gunzipChunks(source)[Symbol.asyncIterator]();
  const members = new Map<BundleMember, Uint8Array>();
  const queue: Uint8Array[] = [];
  let format: 1 | 2 | undefined;
  let payloadStarted = false;
  let payloadEnded = false;
  let ended = false;
  let index = 0;

  const visitor = {
    entry(header: TarHeader): EntrySink | undefined {
      const name = header.path;
      const q = quote(name);
      if (index++ === 0) format = name === SUMS_FILE ? 2 : (FORMAT1_MEMBERS as readonly string[]).includes(name) ? 1 : 2;
      if (format === 1) return undefined;
      if (!isBundleMember(name)) {
        const why = name.includes('/') ? 'is a nested path; a bundle is flat' : 'is not a member SPEC names';
        throw archiveError(`${label}: ${q} ${why} (allowed: ${BUNDLE_MEMBERS.join(', ')})`, BUNDLE_HINT);
      }
      if (index === 1 && name !== SUMS_FILE) throw archiveError(`${label}: the first member is ${q}, not ${SUMS_FILE}`, BUNDLE_HINT);
      if (header.kind !== 'file') throw archiveError(`${label}: member ${q} is a ${header.kind}, not a regular file`, BUNDLE_HINT);
      if (members.has(name) || (name === PAYLOAD_ARCHIVE && payloadStarted)) throw archiveError(`${label}: member ${q} appears twice`, BUNDLE_HINT);
      if (header.mode & 0o7000) throw archiveError(`${label}: member ${q} has the setuid/setgid/sticky bit`, BUNDLE_HINT);
      if (header.size > MEMBER_LIMITS[name]) throw archiveError(`${label}: member ${q} declares ${header.size} bytes (limit ${MEMBER_LIMITS[name]})`, BUNDLE_HINT);
      if (payloadStarted) {
        // Anything after the payload (cosign) is for operators; a host reads no further.
        payloadEnded = true;
        return undefined;
      }
      if (name === PAYLOAD_ARCHIVE) {
        payloadStarted = true;
        return {
          write: (chunk) => void queue.push(chunk),
          end: () => void (payloadEnded = true),
        };
      }
      const parts: Uint8Array[] = [];
      return {
        write: (chunk) => void parts.push(chunk.slice()),
        end: () => void members.set(name, Buffer.concat(parts)),
      };
    },
  };
  const parser = new TarParser(visitor, STREAM_LIMIT, label);

  /** Reads and parses one more inflated chunk; false at the end of the archive. */
  const pumpOne = async (): Promise<boolean> => {
    let next: IteratorResult<Uint8Array>;
    try {
      next = await chunks.next();
    } catch (err) {
      throw wrap(err, label);
    }
    if (next.done) {
      ended = true;
      parser.finish();
      return false;
    }
    parser.feed(next.value);
    return true;
  };
  const close = async () => {
    await chunks.return?.(undefined).catch(() => undefined);
  };

  try {
    while (!payloadStarted && format !== 1 && !ended) await pumpOne();
  } catch (err) {
    await close();
    throw err;
  }
  if (format === 1) {
    await close();
    return { format: 1, members, payload: () => (async function* () {})(), close };
  }
  const missing = REQUIRED_MEMBERS.filter((m) => m !== PAYLOAD_ARCHIVE && !members.has(m));
  if (!payloadStarted) missing.push(PAYLOAD_ARCHIVE);
  if (missing.length > 0) {
    await close();
    throw archiveError(`${label}: the bundle lacks ${missing.join(' and ')}${payloadStarted ? ' before payload.tar.gz' : ''}`, BUNDLE_HINT);
  }
  let taken = false;
  return {
    format: 2,
    members,
    close,
    payload() {
      if (taken) throw new ContainaiError('INTERNAL', 'the payload of a bundle can be read once');
      taken = true;
      return (async function* () {
        try {
          for (;;) {
            while (queue.length > 0) yield queue.shift() as Uint8Array;
            if (payloadEnded || ended) break;
            await pumpOne();
          }
        } finally {
          await close();
        }
      })();
    },
  };
}

/** A bundle file as a stream of its bytes. */
export function openBundleFile(path: string, onBytes?: (n: number) => void): Promise<OpenedBundle> {
  return openBundle(fileChunks(path, onBytes), path.split('/').pop() || path);
}

function wrap(err: unknown, label: string): ContainaiError {
  if (err instanceof ContainaiError) return err;
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT' || code === 'EACCES' || code === 'EISDIR') {
    return new ContainaiError('NOT_FOUND', `cannot read the bundle ${label}: ${describeCause(err)}`, { hint: 'check --bundle / --asset-dir and --version', cause: err });
  }
  return archiveError(`${label}: cannot be unpacked: ${describeCause(err)}`, BUNDLE_HINT, err);
}
