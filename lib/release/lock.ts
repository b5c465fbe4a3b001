/**
 * One install, rollback or prune at a time per install root (Deployer's
 * deploy:lock, with the kernel keeping the lock): state/lock is flocked for the
 * whole operation and holds a JSON line naming its holder, so a second run can
 * say who is working. The lock is released by the kernel when its holder dies,
 * however it dies, so a stale lock from a dead pid is simply taken over.
 */
import { closeSync, mkdirSync, openSync, readFileSync, writeSync, ftruncateSync } from 'node:fs';
import { z } from 'zod';
import { ContainaiError } from '../errors.ts';
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

function readHolder(path: string): LockHolder | undefined {
  try {
    const parsed = HolderSchema.safeParse(JSON.parse(readFileSync(path, 'utf8')));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Takes the lock, waiting up to waitMs for another holder to finish.
 * Throws LOCKED naming the holder when the wait runs out.
 */
export async function acquireLock(layout: InstallLayout, command: string, waitMs: number): Promise<HeldLock> {
  mkdirSync(layout.state, { recursive: true, mode: 0o755 });
  const fd = openSync(layout.lock, 'a+', 0o644);
  const deadline = Date.now() + waitMs;
  try {
    while (!tryLockExclusive(fd)) {
      if (Date.now() >= deadline) {
        const holder = readHolder(layout.lock);
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
  const staleHolder = readHolder(layout.lock);
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
