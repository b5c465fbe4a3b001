/**
 * Reading and verifying what is installed under an install root. Used by
 * `status`, `install --verify-only` and check-health (issue 5).
 *
 * - inspectInstalledRelease(root): cheap: where current and previous point,
 *   every release folder with its install.json, and problems found on the way
 *   (a link that leaves releases/, a damaged install.json). Never hashes.
 * - verifyInstalledRelease(root, { link, allowUnsigned }): thorough: the link
 *   resolves to a folder inside releases/, install.json is valid and names the
 *   folder's version, release.json (inside the signed payload) names that
 *   version too, every file matches SHA256SUMS and no file is unlisted
 *   (SHA256SUMS, install.json and the kept bundle are the only extras), and
 *   the kept bundle is there and verifies again (payload.sha256, the payload
 *   install.json names, the signature under the policy, and SHA256SUMS is
 *   byte for byte the one inside that payload; an UNSIGNED release passes
 *   only when the policy allows unsigned).
 * Neither changes anything on disk.
 */
import { lstat, readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parseSums } from '../digest.ts';
import { SUMS_FILE } from '../bundle/layout.ts';
import { bundleFileName } from '../bundle/layout.ts';
import { parseReleaseManifest, RELEASE_FILE, RELEASE_FILE_MAX_BYTES } from '../bundle/manifest.ts';
import { isContainaiError } from '../errors.ts';
import { readReleaseLink, type LinkName, type LinkState } from './activate.ts';
import { CURRENT_LINK, INSTALL_RECORD, installLayout, isReleaseDirName, PREVIOUS_LINK, versionOfDir } from './layout.ts';
import { readInstallRecord, type InstallRecord } from './record.ts';
import { checkTreeAgainstSums } from './tree.ts';
import { fileIdentity, policyKey, readStamp, writeStamp } from './stamp.ts';
import { verifyKeptBundle, type ReleasePolicy } from './trust.ts';

export interface InstalledRelease {
  /** Folder name under releases/ (v1.2.3, or v1.2.3@2 for a forced reinstall). */
  dirName: string;
  dir: string;
  version: string;
  record?: InstallRecord;
  /** Why install.json could not be read, when it could not. */
  recordProblem?: string;
}

export interface InstalledState {
  root: string;
  current?: InstalledRelease;
  previous?: InstalledRelease;
  releases: InstalledRelease[];
  problems: string[];
}

async function describeRelease(dir: string, dirName: string): Promise<InstalledRelease> {
  const record = await readInstallRecord(dir);
  return typeof record === 'string'
    ? { dirName, dir, version: versionOfDir(dirName), recordProblem: record }
    : { dirName, dir, version: record.version, record };
}

function linkProblem(name: LinkName, state: LinkState): string | undefined {
  return state.kind === 'invalid' ? state.reason : undefined;
}

/** Where current and previous point and what releases/ holds. */
export async function inspectInstalledRelease(installRoot: string): Promise<InstalledState> {
  const layout = installLayout(installRoot);
  const problems: string[] = [];
  const names = await readdir(layout.releases).catch(() => [] as string[]);
  const releases: InstalledRelease[] = [];
  for (const name of names.filter(isReleaseDirName).sort()) {
    const dir = join(layout.releases, name);
    if (!(await stat(dir).catch(() => undefined))?.isDirectory()) continue;
    releases.push(await describeRelease(dir, name));
  }
  const find = async (name: LinkName): Promise<InstalledRelease | undefined> => {
    const state = await readReleaseLink(layout, name);
    const problem = linkProblem(name, state);
    if (problem) problems.push(problem);
    return state.kind === 'release' ? releases.find((r) => r.dirName === state.dirName) : undefined;
  };
  const current = await find(CURRENT_LINK);
  const previous = await find(PREVIOUS_LINK);
  for (const r of releases) if (r.recordProblem && (r === current || r === previous)) problems.push(`releases/${r.dirName}/${r.recordProblem}`);
  return { root: installRoot, current, previous, releases, problems };
}

/**
 * release.json must name the version install.json records: the manifest is inside the signed payload
 * (lib/bundle/manifest.ts), install.json is not. Its bytes are checked against SHA256SUMS with the rest.
 */
async function checkReleaseManifest(dir: string, version: string): Promise<string | undefined> {
  const info = await lstat(join(dir, RELEASE_FILE)).catch(() => undefined);
  if (!info?.isFile()) return `${RELEASE_FILE}: ${info ? 'not a regular file' : 'missing'} (nothing signed says which release this is)`;
  if (info.size > RELEASE_FILE_MAX_BYTES) return `${RELEASE_FILE}: ${info.size} bytes (at most ${RELEASE_FILE_MAX_BYTES})`;
  const text = await readFile(join(dir, RELEASE_FILE), 'utf8').catch((err: NodeJS.ErrnoException) => ({ error: err.code ?? String(err) }));
  if (typeof text !== 'string') return `${RELEASE_FILE}: unreadable (${text.error})`;
  const manifest = parseReleaseManifest(text);
  if (typeof manifest === 'string') return manifest;
  if (manifest.version !== version) return `${RELEASE_FILE} names release ${manifest.version}, but ${INSTALL_RECORD} names ${version}`;
  return undefined;
}

export interface ReleaseVerification {
  ok: boolean;
  link: LinkName;
  release?: InstalledRelease;
  filesChecked: number;
  bytesChecked: number;
  /** How many files were hashed; the others were unchanged since the stamp's full verification. */
  filesHashed?: number;
  /** Whether a verification stamp spared unchanged files and the kept bundle from re-hashing. */
  fromStamp?: boolean;
  problems: string[];
}

