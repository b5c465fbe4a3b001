/**
 * The verification stamp: what the last full verification of a release saw.
 *
 * check-health runs from a timer every few minutes, and hashing a release
 * takes most of a second on a small host. After a full verification passes,
 * the stamp records the identity of every file as it was when hashed
 * (device, inode, size, mtime and ctime in nanoseconds). The next check
 * re-hashes only files whose identity changed (the manifest's signature, its
 * entries' types, modes and links are checked on every run: they cost
 * milliseconds); any write, chmod, rename or
 * replacement changes ctime, which no user-space call can set back. A stamp
 * older than its maximum age, for another release, or made under another
 * trust policy (flags, pinned key and root contents) is ignored, and a full
 * verification runs.
 *
 * The stamp lives outside the install root, in /var/lib/containai (the
 * timer's StateDirectory; CONTAINAI_STATE_DIR moves it), one file per install
 * root: whoever can write the release could otherwise write a stamp that
 * vouches for their change, and the daily full check would never come.
 */
import { lstat, mkdir, readdir, readFile } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import { z } from 'zod';
import { sha256Bytes } from '../digest.ts';
import { writeFileAtomic } from '../fs/atomic.ts';
import type { TrustPolicy } from '../trust/policy.ts';
import type { InstallLayout } from './layout.ts';

/** Where stamps live unless CONTAINAI_STATE_DIR says otherwise: root's, outside every install root. */
export const DEFAULT_STAMP_DIR = '/var/lib/containai';

/** dev:ino:size:mtimeNs:ctimeNs of a file, not following links; undefined when it cannot be read. */
export async function fileIdentity(path: string): Promise<string | undefined> {
  const s = await lstat(path, { bigint: true }).catch(() => undefined);
  return s ? `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}` : undefined;
}

const stampSchema = z.object({
  release: z.string(),
  policyKey: z.string(),
  verifiedAt: z.string(),
  /** The install root the stamp describes (the file name is derived from it too). */
  root: z.string(),
  files: z.record(z.string(), z.string()),
});
export type VerificationStamp = z.infer<typeof stampSchema>;

/** The stamp file for an install root; undefined (no stamp: always a full verification) when CONTAINAI_STATE_DIR is not an absolute path. */
function stampPath(layout: InstallLayout): string | undefined {
  const dir = process.env.CONTAINAI_STATE_DIR || DEFAULT_STAMP_DIR;
  if (!isAbsolute(dir)) return undefined;
  return join(dir, `verified-${sha256Bytes(resolve(layout.root)).slice(0, 16)}.json`);
}

/** The stamp for this release and policy when it is young enough to trust; otherwise undefined. */
export async function readStamp(layout: InstallLayout, release: string, policyKey: string, maxAgeMs: number): Promise<VerificationStamp | undefined> {
  const path = stampPath(layout);
  if (path === undefined) return undefined;
  const text = await readFile(path, 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  let parsed;
  try {
    parsed = stampSchema.safeParse(JSON.parse(text));
  } catch {
    return undefined;
  }
  if (!parsed.success) return undefined;
  const stamp = parsed.data;
  const age = Date.now() - Date.parse(stamp.verifiedAt);
  if (stamp.root !== resolve(layout.root) || stamp.release !== release || stamp.policyKey !== policyKey || !(age >= 0 && age < maxAgeMs)) return undefined;
  return stamp;
}

/** Best effort: a host whose state/ cannot be written still verifies, only more slowly. */
export async function writeStamp(layout: InstallLayout, stamp: Omit<VerificationStamp, 'root'>): Promise<void> {
  const path = stampPath(layout);
  if (path === undefined) return;
  await mkdir(join(path, '..'), { recursive: true, mode: 0o700 })
    .then(() => writeFileAtomic(path, JSON.stringify({ ...stamp, root: resolve(layout.root) }) + '\n', 0o600))
    .catch(() => undefined);
}

async function contentsOf(paths: readonly string[]): Promise<string[]> {
  return Promise.all(paths.map(async (p) => `${p}=${await readFile(p).then(sha256Bytes, () => 'unreadable')}`));
}

/**
 * A digest of everything that decides trust: the policy's words and the
 * contents of every key and root it names or finds in the trust dir, so that
 * rotating a key on disk invalidates the stamp.
 */
export async function policyKey(policy: TrustPolicy): Promise<string> {
  const trustDirFiles = policy.trustDir
    ? (await readdir(policy.trustDir).catch(() => [] as string[])).sort().map((name) => join(policy.trustDir as string, name))
    : [];
  const { trustedRootFiles, keyFiles, ...words } = policy;
  const material = await contentsOf([...trustedRootFiles, ...keyFiles, ...trustDirFiles]);
  return sha256Bytes(JSON.stringify({ words: Object.entries(words).sort(), material }));
}
