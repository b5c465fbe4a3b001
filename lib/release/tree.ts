/** Walking a release folder without following links, and comparing it with SHA256SUMS. */
import { lstat, readdir, realpath } from 'node:fs/promises';
import { join, sep } from 'node:path';
import type { SumEntry } from '../digest.ts';
import { hashFiles } from './hash.ts';
import { fileIdentity } from './stamp.ts';

export interface TreeEntry {
  path: string; // relative, "/"-separated
  kind: 'file' | 'dir' | 'symlink' | 'other';
  size: number;
  /** st_mode of a file or folder (not followed); 0 for links and others. */
  mode: number;
}

export async function walkTree(root: string): Promise<TreeEntry[]> {
  const out: TreeEntry[] = [];
  const visit = async (rel: string): Promise<void> => {
    const entries = await readdir(rel ? join(root, rel) : root, { withFileTypes: true });
    await Promise.all(
      entries.map(async (entry) => {
        const path = rel ? `${rel}/${entry.name}` : entry.name;
        if (entry.isDirectory()) {
          out.push({ path, kind: 'dir', size: 0, mode: (await lstat(join(root, path))).mode });
          await visit(path);
        } else if (entry.isFile()) {
          const info = await lstat(join(root, path));
          out.push({ path, kind: 'file', size: info.size, mode: info.mode });
        } else if (entry.isSymbolicLink()) {
          out.push({ path, kind: 'symlink', size: 0, mode: 0 });
        } else {
          out.push({ path, kind: 'other', size: 0, mode: 0 });
        }
      }),
    );
  };
  await visit('');
  return out;
}

/** setuid, setgid, sticky, group-writable, other-writable: never in an installed release. */
const UNSAFE_MODE_BITS = 0o7022;

export interface TreeCheck {
  problems: string[];
  filesChecked: number;
  bytesChecked: number;
  /** Files whose bytes were hashed in this check (the rest were known unchanged). */
  filesHashed: number;
  /** The identity (lib/release/stamp.ts) of every listed file that matched, as it was before hashing. */
  identities: Map<string, string>;
  /** The digest of each extra file hashed without an expected one, by path (absent when unreadable). */
  extraDigests: Map<string, string>;
}

/**
 * Checks a release tree against its SHA256SUMS: every listed file is there and
 * matches, and nothing is there that is not listed (besides the names in
 * `alsoAllowed`), and no file or folder has a mode install would not have
 * written (setuid/setgid/sticky, writable by group or others). A listed symlink is checked through its target, which must
 * stay inside the tree. `extraHashes` are further files to hash in the same
 * pass (the kept bundle), checked against their expected digests, or, without
 * one, returned in extraDigests for the caller to judge.
 */
