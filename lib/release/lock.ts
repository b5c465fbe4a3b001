/**
 * One install, rollback or prune at a time per install root (Deployer's
 * deploy:lock, with the kernel keeping the lock): state/lock is flocked for the
 * whole operation and holds a JSON line naming its holder, so a second run can
 * say who is working. The lock is released by the kernel when its holder dies,
 * however it dies, so a stale lock from a dead pid is simply taken over.
 */
import { closeSync, constants, fstatSync, ftruncateSync, lstatSync, mkdirSync, openSync, readSync, writeSync } from 'node:fs';
import { z } from 'zod';
import { ContainaiError } from '../errors.ts';
import { assertLayoutFolders } from './guard.ts';
import type { InstallLayout } from './layout.ts';
import { tryLockExclusive, unlock } from './sys.ts';

const HolderSchema = z.object({ pid: z.number().int(), command: z.string(), since: z.string() });
export type LockHolder = z.infer<typeof HolderSchema>;

export interface HeldLock {
  /** Who held the lock file last before us, if it was not released cleanly (a crash). */
  staleHolder?: LockHolder;
  release(): void;
}

const POLL_MS = 100;

/** Read through the fd we opened, never by path: the path is what an attacker could swap. */
function readHolder(fd: number): LockHolder | undefined {
  try {
    const buffer = Buffer.alloc(Math.min(fstatSync(fd).size, 64 * 1024));
    const length = readSync(fd, buffer, 0, buffer.length, 0);
    const parsed = HolderSchema.safeParse(JSON.parse(buffer.subarray(0, length).toString('utf8')));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

function lockRefused(layout: InstallLayout, what: string, cause?: unknown): ContainaiError {
  return new ContainaiError('STATE', `${layout.lock} ${what}; refusing to use it as the lock`, {
    hint: `the lock must be a plain file only root writes: look at it, remove it (rm ${layout.lock}) and run again`,
    cause,
  });
}

/**
 * Opens state/lock without following a symlink (root truncates and writes it),
 * and makes sure the file opened is the plain, singly linked state/lock still
 * in a real state/ folder: state/ swapped for a link between the check and the
 * open would otherwise hand us a file elsewhere.
 */
function openLockFile(layout: InstallLayout): number {
  let fd: number;
  try {
    fd = openSync(layout.lock, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o644);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ELOOP') throw lockRefused(layout, 'is a symlink', err);
    throw err;
  }
  try {
    const opened = fstatSync(fd);
    const named = lstatSync(layout.lock, { throwIfNoEntry: false });
    if (!opened.isFile()) throw lockRefused(layout, 'is not a regular file');
    if (opened.nlink !== 1) throw lockRefused(layout, `has ${opened.nlink} hard links`);
    if (!lstatSync(layout.state).isDirectory() || named?.ino !== opened.ino || named.dev !== opened.dev) {
      throw lockRefused(layout, 'changed while it was opened');
    }
    return fd;
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}

/**
 * Takes the lock, waiting up to waitMs for another holder to finish.
 * Throws LOCKED naming the holder when the wait runs out.
 */
export async function acquireLock(layout: InstallLayout, command: string, waitMs: number): Promise<HeldLock> {
  await assertLayoutFolders(layout);
  mkdirSync(layout.state, { recursive: true, mode: 0o755 });
  const fd = openLockFile(layout);
  const deadline = Date.now() + waitMs;
  try {
    while (!tryLockExclusive(fd)) {
      if (Date.now() >= deadline) {
        const holder = readHolder(fd);
        const who = holder
          ? `pid ${holder.pid} (${holder.command}, since ${holder.since})`
          : 'another process';
        throw new ContainaiError('LOCKED', `the install root ${layout.root} is locked by ${who}`, {
          hint: 'wait for it to finish and run again (or raise --lock-wait); the lock frees itself if that process dies',
          details: holder ? { holder } : undefined,
        });
      }
      await Bun.sleep(Math.min(POLL_MS, Math.max(1, deadline - Date.now())));
    }
  } catch (err) {
    closeSync(fd);
    throw err;
  }
  // We hold the flock. A holder line still present means the last holder never released it: it crashed.
  const staleHolder = readHolder(fd);
  const holder: LockHolder = { pid: process.pid, command, since: new Date().toISOString() };
  ftruncateSync(fd, 0);
  writeSync(fd, `${JSON.stringify(holder)}\n`, 0);
  let released = false;
  return {
    staleHolder,
    release() {
      if (released) return;
      released = true;
      try {
        ftruncateSync(fd, 0);
        unlock(fd);
      } finally {
        closeSync(fd);
      }
    },
  };
}
