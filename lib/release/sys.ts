/**
 * The two system calls Node's fs does not offer and crash safety needs:
 * flock(2), so a lock dies with its holder (a SIGKILLed install leaves no lock
 * to clean up, and a reused pid cannot make a dead lock look alive), and
 * syncfs(2), which makes a whole staged release durable in one call instead of
 * thousands of fsyncs. Linux only, like the servers this runs on.
 */
import { dlopen, FFIType } from 'bun:ffi';

const LOCK_EX = 2;
const LOCK_NB = 4;
const LOCK_UN = 8;

type Libc = {
  symbols: {
    flock: (fd: number, op: number) => number;
    syncfs: (fd: number) => number;
  };
};

let libc: Libc | undefined;

function load(): Libc {
  libc ??= dlopen('libc.so.6', {
    flock: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
    syncfs: { args: [FFIType.i32], returns: FFIType.i32 },
  }) as unknown as Libc;
  return libc;
}

/** Takes an exclusive flock without waiting; false when another open file holds it. */
export function tryLockExclusive(fd: number): boolean {
  return load().symbols.flock(fd, LOCK_EX | LOCK_NB) === 0;
}

export function unlock(fd: number): void {
  load().symbols.flock(fd, LOCK_UN);
}

/** Flushes every dirty file and folder of the filesystem holding fd; false when the call failed. */
export function syncFilesystem(fd: number): boolean {
  return load().symbols.syncfs(fd) === 0;
}
