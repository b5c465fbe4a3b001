/** Free space where releases land: a full disk breaks the next install and Docker alike. */
import { statfs } from 'node:fs/promises';
import { dirname } from 'node:path';
import { describeCause } from '../errors.ts';
import type { HealthCheck } from './types.ts';

export const MIN_FREE_BYTES = 5 * 1024 ** 3;

const gib = (bytes: number) => `${(bytes / 1024 ** 3).toFixed(1)} GiB`;

/** The install root, or its nearest existing parent (a fresh host has no root yet). */
async function statNearest(path: string) {
  for (let p = path; ; p = dirname(p)) {
    try {
      return { path: p, stats: await statfs(p) };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || p === dirname(p)) throw err;
    }
  }
}

export const diskCheck: HealthCheck = {
  id: 'disk',
  title: 'disk space',
  timeoutMs: 3_000,
  async run(ctx) {
    let found;
    try {
      found = await statNearest(ctx.installRoot);
    } catch (err) {
      return { status: 'fail', message: `cannot read free space of ${ctx.installRoot}: ${describeCause(err)}`, fix: 'check that the install root is mounted' };
    }
    const free = Number(found.stats.bavail) * Number(found.stats.bsize);
    const details = { path: found.path, freeBytes: free, minFreeBytes: MIN_FREE_BYTES };
    if (free < MIN_FREE_BYTES) {
      return { status: 'warn', message: `${gib(free)} free on ${found.path} (under ${gib(MIN_FREE_BYTES)})`, fix: 'free space: containai-host prune, docker image prune, or grow the file system', details };
    }
    return { status: 'pass', message: `${gib(free)} free on ${found.path}`, details };
  },
};
