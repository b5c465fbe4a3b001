/**
 * Who may install where (SPEC: "the install root, releases/, state/ and every
 * folder on the path to them must be owned by root and writable by no one
 * else, and not under a user's home"). A release is code that runs as root,
 * so nobody but root may be able to swap a file in it or a folder above it:
 * an owner of releases/ could rename root's private staging folder and put a
 * tampered tree in its place before it is placed. Homes are refused outright,
 * /root included: dotfile managers, backup and sync tools and interactive
 * shells write there, and a system release must not live where a login
 * session tidies up. --allow-nonroot lifts all of it for tests and local demos.
 *
 * The check goes through descriptors, not names looked at once: from / down,
 * each folder is opened with O_RDONLY|O_DIRECTORY|O_NOFOLLOW relative to the
 * descriptor of the folder above it (through /proc/self/fd/N/NAME, which the
 * kernel resolves from that open folder, not by path again) and fstat'd; so
 * the folder judged is the folder opened, and a symlink anywhere on the way
 * is refused, not followed. Node has no openat/mkdirat/renameat/symlinkat:
 * the install itself (lib/release/install.ts, activate.ts) works by path.
 * The window between this check and that work is closed by what the check
 * establishes: every folder on the path is root's and writable by no one
 * else (a sticky parent such as /tmp lets others add entries but not rename
 * or remove root's), so only root can change what those names lead to.
 */
import { closeSync, constants, fstatSync, lstatSync, openSync, type Stats } from 'node:fs';
import { lstat, realpath, readFile } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import { ContainaiError } from '../errors.ts';
import { isUnder } from '../fs/paths.ts';
import { RELEASES_DIR, STATE_DIR, type InstallLayout } from './layout.ts';

const HOME_ROOTS = ['/home', '/root'];
const STICKY = 0o1000;
const DIR_FLAGS = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;

/** Home folders of login users (uid 0 or ≥ 1000) from /etc/passwd, besides /home and /root. */
export async function homeFolders(): Promise<string[]> {
  const homes = [...HOME_ROOTS];
  const text = await readFile('/etc/passwd', 'utf8').catch(() => '');
  for (const line of text.split('\n')) {
    const [, , uid, , , home] = line.split(':');
    const n = Number(uid);
    if (!home || home === '/' || home.startsWith('/nonexistent') || !(n === 0 || n >= 1000)) continue;
    if (n >= 65534) continue; // nobody
    homes.push(home);
  }
  return homes;
}

