/**
 * Replacing the agent binary so that a kill at any instant leaves a working
 * one at its path, the old or the new, never a part of either:
 *
 *   1. the new agent is written and fsynced under a temp name in the same
 *      folder (same file system, so rename(2) is atomic);
 *   2. the old one gets a second name, a hard link (a copy where links are
 *      refused), renamed over <binary>.previous;
 *   3. the new one is renamed over <binary>, and the folder fsynced.
 *
 * Before 3 the path holds the old binary, after it the new; systemd units
 * name the path, so they run whichever is there. Rollback swaps <binary> and
 * <binary>.previous in one renameat2(RENAME_EXCHANGE) where the kernel has it
 * (else link, rename, rename: the path is never empty). One self-update per
 * folder at a time: a flock on the folder itself, which leaves no lock file
 * beside the binary and dies with its holder. Temp names left by a killed
 * run (.<name>.self-update-*) are removed by the next one.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, constants, openSync } from 'node:fs';
import { chmod, chown, copyFile, link, lstat, readdir, realpath, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { ContainaiError, describeCause } from '../errors.ts';
import { exchangeNames } from '../fs/exchange.ts';
import { fsyncDir } from '../fs/atomic.ts';
import { tryLockExclusive, unlock } from '../release/sys.ts';

export const PREVIOUS_SUFFIX = '.previous';

export interface AgentTarget {
  /** The real path of the binary (links resolved): what is replaced. */
  path: string;
  dir: string;
  name: string;
  previous: string;
  mode: number;
  uid: number;
  gid: number;
}

/**
 * The binary to replace, checked: a regular file whose folder only its owner can write (when
 * root runs this, root): anyone else who could write there could swap the agent root runs.
 */
export async function resolveTarget(path: string): Promise<AgentTarget> {
  let real: string;
  try {
    real = await realpath(path);
  } catch (err) {
    throw new ContainaiError('NOT_FOUND', `${path} does not exist: self-update replaces an agent that is there`, {
      hint: 'install the first binary by hand, verified (docs/operators.md), then self-update it',
      cause: err,
    });
  }
  const st = await stat(real);
  if (!st.isFile()) throw new ContainaiError('INPUT', `${real} is not a regular file`);
  const dir = dirname(real);
  if (process.getuid?.() === 0) {
    const d = await stat(dir);
    if (d.uid !== 0 || (d.mode & 0o022) !== 0) {
      throw new ContainaiError('PERMISSION', `${dir} is not owned by root or is writable by others: an agent there could be swapped by someone else`, {
        hint: `chown root:root ${dir} && chmod go-w ${dir}`,
      });
    }
  }
  const name = basename(real);
  return { path: real, dir, name, previous: `${real}${PREVIOUS_SUFFIX}`, mode: st.mode & 0o777, uid: st.uid, gid: st.gid };
}

export function tempName(target: AgentTarget, tag: string): string {
  return join(target.dir, `.${target.name}.self-update-${tag}-${process.pid}-${randomBytes(4).toString('hex')}`);
}

export interface HeldFolderLock {
  release(): void;
}

/** One self-update (or rollback) of a folder at a time. */
export function lockFolder(target: AgentTarget): HeldFolderLock {
  let fd: number;
  try {
    fd = openSync(target.dir, constants.O_RDONLY | constants.O_DIRECTORY);
  } catch (err) {
    throw new ContainaiError('PERMISSION', `cannot open ${target.dir} to lock it: ${describeCause(err)}`, { cause: err });
  }
  if (!tryLockExclusive(fd)) {
    closeSync(fd);
    throw new ContainaiError('LOCKED', `another self-update of an agent in ${target.dir} is running`, { hint: 'wait for it to finish, then run again' });
  }
  return {
    release() {
      unlock(fd);
      closeSync(fd);
    },
  };
}

/** Temp files of runs that were killed (the lock is held: none belongs to a live run). */
export async function removeLeftovers(target: AgentTarget): Promise<string[]> {
  const prefix = `.${target.name}.self-update-`;
  const names = (await readdir(target.dir)).filter((n) => n.startsWith(prefix));
  for (const n of names) await rm(join(target.dir, n), { force: true });
  return names;
}

/** The new file gets the old one's mode (no set-id bits) and, when root runs this, its owner. */
export async function matchOwnerAndMode(file: string, target: AgentTarget): Promise<void> {
  await chmod(file, target.mode & 0o755);
  if (process.getuid?.() === 0) await chown(file, target.uid, target.gid);
}

/** Gives the current binary a second name and renames it over <binary>.previous. */
async function keepPrevious(target: AgentTarget): Promise<void> {
  const temp = tempName(target, 'prev');
  try {
    await link(target.path, temp);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EPERM' && code !== 'EXDEV' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') throw err;
    await copyFile(target.path, temp, constants.COPYFILE_EXCL);
    await matchOwnerAndMode(temp, target);
  }
  await rename(temp, target.previous);
}

/** Steps 2 and 3 of the header: the new agent (fsynced, smoke-tested) takes the path. */
export async function placeAgent(target: AgentTarget, newFile: string): Promise<void> {
  try {
    await keepPrevious(target);
    await rename(newFile, target.path);
    await fsyncDir(target.dir);
  } catch (err) {
    throw new ContainaiError('STATE', `could not put the new agent at ${target.path}: ${describeCause(err)}`, {
      hint: 'the path still holds a whole agent (the old one, or the new one if the last rename went through); run self-update again',
      cause: err,
    });
  }
}

/** Swaps <binary> and <binary>.previous; the path holds one whole agent at every instant. */
export async function swapWithPrevious(target: AgentTarget): Promise<void> {
  const prev = await lstat(target.previous).catch(() => undefined);
  if (!prev?.isFile()) {
    throw new ContainaiError('STATE', `there is no ${target.previous} to roll back to`, { hint: 'a rollback needs a self-update before it; nothing was changed' });
  }
  if ((await exchangeNames(target.path, target.previous)) === 'unsupported') {
    const temp = tempName(target, 'swap');
    await link(target.path, temp);
    await rename(target.previous, target.path);
    await rename(temp, target.previous);
  }
  await fsyncDir(target.dir);
}
