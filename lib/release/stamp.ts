/**
 * The verification stamp: what the last full verification of a release saw.
 *
 * check-health runs from a timer every few minutes, and hashing a release
 * (the payload ships a ~100 MB containai-host) plus re-verifying the kept
 * bundle takes about a second on a small host. After a full verification
 * passes, the stamp records the identity of every file as it was when hashed
 * (device, inode, size, mtime and ctime in nanoseconds) and of the kept
 * bundle. The next check re-hashes only files whose identity changed and
 * re-verifies the bundle only if it changed; any write, chmod, rename or
 * replacement changes ctime, which no user-space call can set back. A stamp
 * older than its maximum age, for another release, or made under another
 * trust policy (flags, pinned key and root contents) is ignored, and a full
 * verification runs. The stamp lives in state/, written by root only, like
 * the releases it describes.
 */
import { lstat, mkdir, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { sha256Bytes } from '../digest.ts';
import { writeFileAtomic } from '../fs/atomic.ts';
import type { TrustPolicy } from '../trust/policy.ts';
import type { InstallLayout } from './layout.ts';

const STAMP_FILE = 'verified.json';

/** dev:ino:size:mtimeNs:ctimeNs of a file, not following links; undefined when it cannot be read. */
export async function fileIdentity(path: string): Promise<string | undefined> {
  const s = await lstat(path, { bigint: true }).catch(() => undefined);
  return s ? `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}` : undefined;
}

const stampSchema = z.object({
  release: z.string(),
  policyKey: z.string(),
  verifiedAt: z.string(),
  bundle: z.string(),
  /** SHA256SUMS as it was when compared with the payload's: changed, the bundle is read again. */
  sums: z.string(),
  files: z.record(z.string(), z.string()),
});
export type VerificationStamp = z.infer<typeof stampSchema>;

function stampPath(layout: InstallLayout): string {
  return join(layout.state, STAMP_FILE);
}

/** The stamp for this release and policy when it is young enough to trust; otherwise undefined. */
export async function readStamp(layout: InstallLayout, release: string, policyKey: string, maxAgeMs: number): Promise<VerificationStamp | undefined> {
  const text = await readFile(stampPath(layout), 'utf8').catch(() => undefined);
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
  if (stamp.release !== release || stamp.policyKey !== policyKey || !(age >= 0 && age < maxAgeMs)) return undefined;
  return stamp;
}

/** Best effort: a host whose state/ cannot be written still verifies, only more slowly. */
export async function writeStamp(layout: InstallLayout, stamp: VerificationStamp): Promise<void> {
  await mkdir(layout.state, { recursive: true, mode: 0o755 })
    .then(() => writeFileAtomic(stampPath(layout), JSON.stringify(stamp) + '\n', 0o600))
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
