/**
 * Ordinary conditions of a file system are not bugs: a read-only mount, a
 * folder root cannot write, a full disk. Each gets a message that says what
 * happened where, and a hint that says what to do; only errors without an
 * errno stay "unexpected" (lib/cli/main.ts).
 */
import { ContainaiError, describeCause } from '../errors.ts';

const HINTS: Record<string, (where: string) => string> = {
  EROFS: (where) => `${where} is on a read-only file system: remount it read-write, or choose another --install-root`,
  EACCES: (where) => `this user may not use ${where}: run as root (sudo), or fix the owner and mode`,
  EPERM: (where) => `the operation was not permitted on ${where}: run as root, and check it is not immutable (lsattr)`,
  ENOSPC: (where) => `the file system holding ${where} is full: free space (containai-host prune, docker image prune) and run again`,
  EDQUOT: (where) => `the disk quota for ${where} is used up: free space and run again`,
  ENOTDIR: (where) => `a part of ${where} is a file where a folder belongs: look at the path`,
  EMFILE: () => 'too many open files: raise the limit (ulimit -n) and run again',
};

/** A system error as a ContainaiError naming what was being done; undefined for an error without an errno. */
export function fsError(err: unknown, doing: string, where: string): ContainaiError | undefined {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (typeof code !== 'string' || !/^E[A-Z]+$/.test(code)) return undefined;
  const hint = HINTS[code]?.(where) ?? `check ${where} and run again`;
  return new ContainaiError('STATE', `cannot ${doing}: ${describeCause(err)}`, { hint, cause: err });
}
