/**
 * A release's manifest, read and checked whole: SHA256SUMS (what is signed)
 * and the release.json it lists. After readManifest returns, every entry the
 * release may hold is known with its type, mode, link target and digest, and
 * the set is coherent: each file has exactly one line in SHA256SUMS, every
 * parent is a folder of the release, no name is reserved, and every link
 * leads to a file or folder of the release without passing through a link
 * (entry-tree.ts). Whether the manifest is *trusted* is the signature step's
 * business (verify.ts); this module only refuses what no release can be.
 */
import { KEPT_DIR, RELEASE_FILE, SUMS_FILE } from '../bundle/layout.ts';
import { parseSumsMap, sha256Bytes } from '../digest.ts';
import { isContainaiError } from '../errors.ts';
import { quote } from '../archive/policy.ts';
import { printableName } from '../text.ts';
import { EntryTree, parentsFirst, pathProblem } from './entry-tree.ts';
import { ReleaseRefusal } from './refusal.ts';
import { parseReleaseJson, RELEASE_FILE_MAX_BYTES, type ReleaseEntry } from './release-json.ts';

/** The SHA256SUMS of 50,000 files is about 4 MB. */
export const SUMS_MAX_BYTES = 64 * 1024 * 1024;

export interface Manifest {
  format: 2;
  version: string;
  /** SHA256SUMS exactly as signed. */
  sums: Uint8Array;
  sumsSha256: string;
  /** The sha256 of every regular file but SHA256SUMS, by path. */
  digests: ReadonlyMap<string, string>;
  /** Every entry of the payload (SHA256SUMS and release.json included), by path. */
  entries: ReadonlyMap<string, ReleaseEntry>;
}

/** Names the payload may never hold: the install writes them. */
export const RESERVED_NAMES: readonly string[] = [KEPT_DIR];

/** The digests SHA256SUMS lists, or the manifest refusal that says why it cannot be read. */
export function readSums(sums: Uint8Array): Map<string, string> {
  if (sums.length > SUMS_MAX_BYTES) throw new ReleaseRefusal('manifest', `${SUMS_FILE} is ${sums.length} bytes (at most ${SUMS_MAX_BYTES})`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(sums);
  } catch {
    throw new ReleaseRefusal('manifest', `${SUMS_FILE} is not UTF-8 text`);
  }
  try {
    return parseSumsMap(text);
  } catch (err) {
    throw new ReleaseRefusal('manifest', isContainaiError(err) ? err.message : String(err));
  }
}

/**
 * The manifest from SHA256SUMS and release.json's bytes. release.json must be the file SHA256SUMS
 * lists (its digest), of the current format, naming `expectedVersion` when one is given.
 */
export function readManifest(sums: Uint8Array, releaseJson: Uint8Array, expectedVersion?: string): Manifest {
  const digests = readSums(sums);
  const listed = digests.get(RELEASE_FILE);
  if (listed === undefined) throw new ReleaseRefusal('manifest', `${SUMS_FILE} does not list ${RELEASE_FILE}, so nothing signed says which release this is`);
  if (releaseJson.length > RELEASE_FILE_MAX_BYTES) throw new ReleaseRefusal('manifest', `${RELEASE_FILE} is ${releaseJson.length} bytes (at most ${RELEASE_FILE_MAX_BYTES})`);
  if (sha256Bytes(releaseJson) !== listed) throw new ReleaseRefusal('digest', `does not match its line in ${SUMS_FILE}`, { entry: RELEASE_FILE });
  const parsed = parseReleaseJson(new TextDecoder().decode(releaseJson));
  if (typeof parsed === 'string') throw new ReleaseRefusal('manifest', parsed);
  if (parsed.format !== 2) throw new ReleaseRefusal('manifest', `${RELEASE_FILE} is of the first format, yet ${SUMS_FILE} came apart from the payload`);
  const { version, entries } = parsed;
  if (expectedVersion !== undefined && version !== expectedVersion) {
    throw new ReleaseRefusal('version', `this is release ${printableName(version)} (its ${RELEASE_FILE}), not ${expectedVersion}`);
  }
  checkCoherent(entries, digests);
  return { format: 2, version, sums, sumsSha256: sha256Bytes(sums), digests, entries };
}

/** Every rule that ties release.json's entries and SHA256SUMS's lines into one tree. */
function checkCoherent(entries: ReadonlyMap<string, ReleaseEntry>, digests: ReadonlyMap<string, string>): void {
  const tree = new EntryTree();
  for (const path of parentsFirst(entries.keys(), (p) => p)) {
    const entry = entries.get(path) as ReleaseEntry;
    const problem = pathProblem(path);
    if (problem) throw new ReleaseRefusal('manifest', `${RELEASE_FILE} lists an entry with ${problem}`, { entry: path });
    if (RESERVED_NAMES.includes(path.split('/')[0] as string)) throw new ReleaseRefusal('manifest', 'a name the install reserves for itself', { entry: path });
    const added = tree.add(path, entry.type, entry.type === 'symlink' ? entry.target : undefined);
    if (added) throw new ReleaseRefusal('manifest', `${RELEASE_FILE}: ${added}`, { entry: path });
    if (entry.type === 'symlink' && pathProblemOfTarget(entry.target)) {
      throw new ReleaseRefusal('link', `its target ${quote(entry.target)} ${pathProblemOfTarget(entry.target)}`, { entry: path });
    }
    const hasLine = digests.has(path);
    if (entry.type === 'file' && path !== SUMS_FILE && !hasLine) throw new ReleaseRefusal('manifest', `a file ${SUMS_FILE} does not list`, { entry: path });
    if (entry.type !== 'file' && hasLine) throw new ReleaseRefusal('manifest', `${SUMS_FILE} lists it, but ${RELEASE_FILE} says it is a ${entry.type}`, { entry: path });
  }
  for (const path of digests.keys()) {
    if (!entries.has(path)) throw new ReleaseRefusal('manifest', `${SUMS_FILE} lists it, but ${RELEASE_FILE} does not`, { entry: path });
  }
  for (const required of [SUMS_FILE, RELEASE_FILE]) {
    if (entries.get(required)?.type !== 'file') throw new ReleaseRefusal('manifest', `${RELEASE_FILE} does not list it as a file`, { entry: required });
  }
  const bad = tree.firstBadLink();
  if (bad) throw new ReleaseRefusal('link', `-> ${quote(bad.link.target ?? '')} ${bad.problem}`, { entry: bad.link.path });
}


/** The text rules on a link target itself (where it leads is the tree's business). */
function pathProblemOfTarget(target: string): string | undefined {
  if (target.startsWith('/')) return 'is absolute';
  if (Buffer.byteLength(target) > 1024) return 'is longer than 1024 bytes';
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f\\]/.test(target)) return 'holds a control character or backslash';
  return undefined;
}
