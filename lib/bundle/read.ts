/**
 * Reads a bundle (containai-<version>.tar.gz, SPEC "The release"): a flat
 * tar.gz of the few members SPEC names, each a regular file, each at most
 * once. Anything else is refused by name, before it is written; the bundle is
 * never repaired. payload.tar.gz is hashed while it is written, so checking
 * payload.sha256 does not read it a second time.
 */
import { closeSync, constants, fchmodSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { readFile, rm, stat } from 'node:fs/promises';
import { HashPool } from '../archive/hash-pool.ts';
import { join } from 'node:path';
import { PAYLOAD_LIMITS } from '../archive/policy.ts';
import { quote } from '../archive/policy.ts';
import { archiveError, type EntrySink, readTarGz, type TarHeader } from '../archive/tar.ts';
import { sha256File, parseSingleSum } from '../digest.ts';
import { ContainaiError, describeCause, isContainaiError } from '../errors.ts';
import { BUNDLE_MEMBERS, type BundleMember, isBundleMember, PAYLOAD_ARCHIVE, PAYLOAD_SHA256, REQUIRED_MEMBERS } from './layout.ts';

export interface UnpackedBundle {
  dir: string;
  /** Absolute path of each member the bundle holds. */
  members: Partial<Record<BundleMember, string>>;
  /** Hex SHA-256 of each member, computed while it was written. */
  sha256?: Partial<Record<BundleMember, string>>;
}

const KiB = 1024;
const MiB = 1024 * KiB;

/** The largest each member can legitimately be (a cosign binary is ~100 MB; the payload is bounded by the payload limits). */
export const MEMBER_LIMITS: Readonly<Record<BundleMember, number>> = {
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

export async function unpackBundle(bundlePath: string, dest: string): Promise<UnpackedBundle> {
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
  const members: Partial<Record<BundleMember, string>> = {};
  const sha256: Partial<Record<BundleMember, string>> = {};
  let openFd: number | undefined;
  let current = '';

  const visitor = {
    entry(header: TarHeader): EntrySink | undefined {
      current = header.path;
      const name = header.path;
      const q = quote(name);
      if (!isBundleMember(name)) {
        const why = name.includes('/') ? 'is a nested path; a bundle is flat' : 'is not a member SPEC names';
        throw archiveError(`${label}: ${q} ${why} (allowed: ${BUNDLE_MEMBERS.join(', ')})`, BUNDLE_HINT);
      }
      if (header.kind !== 'file') throw archiveError(`${label}: member ${q} is a ${header.kind}, not a regular file`, BUNDLE_HINT);
      if (members[name] !== undefined) throw archiveError(`${label}: member ${q} appears twice`, BUNDLE_HINT);
      if (header.mode & 0o7000) throw archiveError(`${label}: member ${q} has the setuid/setgid/sticky bit`, BUNDLE_HINT);
      if (header.size > MEMBER_LIMITS[name]) {
        throw archiveError(`${label}: member ${q} declares ${header.size} bytes (limit ${MEMBER_LIMITS[name]})`, BUNDLE_HINT);
      }
      const path = join(dest, name);
      const fd = openSync(path, WRITE_FLAGS, 0o600);
      openFd = fd;
      members[name] = path;
      const id = pool?.begin() ?? -1;
      const hasher = pool ? undefined : new Bun.CryptoHasher('sha256');
      return {
        write(chunk) {
          if (pool) pool.update(id, chunk);
          else hasher?.update(chunk);
          let off = 0;
          while (off < chunk.length) off += writeSync(fd, chunk, off, chunk.length - off);
        },
        end() {
          fchmodSync(fd, header.mode & 0o755);
          openFd = undefined;
          closeSync(fd);
          if (pool) pool.end(id, (hex) => (sha256[name] = hex));
          else sha256[name] = hasher?.digest('hex');
        },
      };
    },
  };

  try {
    const hashing = size >= 8 * MiB ? new HashPool(1) : undefined;
    pool = hashing;
    await readTarGz(bundlePath, visitor, {
      maxStreamBytes: BUNDLE_STREAM_LIMIT,
      label,
      afterChunk: hashing ? () => hashing.flush() : undefined,
    });
    await hashing?.finish();
    const missing = REQUIRED_MEMBERS.filter((m) => members[m] === undefined);
    if (missing.length > 0) throw archiveError(`${label}: the bundle lacks ${missing.join(' and ')}`, BUNDLE_HINT);
    return { dir: dest, members, sha256 };
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
  const sumFile = bundle.members[PAYLOAD_SHA256];
  if (!payload || !sumFile) {
    throw new ContainaiError('VERIFY', `the bundle lacks ${!payload ? PAYLOAD_ARCHIVE : PAYLOAD_SHA256}`, { hint: BUNDLE_HINT });
  }
  const expected = parseSingleSum(await readFile(sumFile, 'utf8'), PAYLOAD_ARCHIVE, PAYLOAD_SHA256);
  const actual = bundle.sha256?.[PAYLOAD_ARCHIVE] ?? (await sha256File(payload));
  if (actual !== expected) {
    throw new ContainaiError('VERIFY', `payload.tar.gz does not match payload.sha256 (sha256 ${actual}, expected ${expected})`, {
      hint: 'the bundle was damaged or altered after it was built: download it again; do not install it',
      details: { expected, actual },
    });
  }
  return actual;
}
