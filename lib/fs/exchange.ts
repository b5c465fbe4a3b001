/**
 * Swapping two names in one step. Two rename(2) calls cannot swap current and
 * previous atomically: between them both name the same release, and a crash
 * there leaves it so. Linux has renameat2(RENAME_EXCHANGE) (3.15+, glibc
 * 2.28+), which swaps two existing names in one operation: after a crash
 * either both moved or neither did. node:fs has no binding for it, so it is
 * called through bun:ffi from glibc. When that is not possible (no glibc, an
 * old kernel, a file system that does not support the flag) the caller is
 * told "unsupported" and keeps its two-rename sequence. The kernel changes
 * nothing when the call fails.
 */

export type ExchangeOutcome = 'exchanged' | 'unsupported';

const AT_FDCWD = -100;
const RENAME_EXCHANGE = 2;
/** errno values that mean "this kernel or file system cannot exchange": fall back. */
const UNSUPPORTED_ERRNO = new Set([22 /* EINVAL */, 38 /* ENOSYS */, 95 /* EOPNOTSUPP */]);
const ERRNO_NAMES: Record<number, string> = {
  1: 'EPERM',
  2: 'ENOENT',
  13: 'EACCES',
  16: 'EBUSY',
  18: 'EXDEV',
  20: 'ENOTDIR',
  21: 'EISDIR',
  30: 'EROFS',
  36: 'ENAMETOOLONG',
  40: 'ELOOP',
};

interface Libc {
  renameat2(olddirfd: number, oldpath: Uint8Array, newdirfd: number, newpath: Uint8Array, flags: number): number;
  errno(): number;
}

let libc: Promise<Libc | undefined> | undefined;

async function loadLibc(): Promise<Libc | undefined> {
  if (process.platform !== 'linux') return undefined;
  try {
    const { dlopen, FFIType, read } = await import('bun:ffi');
    const { symbols } = dlopen('libc.so.6', {
      renameat2: { args: [FFIType.i32, FFIType.ptr, FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
      __errno_location: { args: [], returns: FFIType.ptr },
    });
    return {
      renameat2: (a, b, c, d, e) => symbols.renameat2(a, b, c, d, e),
      errno: () => {
        const at = symbols.__errno_location();
        return at ? read.i32(at, 0) : 0;
      },
    };
  } catch {
    // Not glibc (musl, a static runtime) or a glibc older than renameat2.
    return undefined;
  }
}

const cString = (s: string) => new Uint8Array(Buffer.from(`${s}\0`, 'utf8'));

/**
 * Swaps the directory entries a and b (both must exist). Resolves
 * "unsupported" when the exchange cannot be done here (nothing changed);
 * rejects with an errno-coded Error when it failed for another reason
 * (a name missing, permissions), also with nothing changed.
 */
export async function exchangeNames(a: string, b: string): Promise<ExchangeOutcome> {
  const c = await (libc ??= loadLibc());
  if (!c) return 'unsupported';
  const rc = c.renameat2(AT_FDCWD, cString(a), AT_FDCWD, cString(b), RENAME_EXCHANGE);
  if (rc === 0) return 'exchanged';
  const errno = c.errno();
  // 0: errno could not be read back; the caller's renames will report the real cause.
  if (errno === 0 || UNSUPPORTED_ERRNO.has(errno)) return 'unsupported';
  const code = ERRNO_NAMES[errno] ?? `errno ${errno}`;
  throw Object.assign(new Error(`${code}: cannot exchange ${a} and ${b}`), { code, errno: -errno });
}