export async function checkTreeAgainstSums(
  root: string,
  sums: readonly SumEntry[],
  alsoAllowed: ReadonlySet<string>,
  extraHashes: ReadonlyArray<{ path: string; sha256?: string; what: string }> = [],
  /** Identities of files that matched at the last full verification; a file still the same is not hashed again. */
  known: ReadonlyMap<string, string> = new Map(),
): Promise<TreeCheck> {
  const problems: string[] = [];
  const tree = await walkTree(root);
  // Install writes 0755/0644 and refuses setuid/setgid/sticky: a mode changed since is a problem. Checked on
  // every run from the walk's lstat, never spared by the stamp (whose identities only spare re-hashing).
  const modeProblem = (path: string, mode: number) => {
    if ((mode & UNSAFE_MODE_BITS) !== 0) problems.push(`${path}: mode ${(mode & 0o7777).toString(8).padStart(4, '0')} (setuid, setgid, sticky or writable by group or others)`);
  };
  modeProblem('.', (await lstat(root)).mode);
  for (const entry of tree) modeProblem(entry.path, entry.mode);
  const listed = new Map(sums.map((e) => [e.path, e.sha256]));
  const byPath = new Map(tree.map((e) => [e.path, e]));
  const toHash: Array<{ rel: string; abs: string; size: number }> = [];
  const realRoot = await realpath(root);
  const filePaths = new Set(tree.filter((e) => e.kind === 'file').map((e) => e.path));
  for (const entry of tree) {
    if (entry.kind === 'dir') continue;
    if (entry.kind === 'other') {
      problems.push(`${entry.path}: not a regular file`);
      continue;
    }
    const expected = listed.get(entry.path);
    if (entry.kind === 'file') {
      if (expected !== undefined) toHash.push({ rel: entry.path, abs: join(root, entry.path), size: entry.size });
      else if (!alsoAllowed.has(entry.path)) problems.push(`${entry.path}: not listed in SHA256SUMS`);
      continue;
    }
    // A link must stay inside the release; a listed one is checked through its target, an unlisted one
    // must name a listed file or a folder (it adds no content of its own).
    const resolved = await realpath(join(root, entry.path)).catch(() => undefined);
    if (!resolved || !resolved.startsWith(realRoot + sep)) {
      problems.push(`${entry.path}: a link that leaves the release or dangles`);
      continue;
    }
    const rel = resolved.slice(realRoot.length + 1);
    const info = await lstat(resolved);
    if (expected !== undefined) {
      if (info.isFile()) toHash.push({ rel: entry.path, abs: resolved, size: info.size });
      else problems.push(`${entry.path}: listed in SHA256SUMS but links to a folder`);
    } else if (!(info.isDirectory() || (filePaths.has(rel) && listed.has(rel)))) {
      problems.push(`${entry.path}: a link to nothing SHA256SUMS covers`);
    }
  }
  for (const { path } of sums) {
    const entry = byPath.get(path);
    if (!entry) problems.push(`${path}: listed in SHA256SUMS but missing`);
    else if (entry.kind === 'dir') problems.push(`${path}: listed in SHA256SUMS but is a folder`);
  }
  const extras = await Promise.all(
    extraHashes.map(async (e) => ({ ...e, size: (await lstat(e.path).catch(() => undefined))?.size })),
  );
  for (const e of extras) if (e.size === undefined) problems.push(`${e.what}: missing`);
  const jobs = [
    ...toHash.map((f) => ({ abs: f.abs, size: f.size })),
    ...extras.filter((e) => e.size !== undefined).map((e) => ({ abs: e.path, size: e.size as number })),
  ].sort((a, b) => b.size - a.size);
  // Identities are taken before hashing: a file changed while being hashed then differs next time.
  const identities = new Map<string, string>();
  const unchanged = new Set<string>();
  const unchangedAbs = new Set<string>();
  await Promise.all(
    toHash.map(async (f) => {
      const identity = await fileIdentity(f.abs);
      if (identity === undefined) return;
      identities.set(f.rel, identity);
      if (known.get(f.rel) === identity) {
        unchanged.add(f.rel);
        unchangedAbs.add(f.abs);
      }
    }),
  );
  const hashJobs = jobs.filter((j) => !unchangedAbs.has(j.abs));
  const total = jobs.reduce((n, j) => n + j.size, 0);
  const results = await hashFiles([...new Set(hashJobs.map((j) => j.abs))], hashJobs.reduce((n, j) => n + j.size, 0));
  for (const f of toHash) {
    if (unchanged.has(f.rel)) continue;
    const result = results.get(f.abs);
    if (!result || 'error' in result) problems.push(`${f.rel}: unreadable (${result && 'error' in result ? result.error : 'not hashed'})`);
    else if (result.sha256 !== listed.get(f.rel)) problems.push(`${f.rel}: content does not match SHA256SUMS`);
    else continue;
    identities.delete(f.rel);
  }
  const extraDigests = new Map<string, string>();
  for (const e of extras) {
    if (e.size === undefined) continue;
    const result = results.get(e.path);
    if (e.sha256 === undefined) {
      if (result && 'sha256' in result) extraDigests.set(e.path, result.sha256);
    } else if (!result || 'error' in result || result.sha256 !== e.sha256) problems.push(`${e.what}: does not match the sha256 recorded at install`);
  }
  return { problems, filesChecked: toHash.length, bytesChecked: total, filesHashed: toHash.length - unchanged.size, identities, extraDigests };
}
