/**
 * Reads a bundle (containai-<version>.tar.gz, SPEC "The release"): a flat
 * tar.gz of the few members SPEC names, each a regular file, each at most
 * once. Anything else is refused by name, before it is written; the bundle is
 * never repaired. payload.tar.gz is hashed while it is written, so checking
 * payload.sha256 does not read it a second time.
 */
import { closeSync, constants, fchmodSync, mkdirSync, openSync } from 'node:fs';
import { readFile, rm, stat } from 'node:fs/promises';
import { HashPool, startStreamHash, writeFully } from '../archive/hash-pool.ts';
import { join } from 'node:path';
import { PAYLOAD_LIMITS } from '../archive/policy.ts';
import { quote } from '../archive/policy.ts';
import { archiveError, type EntrySink, readTarGz, type TarHeader } from '../archive/tar.ts';
import { sha256File, parseSingleSum } from '../digest.ts';
import { ContainaiError, describeCause, isContainaiError } from '../errors.ts';
import { FORMAT1_MEMBERS, type Format1Member, isFormat1Member, PAYLOAD_ARCHIVE, PAYLOAD_SHA256, FORMAT1_REQUIRED } from './layout.ts';
import { type PayloadSums, PayloadSumsReader } from './payload-sums.ts';

export interface UnpackedBundle {
  dir: string;
  /** Absolute path of each member the bundle holds (payload.tar.gz's only when it was written). */
  members: Partial<Record<Format1Member, string>>;
  /** Set when payload.tar.gz was hashed as it passed and not written (UnpackOptions.hashPayloadOnly). */
  payloadNotWritten?: true;
  /** Hex SHA-256 of each member, computed while it was written. */
  sha256?: Partial<Record<Format1Member, string>>;
  /** payload/SHA256SUMS as the payload's bytes passed (UnpackOptions.readPayloadSums). */
  payloadSums?: PayloadSums;
}

export interface UnpackOptions {
  /**
   * Hash payload.tar.gz as it passes, on a worker for a large bundle, and do not write it: checking a
   * kept bundle again needs only its digest (payload.sha256, an attestation's subject, an ECDSA
   * signature), and writing ~200 MB to a temp folder costs as much as hashing it. The digest is still
   * computed from the bundle's bytes in this pass; sha256.payload.tar.gz holds it and members has no path.
   */
  hashPayloadOnly?: boolean;
  /**
   * Also read payload/SHA256SUMS out of payload.tar.gz in the same pass (lib/bundle/payload-sums.ts):
   * verifying an installed release compares it with the release's own, from the bytes that were hashed.
   */
  readPayloadSums?: boolean;
}

const KiB = 1024;
const MiB = 1024 * KiB;

/** The largest each member can legitimately be (a cosign binary is ~100 MB; the payload is bounded by the payload limits). */
export const MEMBER_LIMITS: Readonly<Record<Format1Member, number>> = {
  'payload.tar.gz': PAYLOAD_LIMITS.maxTotalBytes,
  'payload.sha256': 4 * KiB,
  'attestation.intoto.jsonl': 64 * MiB,
  'payload.sigstore.json': 16 * MiB,
  'payload.sig': 64 * KiB,
  cosign: 512 * MiB,
  'trusted_root.json': 16 * MiB,
};
const BUNDLE_STREAM_LIMIT = Object.values(MEMBER_LIMITS).reduce((a, b) => a + b, 0) + MiB;

const BUNDLE_HINT = 'the bundle is damaged or was not made by containai-build: download it again, or rebuild it with `containai-build package`';
const WRITE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

