/**
 * Moving current and previous. Each change is one rename(2) of a freshly made
 * symlink over the old one (Deployer's deploy:symlink), followed by an fsync of
 * the root, so at every instant current names a complete release and after a
 * power cut it names the one we last reported. Rollback's swap of the two is
 * one renameat2 exchange where Linux allows it. Targets are always relative
 * ("releases/<dir>").
 */
import { randomBytes } from 'node:crypto';
import { lstat, readlink, rename, rm, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { fsyncDir } from '../fs/atomic.ts';
import { exchangeNames, type ExchangeOutcome } from '../fs/exchange.ts';
import { CURRENT_LINK, type InstallLayout, linkTarget, PENDING_PREVIOUS_PREFIX, PREVIOUS_LINK, RELEASES_DIR, TEMP_LINK_PREFIX, versionOfDir } from './layout.ts';

export type LinkName = typeof CURRENT_LINK | typeof PREVIOUS_LINK;

export type LinkState =
  | { kind: 'absent' }
  | { kind: 'release'; dirName: string; dir: string }
  /** Present but not a relative link to a folder in releases/: never followed. */
  | { kind: 'invalid'; reason: string };

const DIR_NAME = /^[A-Za-z0-9][A-Za-z0-9._+@-]*$/;

/** Reads current or previous without following anything that leaves releases/. */
export async function readReleaseLink(layout: InstallLayout, name: LinkName): Promise<LinkState> {
  const path = join(layout.root, name);
  const info = await lstat(path).catch(() => undefined);
  if (!info) return { kind: 'absent' };
  if (!info.isSymbolicLink()) return { kind: 'invalid', reason: `${name} is not a symlink` };
  const target = await readlink(path);
  const prefix = `${RELEASES_DIR}/`;
  const dirName = target.startsWith(prefix) ? target.slice(prefix.length) : '';
  if (!DIR_NAME.test(dirName) || dirName.includes('..')) {
    return { kind: 'invalid', reason: `${name} points at "${target}", not at a folder in ${RELEASES_DIR}/` };
  }
  const dir = join(layout.releases, dirName);
  const target_ = await lstat(dir).catch(() => undefined);
  if (!target_) return { kind: 'invalid', reason: `${name} points at ${target}, which does not exist` };
  if (!target_.isDirectory()) return { kind: 'invalid', reason: `${name} points at ${target}, which is not a folder` };
  return { kind: 'release', dirName, dir };
}

/**
 * The calls that commit a switch, as one seam: a test records them to show that every rename that
 * commits is followed by an fsync of the install root (a kill cannot show lost durability).
 */
export interface SwitchIo {
  rename(from: string, to: string): Promise<void>;
  fsyncDir(dir: string): Promise<void>;
  exchange(a: string, b: string): Promise<ExchangeOutcome>;
}

export const SYSTEM_IO: SwitchIo = { rename, fsyncDir, exchange: exchangeNames };

/** Points name at releases/<dirName> with one rename of a fresh symlink. */
export async function pointLink(layout: InstallLayout, name: LinkName, dirName: string, io: SwitchIo = SYSTEM_IO): Promise<void> {
  const temp = join(layout.root, `${TEMP_LINK_PREFIX}${name}-${process.pid}-${randomBytes(4).toString('hex')}`);
  await symlink(linkTarget(dirName), temp);
  try {
    await io.rename(temp, join(layout.root, name));
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
  await io.fsyncDir(layout.root);
}

export async function removeLink(layout: InstallLayout, name: LinkName, io: SwitchIo = SYSTEM_IO): Promise<void> {
  await rm(join(layout.root, name), { force: true });
  await io.fsyncDir(layout.root);
}

/**
 * Makes dirName current. The old current becomes previous, unless it holds the
 * same version (a forced reinstall), in which case previous stays where it was.
 * current moves first: a crash between the two renames leaves the new release
 * current and the older previous intact.
 */
export async function activateRelease(layout: InstallLayout, dirName: string, io: SwitchIo = SYSTEM_IO): Promise<{ oldCurrent?: string }> {
  const old = await readReleaseLink(layout, CURRENT_LINK);
  const movesPrevious = old.kind === 'release' && old.dirName !== dirName && versionOfDir(old.dirName) !== versionOfDir(dirName);
  // previous's new link is made first, under a name the next run recognises: a crash after current
  // moved and before previous did is completed by cleanup (completePendingPrevious), so the release
  // that was current is never left named by no link.
  const pending = movesPrevious ? await writePendingPrevious(layout, old.dirName) : undefined;
  await pointLink(layout, CURRENT_LINK, dirName, io);
  if (pending) {
    await io.rename(pending, join(layout.root, PREVIOUS_LINK));
    await io.fsyncDir(layout.root);
  }
  return { oldCurrent: old.kind === 'release' ? old.dirName : undefined };
}

async function writePendingPrevious(layout: InstallLayout, dirName: string): Promise<string> {
  const pending = join(layout.root, `${PENDING_PREVIOUS_PREFIX}${process.pid}-${randomBytes(4).toString('hex')}`);
  await symlink(linkTarget(dirName), pending);
  return pending;
}

/**
 * After a crash between the two renames of an activation: the pending previous link names the
 * release that was current before; when current has moved on from it, it becomes previous, else it
 * is dropped (the crash came before the switch). Call with the lock held. Says what it did.
 */
export async function completePendingPrevious(layout: InstallLayout, name: string, io: SwitchIo = SYSTEM_IO): Promise<'completed' | 'dropped'> {
  const path = join(layout.root, name);
  const target = await readlink(path).catch(() => '');
  const dirName = target.startsWith(`${RELEASES_DIR}/`) ? target.slice(RELEASES_DIR.length + 1) : '';
  const current = await readReleaseLink(layout, CURRENT_LINK);
  const exists = DIR_NAME.test(dirName) && !dirName.includes('..') && (await lstat(join(layout.releases, dirName)).catch(() => undefined))?.isDirectory() === true;
  if (exists && current.kind === 'release' && current.dirName !== dirName) {
    await io.rename(path, join(layout.root, PREVIOUS_LINK));
    await io.fsyncDir(layout.root);
    return 'completed';
  }
  await rm(path, { force: true });
  return 'dropped';
}

/**
 * Swaps current and previous (rollback), both naming releases. One
 * renameat2(RENAME_EXCHANGE) where the kernel and file system have it: at no
 * instant, and after no crash, do both name the same release. Elsewhere the
 * two renames, current first, as activateRelease does. Says which was used.
 */
export async function swapCurrentAndPrevious(
  layout: InstallLayout,
  currentDir: string,
  previousDir: string,
  io: SwitchIo = SYSTEM_IO,
): Promise<'exchange' | 'renames'> {
  if ((await io.exchange(join(layout.root, CURRENT_LINK), join(layout.root, PREVIOUS_LINK))) === 'exchanged') {
    await io.fsyncDir(layout.root);
    return 'exchange';
  }
  const pending = await writePendingPrevious(layout, currentDir);
  await pointLink(layout, CURRENT_LINK, previousDir, io);
  await io.rename(pending, join(layout.root, PREVIOUS_LINK));
  await io.fsyncDir(layout.root);
  return 'renames';
}