/** The real path of path, following links in the part that exists and keeping the rest as written. */
async function realPathOf(path: string): Promise<string> {
  let head = path;
  const tail: string[] = [];
  for (;;) {
    try {
      return join(await realpath(head), ...tail.reverse());
    } catch {
      const parent = dirname(head);
      if (parent === head) return path;
      tail.push(head.slice(parent.length).replace(/^\//, ''));
      head = parent;
    }
  }
}

function refuse(message: string, hint: string): ContainaiError {
  return new ContainaiError('PERMISSION', message, { hint });
}

/** Opens name inside the folder open as parentFd without following a link; undefined when it does not exist. */
function openFolderAt(parentFd: number, parentPath: string, name: string): number | undefined {
  const path = join(parentPath, name);
  // /proc/self/fd/N is the open folder itself: the lookup of NAME starts there, as openat(2)'s would.
  const relative = procFdAvailable() ? `/proc/self/fd/${parentFd}/${name}` : path;
  try {
    return openSync(relative, DIR_FLAGS);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'ELOOP' || code === 'ENOTDIR') {
      const link = lstatSync(path, { throwIfNoEntry: false })?.isSymbolicLink();
      throw refuse(`${path} is ${link ? 'a symlink' : 'not a folder'}; refusing to work through it`, link
        ? `the install root and the folders on its path must be plain folders: give the real path, or remove the link (rm ${path})`
        : 'choose an install root made of plain folders');
    }
    throw refuse(`cannot open ${path} to check who owns it: ${(err as Error).message}`, 'run as root');
  }
}

let procFd: boolean | undefined;
function procFdAvailable(): boolean {
  procFd ??= lstatSync('/proc/self/fd', { throwIfNoEntry: false })?.isDirectory() === true;
  return procFd;
}

/** Owned by root and writable by nobody else; a sticky parent may be writable by others (they cannot rename root's entries). */
function assertRootsOnly(info: Stats, path: string, stickyAllowed: boolean): void {
  if (info.uid !== 0) {
    throw refuse(`${path} is owned by uid ${info.uid}, not root: whoever owns it could replace what root installs`, `a release runs as root, so only root may change the folders that hold it: chown root:root ${path}`);
  }
  const othersWrite = (info.mode & 0o022) !== 0;
  if (othersWrite && !(stickyAllowed && (info.mode & STICKY) !== 0)) {
    throw refuse(`${path} is writable by group or others (mode ${(info.mode & 0o7777).toString(8)})`, `chmod go-w ${path}`);
  }
}

/**
 * Walks from / to root (an absolute path without links), then into releases/ and state/, through
 * descriptors: every folder that exists must pass assertRootsOnly. Stops where the path does not exist
 * yet (install creates the rest as root).
 */
export function assertRootOwnedChain(root: string): void {
  const opened: number[] = [];
  try {
    let fd = openSync('/', DIR_FLAGS);
    opened.push(fd);
    assertRootsOnly(fstatSync(fd), '/', true);
    let path = '/';
    const parts = root.split(sep).filter(Boolean);
    for (let i = 0; i < parts.length; i++) {
      const next = openFolderAt(fd, path, parts[i] as string);
      path = join(path, parts[i] as string);
      if (next === undefined) return;
      opened.push(next);
      fd = next;
      // Sticky is fine above the install root (/tmp), never for the root itself.
      assertRootsOnly(fstatSync(fd), path, i < parts.length - 1);
    }
    for (const name of [RELEASES_DIR, STATE_DIR]) {
      const child = openFolderAt(fd, path, name);
      if (child === undefined) continue;
      opened.push(child);
      assertRootsOnly(fstatSync(child), join(path, name), false);
    }
  } finally {
    for (const fd of opened) closeSync(fd);
  }
}

/**
 * Checks the rules for a command that changes the install root, and returns
 * the root as an absolute path. Runs before anything is written: a refusal
 * changes nothing.
 */
export async function assertInstallRootAllowed(installRoot: string, options: { allowNonroot: boolean }): Promise<string> {
  const root = resolve(installRoot);
  if (options.allowNonroot) return root;
  if (process.getuid?.() !== 0) {
    throw new ContainaiError('PERMISSION', 'installing a release needs root', {
      hint: 'run it with sudo (--allow-nonroot is for tests and demos in a folder of your own)',
    });
  }
  const real = await realPathOf(root);
  for (const home of await homeFolders()) {
    if (isUnder(real, home)) {
      throw new ContainaiError('PERMISSION', `the install root ${real} is under the home folder ${home}`, {
        hint: 'use a system folder such as /opt/containai (the default)',
      });
    }
  }
  assertRootOwnedChain(real);
  return root;
}

/**
 * releases/ and state/, when they exist, must be real folders: root deletes
 * leftovers and old releases under releases/ and writes the lock, floor and
 * events under state/, so a symlink there (planted by anyone who can write in
 * the root) would turn that work on a folder outside the install root.
 * Checked before any work on the root (where the lock is taken, and before a
 * verification), never followed.
 */
export async function assertLayoutFolders(layout: InstallLayout): Promise<void> {
  for (const dir of [layout.releases, layout.state]) {
    const info = await lstat(dir).catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? undefined : Promise.reject(err)));
    if (info && !info.isDirectory()) {
      throw new ContainaiError('STATE', `${dir} is ${info.isSymbolicLink() ? 'a symlink' : 'not a folder'}; refusing to work through it`, {
        hint: `it must be a plain folder inside the install root: look at what it points to, then remove it (rm ${dir}) and run again`,
      });
    }
  }
}
