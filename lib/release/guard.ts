/**
 * Who may install where (SPEC: "System installs require root, an install root
 * not under a user's home and owned by root"). A release is code that runs as
 * root, so nobody but root may be able to swap a file in it or a folder above
 * it. Homes are refused outright, /root included: dotfile managers, backup and
 * sync tools and interactive shells write there, and a system release must not
 * live where a login session tidies up. --allow-nonroot lifts all of it for
 * tests and local demos.
 */
import { lstat, realpath, readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { ContainaiError } from '../errors.ts';
import { isUnder } from '../fs/paths.ts';
import type { InstallLayout } from './layout.ts';

const HOME_ROOTS = ['/home', '/root'];
const STICKY = 0o1000;

/** Home folders of login users (uid 0 or ≥ 1000) from /etc/passwd, besides /home and /root. */
async function homeFolders(): Promise<string[]> {
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

/**
 * Checks the rules for a command that changes the install root, and returns
 * the root as an absolute path.
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
  // The root itself (when it exists) and every folder above it: owned by root, writable by nobody else.
  for (let dir = real; ; dir = dirname(dir)) {
    const info = await lstat(dir).catch(() => undefined);
    if (info) {
      if (!info.isDirectory()) {
        throw new ContainaiError('PERMISSION', `${dir} is not a folder`, { hint: 'choose an install root made of plain folders' });
      }
      if (info.uid !== 0) {
        throw new ContainaiError('PERMISSION', `${dir} is owned by uid ${info.uid}, not root`, {
          hint: `a release runs as root, so only root may change the folders that hold it: chown root:root ${dir}`,
        });
      }
      const othersWrite = (info.mode & 0o022) !== 0;
      if (othersWrite && !(dir !== real && (info.mode & STICKY) !== 0)) {
        throw new ContainaiError('PERMISSION', `${dir} is writable by group or others (mode ${(info.mode & 0o7777).toString(8)})`, {
          hint: `chmod go-w ${dir}`,
        });
      }
    }
    if (dirname(dir) === dir) break;
  }
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
