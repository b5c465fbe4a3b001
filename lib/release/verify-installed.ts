/**
 * The disk side of the one verifier (lib/manifest/verify.ts): the facts of an
 * installed release gathered from releases/<dir>/ and checked by the same
 * steps install ran on the stream. Used by install --verify-only,
 * check-health, rollback (of the release going live), the gate's rollback,
 * and install of the version already current.
 *
 *   1. signature  the tree's SHA256SUMS is the manifest install.json recorded
 *                 (manifestSha256), and .containai/'s kept material verifies over it
 *   2. manifest   the tree's release.json, naming the folder's version
 *   3. entries    every entry on disk judged (type, mode, link target, digest),
 *                 nothing unlisted, nothing missing; .containai/ holds only
 *                 what the install writes there
 *
 * Every problem is collected (a person repairs them all at once), each naming
 * its entry. A release of the first format goes through format1.ts's facts
 * and the same tree walk. Nothing here writes, except the verification stamp
 * when asked (check-health), which spares re-hashing files unchanged since the
 * last full verification.
 */
import { join } from 'node:path';
import { INSTALL_RECORD, KEPT_DIR, RELEASE_FILE, SUMS_FILE } from '../bundle/layout.ts';
import { sha256Bytes } from '../digest.ts';
import { ContainaiError, isContainaiError } from '../errors.ts';
import { fsError } from '../fs/errors.ts';
import { isReleaseRefusal, ReleaseRefusal } from '../manifest/refusal.ts';
import { EntryJudge, problemLine, readManifest, type SeenEntry, verifyManifestSignature } from '../manifest/verify.ts';
import type { TrustPolicy } from '../trust/policy.ts';
import { readReleaseLink, type LinkName } from './activate.ts';
import { hashFiles } from '../fs/hash-files.ts';
import { KEPT_FILES, readKeptSignatures, readSmallFile } from './kept.ts';
import { CURRENT_LINK, installLayout, versionOfDir } from './layout.ts';
import { describeRelease, type InstalledRelease } from './installed.ts';
import { type ManifestRecord, type RecordPlace } from './record.ts';
import { policyKey, readStamp, writeStamp } from './stamp.ts';
import { walkTree } from './tree.ts';

export interface ReleaseVerification {
  ok: boolean;
  link?: LinkName;
  release?: InstalledRelease;
  filesChecked: number;
  bytesChecked: number;
  /** How many files were hashed; the others were unchanged since the stamp's full verification. */
  filesHashed?: number;
  /** Whether a verification stamp spared unchanged files from re-hashing. */
  fromStamp?: boolean;
  /** Every problem, as a line naming its entry (releases/<dir>/<entry>: …). */
  problems: string[];
  /** The same problems as typed refusals, where they are (for callers that tell tampering from the rest). */
  refusals: ReleaseRefusal[];
  /** Set when the release could not be verified at all (a key file unreadable, no permission): not a finding about the release. */
  error?: ContainaiError;
}

export interface VerifyInstalledOptions {
  /** Which link to verify (default current), or a release folder by name. */
  link?: LinkName;
  dirName?: string;
  /** The trust policy the kept signature must satisfy again. */
  policy: TrustPolicy;
  /**
   * Use and renew the verification stamp (lib/release/stamp.ts): files unchanged since a full
   * verification younger than maxAgeMs are not hashed again. Off unless given: --verify-only changes nothing.
   */
  stamp?: { maxAgeMs: number };
}

/** What a judge of a release tree answers: the current format's EntryJudge, or the first format's. */
export interface TreeJudge {
  entry(found: SeenEntry): ReleaseRefusal | undefined;
  digest(path: string, sha256: string): ReleaseRefusal | undefined;
  missing(): ReleaseRefusal[];
}

export interface TreeCheck {
  refusals: ReleaseRefusal[];
  filesChecked: number;
  bytesChecked: number;
  filesHashed: number;
  /** Identities of the files that matched, as they were before hashing (for the stamp). */
  identities: Map<string, string>;
}

/**
 * Step 3 over a tree on disk: walks it without following links, judges every entry, hashes every
 * file on workers (largest first) except those whose identity the stamp knows, judges the digests.
 * `skip` names top-level entries checked apart (.containai/).
 */