export interface VerifyInstalledOptions {
  /** Which link to verify (default current). */
  link?: LinkName;
  /** The trust policy the kept bundle must satisfy again. */
  policy: ReleasePolicy;
  /** Verify the kept bundle's signature again (default true); its sha256 is always checked. */
  checkSignature?: boolean;
  /**
   * Use and renew the verification stamp (lib/release/stamp.ts): files and a kept bundle unchanged
   * since a full verification younger than maxAgeMs are not hashed again. Off unless given: it writes
   * state/, and --verify-only changes nothing.
   */
  stamp?: { maxAgeMs: number };
}

/** Verifies the release a link points at, thoroughly; see the module comment. */
export async function verifyInstalledRelease(installRoot: string, options: VerifyInstalledOptions): Promise<ReleaseVerification> {
  const link = options.link ?? CURRENT_LINK;
  const layout = installLayout(installRoot);
  const fail = (problems: string[], release?: InstalledRelease): ReleaseVerification => ({
    ok: false, link, release, filesChecked: 0, bytesChecked: 0, problems,
  });
  const state = await readReleaseLink(layout, link);
  if (state.kind === 'absent') return fail([`no ${link} release: ${join(installRoot, link)} does not exist`]);
  if (state.kind === 'invalid') return fail([state.reason]);
  const release = await describeRelease(state.dir, state.dirName);
  if (!release.record) return fail([`releases/${state.dirName}/${release.recordProblem}`], release);
  const record = release.record;
  if (record.version !== versionOfDir(state.dirName)) {
    return fail([`releases/${state.dirName}/${INSTALL_RECORD} names version ${record.version}`], release);
  }
  // SHA256SUMS is read once, as bytes: the files are checked against these lines, and these bytes against
  // the SHA256SUMS inside the kept bundle's signed payload (lib/bundle/payload-sums.ts).
  const sumsPath = join(state.dir, SUMS_FILE);
  const sumsIdentity = await fileIdentity(sumsPath);
  const sumsInfo = await lstat(sumsPath).catch(() => undefined);
  if (!sumsInfo?.isFile()) return fail([`releases/${state.dirName}/${SUMS_FILE}: ${sumsInfo ? 'not a regular file' : 'missing'}`], release);
  let sumsBytes: Uint8Array;
  let sums;
  try {
    sumsBytes = await readFile(sumsPath);
    sums = parseSums(new TextDecoder().decode(sumsBytes));
  } catch (err) {
    return fail([isContainaiError(err) ? err.message : `${SUMS_FILE}: missing or unreadable`], release);
  }
  const bundleName = bundleFileName(record.version);
  const bundlePath = join(state.dir, bundleName);
  const stampKey = options.stamp ? await policyKey(options.policy) : '';
  const stamp = options.stamp ? await readStamp(layout, state.dirName, stampKey, options.stamp.maxAgeMs) : undefined;
  // The identity is taken before the bundle is read: a bundle changed while it is verified differs next time.
  const bundleIdentity = await fileIdentity(bundlePath);
  const bundleIsFile = (await stat(bundlePath).catch(() => undefined))?.isFile() === true;
  // SHA256SUMS unchanged since the full verification that compared it with the payload's, and the bundle too.
  const bundleUnchanged = stamp !== undefined && bundleIdentity !== undefined && stamp.bundle === bundleIdentity && sumsIdentity !== undefined && stamp.sums === sumsIdentity;
  const checkBundle = bundleIsFile && options.checkSignature !== false && !bundleUnchanged;
  // An unsigned release's kept bundle is only compared with the digest install.json recorded: it is hashed
  // with the tree, on its workers, largest first, instead of alone on one core afterwards. A signed one is
  // verified after the tree (its payload hashed as the bundle streams, lib/release/trust.ts): run beside
  // the tree it gained nothing on two cores and its extra worker raised the peak memory.
  const bundleWithTree = checkBundle && record.signer === 'UNSIGNED' && options.policy.allowUnsigned;
  const extraHashes = bundleWithTree ? [{ path: bundlePath, what: bundleName }] : [];
  const check = await checkTreeAgainstSums(state.dir, sums, new Set([SUMS_FILE, INSTALL_RECORD, bundleName]), extraHashes, new Map(Object.entries(stamp?.files ?? {})));
  const problems = check.problems.map((p) => `releases/${state.dirName}/${p}`);
  const manifestProblem = await checkReleaseManifest(state.dir, record.version);
  if (manifestProblem) problems.push(`releases/${state.dirName}/${manifestProblem}`);
  if (!bundleIsFile) problems.push(`releases/${state.dirName}/${bundleName}: the kept bundle is missing`);
  if (problems.length === 0 && checkBundle) {
    try {
      await verifyKeptBundle(bundlePath, record, options.policy, { treeSums: sumsBytes, bundleSha256: check.extraDigests.get(bundlePath) });
    } catch (err) {
      problems.push(`kept bundle ${bundleName}: ${isContainaiError(err) ? err.message : String(err)}`);
    }
  }
  const ok = problems.length === 0;
  if (ok && options.stamp && bundleIdentity && sumsIdentity && options.checkSignature !== false) {
    await writeStamp(layout, {
      release: state.dirName,
      policyKey: stampKey,
      // A stamp renewed from an older one keeps its time: only a full verification restarts the clock.
      verifiedAt: stamp ? stamp.verifiedAt : new Date().toISOString(),
      bundle: bundleIdentity,
      sums: sumsIdentity,
      files: Object.fromEntries(check.identities),
    });
  }
  return { ok, link, release, filesChecked: check.filesChecked, bytesChecked: check.bytesChecked, filesHashed: check.filesHashed, fromStamp: stamp !== undefined, problems };
}
