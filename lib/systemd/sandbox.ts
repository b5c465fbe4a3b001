/**
 * What the health service can see. Its unit (units.ts) sets ProtectHome=yes,
 * which makes /home, /root and /run/user empty and inaccessible to it, and
 * PrivateTmp=yes, which gives it /tmp and /var/tmp of its own. A binary, key,
 * trusted root or trust folder named there would be missing when the timer
 * runs: the check would fail every time (or, for a trust folder, silently pin
 * nothing). So systemd install refuses such paths before it writes a unit,
 * by the path given and by its real path (a link from /opt into a home is
 * still in the home).
 */
import { accessSync, constants, realpathSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { ContainaiError, describeCause } from '../errors.ts';
import { isUnder } from '../fs/paths.ts';

interface Hidden {
  dir: string;
  setting: string;
  why: string;
}

export const HIDDEN_FROM_SERVICE: readonly Hidden[] = [
  { dir: '/home', setting: 'ProtectHome=yes', why: 'hides /home, /root and /run/user from the service' },
  { dir: '/root', setting: 'ProtectHome=yes', why: 'hides /home, /root and /run/user from the service' },
  { dir: '/run/user', setting: 'ProtectHome=yes', why: 'hides /home, /root and /run/user from the service' },
  { dir: '/tmp', setting: 'PrivateTmp=yes', why: 'gives the service an empty /tmp and /var/tmp of its own' },
  { dir: '/var/tmp', setting: 'PrivateTmp=yes', why: 'gives the service an empty /tmp and /var/tmp of its own' },
];

function realOrResolved(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return resolve(path);
  }
}

/** Where the path lies hidden from the service, by its name or its real path; undefined when visible. */
export function hiddenFromService(path: string): Hidden | undefined {
  const paths = [resolve(path), realOrResolved(path)];
  return HIDDEN_FROM_SERVICE.find((h) => paths.some((p) => isUnder(p, h.dir)));
}

export type Expected = 'file' | 'folder' | 'executable';

/**
 * Refuses a path the service could not read when the timer runs: hidden by its sandbox, missing,
 * of the wrong kind or unreadable. `hint` says where such a thing belongs instead.
 */
export function assertServiceCanRead(path: string, flag: string, expected: Expected, hint: string): void {
  const hidden = hiddenFromService(path);
  if (hidden) {
    throw new ContainaiError('INPUT', `${flag} ${path} is under ${hidden.dir}, which the health service cannot see (${hidden.setting} ${hidden.why})`, { hint });
  }
  try {
    const info = statSync(path);
    const ok = expected === 'folder' ? info.isDirectory() : info.isFile() && (expected === 'file' || (info.mode & 0o111) !== 0);
    if (!ok) throw new Error(expected === 'folder' ? 'not a folder' : expected === 'file' ? 'not a file' : 'not an executable file');
    accessSync(path, expected === 'folder' ? constants.R_OK | constants.X_OK : constants.R_OK);
  } catch (err) {
    throw new ContainaiError('INPUT', `${flag} ${path} cannot be used by the health service: ${describeCause(err)}`, { hint, cause: err });
  }
}

/**
 * The install root the service checks (and may write, ReadWritePaths=): never under a home (a system
 * release does not live where a login session tidies up, and ProtectHome= hides it) nor in a /tmp
 * the service does not share. It need not exist yet: the timer may be set up before the first install.
 */
export function assertServiceInstallRoot(installRoot: string, homes: readonly string[]): void {
  const real = realOrResolved(installRoot);
  const home = homes.find((h) => isUnder(real, h) || isUnder(resolve(installRoot), h));
  if (home) {
    throw new ContainaiError('INPUT', `the install root ${installRoot} is under the home folder ${home}: a system install lives outside homes, and the health service would not see it (ProtectHome=yes)`, {
      hint: 'install releases into a system folder such as /opt/containai (the default) and give that as --install-root',
    });
  }
  const hidden = hiddenFromService(installRoot);
  if (hidden) {
    throw new ContainaiError('INPUT', `the install root ${installRoot} is under ${hidden.dir}, which the health service cannot see (${hidden.setting} ${hidden.why})`, {
      hint: 'install releases into a system folder such as /opt/containai (the default) and give that as --install-root',
    });
  }
}
