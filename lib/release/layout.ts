/**
 * Where things live under an install root (SPEC "The host"):
 *
 *   releases/<version>/   a complete, verified release: the payload's tree and .containai/
 *                         (install.json and the signature material that verified the manifest)
 *   current, previous     relative symlinks to releases/<dir>
 *   state/lock            the lock file (flock) and its holder
 *   state/floor.json      the downgrade floor, kept apart from releases/ so deleting a release cannot lower it
 *   state/events.jsonl    one JSON line per install, rollback, gate decision and refused verification
 *   state/gate.json       the release on trial (lib/gate)
 *   state/bad.json        versions that failed their gate
 *   state/downloads/      partial downloads a later run resumes (registry blobs)
 *
 * Work in progress is named so that the next run can recognise and remove it
 * after a crash: releases/.staging-*, releases/.trash-*, and .tmp-* symlinks
 * in the root. None of these is ever a target of current or previous.
 *
 * A forced reinstall of a version cannot reuse the folder current points at
 * (renaming a live tree away would leave current dangling), so the second copy
 * of a version lives in releases/<version>@2 and the first is removed after
 * the switch; "@" never appears in a version (see assertSafeVersion), so the
 * folder name still says which version it holds.
 */
import { join } from 'node:path';

export const RELEASES_DIR = 'releases';
export const CURRENT_LINK = 'current';
export const PREVIOUS_LINK = 'previous';
export const STATE_DIR = 'state';
export { INSTALL_RECORD, KEPT_DIR } from '../bundle/layout.ts';
export const STAGING_PREFIX = '.staging-';
export const TRASH_PREFIX = '.trash-';
export const TEMP_LINK_PREFIX = '.tmp-';
/** The next previous link, made before current moves (lib/release/activate.ts); completed or dropped by the next run. */
export const PENDING_PREVIOUS_PREFIX = '.pending-previous-';
/** Separates a version from the copy number in a release folder's name. */
export const COPY_SEPARATOR = '@';

export interface InstallLayout {
  root: string;
  releases: string;
  current: string;
  previous: string;
  state: string;
  lock: string;
  floor: string;
  events: string;
  gate: string;
  bad: string;
  downloads: string;
}

export function installLayout(root: string): InstallLayout {
  const state = join(root, STATE_DIR);
  return {
    root,
    releases: join(root, RELEASES_DIR),
    current: join(root, CURRENT_LINK),
    previous: join(root, PREVIOUS_LINK),
    state,
    lock: join(state, 'lock'),
    floor: join(state, 'floor.json'),
    events: join(state, 'events.jsonl'),
    gate: join(state, 'gate.json'),
    bad: join(state, 'bad.json'),
    downloads: join(state, 'downloads'),
  };
}

/** The symlink target written into current/previous: relative, so the root can be moved or mounted elsewhere. */
export function linkTarget(dirName: string): string {
  return `${RELEASES_DIR}/${dirName}`;
}

/** The version a release folder holds, from its name: "v1.2.3" and "v1.2.3@2" both hold v1.2.3. */
export function versionOfDir(dirName: string): string {
  const at = dirName.indexOf(COPY_SEPARATOR);
  return at === -1 ? dirName : dirName.slice(0, at);
}

/** Whether a name under releases/ is a finished release folder (not staging, trash or anything hidden). */
export function isReleaseDirName(name: string): boolean {
  return !name.startsWith('.');
}

export function isLeftover(name: string): boolean {
  return name.startsWith(STAGING_PREFIX) || name.startsWith(TRASH_PREFIX) || name.startsWith(TEMP_LINK_PREFIX);
}

/** The first free folder name for a new copy of version: v1, else v1@2, v1@3, … */
export function freeReleaseDirName(version: string, taken: ReadonlySet<string>): string {
  if (!taken.has(version)) return version;
  for (let n = 2; ; n++) {
    const name = `${version}${COPY_SEPARATOR}${n}`;
    if (!taken.has(name)) return name;
  }
}