export async function unpackBundle(bundlePath: string, dest: string, options: UnpackOptions = {}): Promise<UnpackedBundle> {
  const label = bundlePath.split('/').pop() || bundlePath;
  // A large bundle hashes its members on a worker, beside gunzip and the writes.
  const size = await stat(bundlePath).then((s) => s.size, () => 0);
  try {
    mkdirSync(dest, 0o700);
  } catch (err) {
    throw new ContainaiError('ARCHIVE', `cannot create the folder to unpack ${label} into (${dest}): ${describeCause(err)}`, {
      hint: 'the folder must not exist yet and its parent must be writable',
      cause: err,
    });
  }
  let pool: HashPool | undefined;
  const members: Partial<Record<Format1Member, string>> = {};
  const seen = new Set<Format1Member>();
  const sha256: Partial<Record<Format1Member, string>> = {};
  let openFd: number | undefined;
  let current = '';
  let payloadSums: PayloadSums | undefined;

  const visitor = {
    entry(header: TarHeader): EntrySink | undefined {
      current = header.path;
      const name = header.path;
      const q = quote(name);
      if (!isFormat1Member(name)) {
        const why = name.includes('/') ? 'is a nested path; a bundle is flat' : 'is not a member SPEC names';
        throw archiveError(`${label}: ${q} ${why} (allowed: ${FORMAT1_MEMBERS.join(', ')})`, BUNDLE_HINT);
      }
      if (header.kind !== 'file') throw archiveError(`${label}: member ${q} is a ${header.kind}, not a regular file`, BUNDLE_HINT);
      if (seen.has(name)) throw archiveError(`${label}: member ${q} appears twice`, BUNDLE_HINT);
      if (header.mode & 0o7000) throw archiveError(`${label}: member ${q} has the setuid/setgid/sticky bit`, BUNDLE_HINT);
      if (header.size > MEMBER_LIMITS[name]) {
        throw archiveError(`${label}: member ${q} declares ${header.size} bytes (limit ${MEMBER_LIMITS[name]})`, BUNDLE_HINT);
      }
      seen.add(name);
      const hash = startStreamHash(pool);
      const sumsReader = options.readPayloadSums && name === PAYLOAD_ARCHIVE ? new PayloadSumsReader() : undefined;
      if (options.hashPayloadOnly && name === PAYLOAD_ARCHIVE) {
        return {
          write(chunk) {
            hash.update(chunk);
            sumsReader?.write(chunk);
          },
          end() {
            hash.end((hex) => (sha256[name] = hex));
            if (sumsReader) payloadSums = sumsReader.end();
          },
        };
      }
      const path = join(dest, name);
      const fd = openSync(path, WRITE_FLAGS, 0o600);
      openFd = fd;
      members[name] = path;
      return {
        write(chunk) {
          hash.update(chunk);
          sumsReader?.write(chunk);
          writeFully(fd, chunk);
        },
        end() {
          fchmodSync(fd, header.mode & 0o755);
          openFd = undefined;
          closeSync(fd);
          hash.end((hex) => (sha256[name] = hex));
          if (sumsReader) payloadSums = sumsReader.end();
        },
      };
    },
  };

  try {
    // The copy's bytes hash on a worker of their own, beside the members'.
    const hashing = size >= 8 * MiB ? new HashPool(1) : undefined;
    pool = hashing;
    await readTarGz(bundlePath, visitor, {
      maxStreamBytes: BUNDLE_STREAM_LIMIT,
      label,
      afterChunk: hashing ? () => hashing.flush() : undefined,
    });
    await hashing?.finish();
    const missing = FORMAT1_REQUIRED.filter((m) => !seen.has(m));
    if (missing.length > 0) throw archiveError(`${label}: the bundle lacks ${missing.join(' and ')}`, BUNDLE_HINT);
    return { dir: dest, members, sha256, payloadSums, ...(options.hashPayloadOnly ? { payloadNotWritten: true as const } : {}) };
  } catch (err) {
    if (openFd !== undefined) {
      try {
        closeSync(openFd);
      } catch {
        // already closed
      }
    }
    await rm(dest, { recursive: true, force: true });
    if (isContainaiError(err)) throw err;
    throw new ContainaiError('ARCHIVE', `${label}: cannot unpack ${quote(current)}: ${describeCause(err)}`, {
      hint: 'check free space and permissions where the bundle is unpacked',
      cause: err,
    });
  } finally {
    pool?.terminate();
  }
}

/** Checks payload.tar.gz against payload.sha256; returns the payload's hex SHA-256. */
export async function checkPayloadHash(bundle: UnpackedBundle): Promise<string> {
  const payload = bundle.members[PAYLOAD_ARCHIVE];
  const streamed = bundle.payloadNotWritten ? bundle.sha256?.[PAYLOAD_ARCHIVE] : undefined;
  const sumFile = bundle.members[PAYLOAD_SHA256];
  if ((!payload && !streamed) || !sumFile) {
    throw new ContainaiError('VERIFY', `the bundle lacks ${!payload && !streamed ? PAYLOAD_ARCHIVE : PAYLOAD_SHA256}`, { hint: BUNDLE_HINT });
  }
  const expected = parseSingleSum(await readFile(sumFile, 'utf8'), PAYLOAD_ARCHIVE, PAYLOAD_SHA256);
  const actual = streamed ?? bundle.sha256?.[PAYLOAD_ARCHIVE] ?? (await sha256File(payload as string));
  if (actual !== expected) {
    throw new ContainaiError('VERIFY', `payload.tar.gz does not match payload.sha256 (sha256 ${actual}, expected ${expected})`, {
      hint: 'the bundle was damaged or altered after it was built: download it again; do not install it',
      details: { expected, actual },
    });
  }
  return actual;
}

/** Thrown inside the reader to stop it once payload/SHA256SUMS is read: nothing after it is needed. */
class SumsRead extends Error {}

/**
 * payload/SHA256SUMS of a bundle, reading the bundle only until the payload's
 * first blocks have given it up (for an unsigned release, whose kept bundle is
 * only compared with install.json's digest: nothing else needs its bytes).
 */
export async function readPayloadSums(bundlePath: string): Promise<PayloadSums> {
  const label = bundlePath.split('/').pop() || bundlePath;
  let outcome: PayloadSums | undefined;
  try {
    await readTarGz(bundlePath, {
      entry(header) {
        if (header.path !== PAYLOAD_ARCHIVE || header.kind !== 'file' || outcome) return undefined;
        const reader = new PayloadSumsReader();
        return {
          write(chunk) {
            reader.write(chunk);
            if (reader.done) {
              outcome = reader.end();
              throw new SumsRead();
            }
          },
          end() {
            outcome = reader.end();
          },
        };
      },
    }, { maxStreamBytes: BUNDLE_STREAM_LIMIT, label });
  } catch (err) {
    if (!(err instanceof SumsRead)) return { problem: isContainaiError(err) ? err.message : describeCause(err) };
  }
  return outcome ?? { problem: `${label} has no ${PAYLOAD_ARCHIVE}` };
}
