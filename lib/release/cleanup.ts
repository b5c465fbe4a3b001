/** Removing what a crashed run left behind, and folders no link names any more. Call with the lock held. */
import { randomBytes } from 'node:crypto';
import { readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fsyncDir } from '../fs/atomic.ts';
import { completePendingPrevious } from './activate.ts';
import { type InstallLayout, isLeftover, PENDING_PREVIOUS_PREFIX, TEMP_LINK_PREFIX, TRASH_PREFIX } from './layout.ts';

/** Staging and trash folders under releases/, temp symlinks in the root. Returns what was removed. */
export async function removeLeftovers(layout: InstallLayout): Promise<string[]> {
  const removed: string[] = [];
  for (const name of await readdir(layout.releases).catch(() => [] as string[])) {
    if (!isLeftover(name)) continue;
    await rm(join(layout.releases, name), { recursive: true, force: true });
    removed.push(`releases/${name}`);
  }
  for (const name of await readdir(layout.root).catch(() => [] as string[])) {
    if (name.startsWith(PENDING_PREVIOUS_PREFIX)) {
      const outcome = await completePendingPrevious(layout, name);
      removed.push(outcome === 'completed' ? `${name} (made previous: an interrupted switch had not yet moved it)` : name);
      continue;
    }
    if (!name.startsWith(TEMP_LINK_PREFIX)) continue;
    await rm(join(layout.root, name), { force: true });
    removed.push(name);
  }
  return removed;
}

/**
 * Removes a release folder: first renamed to a trash name (one atomic step, so
 * a crash leaves either the whole release or a recognisable leftover), then deleted.
 */
export async function removeRelease(layout: InstallLayout, dirName: string): Promise<void> {
  const trash = join(layout.releases, `${TRASH_PREFIX}${dirName}-${randomBytes(4).toString('hex')}`);
  await rename(join(layout.releases, dirName), trash);
  await fsyncDir(layout.releases);
  await rm(trash, { recursive: true, force: true });
}