export async function judgeTree(dir: string, judge: TreeJudge, skip: ReadonlySet<string>, known: ReadonlyMap<string, string> = new Map()): Promise<TreeCheck> {
  const refusals: ReleaseRefusal[] = [];
  const add = (r: ReleaseRefusal | undefined) => void (r && refusals.push(r));
  const entries = await walkTree(dir, skip);
  const files = entries.filter((e) => e.kind === 'file');
  for (const entry of entries) add(judge.entry({ path: entry.path, type: entry.kind, mode: entry.mode, target: entry.target }));
  const toHash = files.filter((f) => f.identity === undefined || known.get(f.path) !== f.identity).sort((a, b) => b.size - a.size);
  const digests = await hashFiles(toHash.map((f) => join(dir, f.path)), toHash.reduce((n, f) => n + f.size, 0), toHash.map((f) => f.size));
  const identities = new Map<string, string>();
  for (const file of files) {
    const hashed = digests.get(join(dir, file.path));
    if (hashed === undefined) {
      // Unchanged since the stamp's full verification.
      identities.set(file.path, file.identity as string);
      continue;
    }
    if ('error' in hashed) {
      add(new ReleaseRefusal('digest', `unreadable (${hashed.error})`, { entry: file.path }));
      continue;
    }
    const refusal = judge.digest(file.path, hashed.sha256);
    if (refusal) add(refusal);
    else if (file.identity) identities.set(file.path, file.identity);
  }
  for (const missing of judge.missing()) add(missing);
  refusals.sort((a, b) => (a.entry ?? '').localeCompare(b.entry ?? ''));
  return {
    refusals,
    filesChecked: files.length,
    bytesChecked: files.reduce((n, f) => n + f.size, 0),
    filesHashed: toHash.length,
    identities,
  };
}

/** .containai/ holds the files the install writes there, plain and 0644, in a 0755 folder, and nothing else. */
export async function checkKeptDir(dir: string, allowed: readonly string[]): Promise<ReleaseRefusal[]> {
  const refusals: ReleaseRefusal[] = [];
  const entries = await walkTree(join(dir, KEPT_DIR)).catch((err: NodeJS.ErrnoException) => {
    refusals.push(new ReleaseRefusal('missing', `cannot be read (${err.code ?? String(err)})`, { entry: KEPT_DIR }));
    return [];
  });
  for (const e of entries) {
    const path = `${KEPT_DIR}/${e.path}`;
    if (e.kind !== 'file' || !allowed.includes(e.path)) refusals.push(new ReleaseRefusal('unlisted', `the install never writes this ${e.kind} here`, { entry: path }));
    else if (e.mode !== 0o644) refusals.push(new ReleaseRefusal('mode', `has mode ${e.mode.toString(8).padStart(4, '0')}; the install writes 0644`, { entry: path }));
  }
  return refusals;
}

/** The release folder itself: the install makes it 0755; anything wider lets others swap its entries. */
export async function checkReleaseFolder(dir: string): Promise<ReleaseRefusal | undefined> {
  const { lstat } = await import('node:fs/promises');
  const info = await lstat(dir);
  const mode = info.mode & 0o7777;
  return mode === 0o755 ? undefined : new ReleaseRefusal('mode', `the release folder has mode ${mode.toString(8).padStart(4, '0')}; the install makes it 0755`, { entry: '.' });
}

/** Steps 1 and 2 from disk, then step 3: a release of the current format. */
async function verifyManifestRelease(dir: string, record: ManifestRecord, policy: TrustPolicy, known: ReadonlyMap<string, string>): Promise<TreeCheck & { sumsIdentity?: string }> {
  const fail = (refusal: ReleaseRefusal): TreeCheck => ({ refusals: [refusal], filesChecked: 0, bytesChecked: 0, filesHashed: 0, identities: new Map() });
  let sums: Uint8Array | undefined;
  let releaseJson: Uint8Array | undefined;
  let signatures;
  try {
    sums = await readSmallFile(join(dir, SUMS_FILE), 64 * 1024 * 1024);
    releaseJson = await readSmallFile(join(dir, RELEASE_FILE), 16 * 1024 * 1024);
    signatures = await readKeptSignatures(dir);
  } catch (err) {
    if (isContainaiError(err) && err.code === 'VERIFY') return fail(new ReleaseRefusal('manifest', err.message.replace(`${dir}/`, '')));
    throw err;
  }
  if (!sums) return fail(new ReleaseRefusal('missing', 'the signed manifest is not there', { entry: SUMS_FILE }));
  if (!releaseJson) return fail(new ReleaseRefusal('missing', 'the manifest lists it, and it is not there', { entry: RELEASE_FILE }));
  const expectedVersion = versionOfDir(dir.split('/').pop() as string);
  // The manifest install verified and recorded: without this an UNSIGNED release whose file and
  // SHA256SUMS line were changed together would verify, and a signed one would read as a policy mismatch.
  if (sha256Bytes(sums) !== record.manifestSha256) {
    return fail(new ReleaseRefusal('digest', `is not the manifest ${KEPT_DIR}/${INSTALL_RECORD} recorded at install (it was changed after install)`, { entry: SUMS_FILE }));
  }
  let manifest;
  try {
    await verifyManifestSignature(sums, signatures, policy);
    manifest = readManifest(sums, releaseJson, expectedVersion);
  } catch (err) {
    if (isReleaseRefusal(err)) return fail(err);
    throw err;
  }
  if (record.version !== expectedVersion) {
    return fail(new ReleaseRefusal('version', `.containai/install.json names ${record.version}, the folder ${expectedVersion}`));
  }
  const check = await judgeTree(dir, new EntryJudge(manifest), new Set([KEPT_DIR]), known);
  check.refusals.unshift(...(await checkKeptDir(dir, KEPT_FILES)));
  const folder = await checkReleaseFolder(dir);
  if (folder) check.refusals.unshift(folder);
  return check;
}

/** Verifies the release a link (or folder name) points at, thoroughly; see the module comment. */
export async function verifyInstalledRelease(installRoot: string, options: VerifyInstalledOptions): Promise<ReleaseVerification> {
  const layout = installLayout(installRoot);
  const link = options.dirName ? undefined : (options.link ?? CURRENT_LINK);
  const empty = { filesChecked: 0, bytesChecked: 0 };
  const fail = (problem: string, release?: InstalledRelease): ReleaseVerification => ({ ok: false, link, release, ...empty, problems: [problem], refusals: [] });
  let dirName: string;
  let dir: string;
  if (options.dirName) {
    dirName = options.dirName;
    dir = join(layout.releases, dirName);
  } else {
    const state = await readReleaseLink(layout, link as LinkName);
    if (state.kind === 'absent') return fail(`no ${link} release: ${join(installRoot, link as string)} does not exist`);
    if (state.kind === 'invalid') return fail(state.reason);
    dirName = state.dirName;
    dir = state.dir;
  }
  const release = await describeRelease(dir, dirName);
  if (!release.record) {
    const problem = `releases/${dirName}/${release.recordProblem}`;
    // Not a finding about the release: this user may not read it.
    if (/\((EACCES|EPERM)\)/.test(release.recordProblem ?? '')) {
      return { ...fail(problem, release), error: new ContainaiError('PERMISSION', problem, { hint: `this user may not read releases/${dirName}: run as root (the timer does)` }) };
    }
    return fail(problem, release);
  }
  const stampKey = options.stamp ? await policyKey(options.policy) : '';
  const stamp = options.stamp ? await readStamp(layout, dirName, stampKey, options.stamp.maxAgeMs) : undefined;
  const known = new Map(Object.entries(stamp?.files ?? {}));
  let check: TreeCheck;
  try {
    if (release.record.format === 2) {
      check = await verifyManifestRelease(dir, release.record, options.policy, known);
    } else {
      const { verifyFormat1OnDisk } = await import('./format1.ts');
      check = await verifyFormat1OnDisk(dir, release.record, release.recordPlace as RecordPlace, options.policy, known);
    }
  } catch (err) {
    const error = isContainaiError(err) ? err : fsError(err, `read releases/${dirName}`, dir);
    if (!error) throw err;
    return { ...fail(`releases/${dirName}: ${problemLine(error)}`, release), error };
  }
  const problems = check.refusals.map((r) => (r.entry !== undefined ? `releases/${dirName}/${r.message}` : `releases/${dirName}: ${r.message}`));
  const ok = problems.length === 0;
  if (ok && options.stamp) {
    await writeStamp(layout, {
      release: dirName,
      policyKey: stampKey,
      // A stamp renewed from an older one keeps its time: only a full verification restarts the clock.
      verifiedAt: stamp ? stamp.verifiedAt : new Date().toISOString(),
      files: Object.fromEntries(check.identities),
    });
  }
  return { ok, link, release, filesChecked: check.filesChecked, bytesChecked: check.bytesChecked, filesHashed: check.filesHashed, fromStamp: stamp !== undefined, problems, refusals: check.refusals };
}
