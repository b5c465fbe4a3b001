/** prune: removes the oldest releases beyond the newest N, never current or previous. */
import { readReleaseLink } from './activate.ts';
import { removeLeftovers, removeRelease } from './cleanup.ts';
import { appendEvent } from './events.ts';
import { inspectInstalledRelease } from './installed.ts';
import { CURRENT_LINK, installLayout, PREVIOUS_LINK } from './layout.ts';
import { acquireLock } from './lock.ts';

export interface PruneResult {
  removed: string[];
  kept: string[];
}

export async function pruneReleases(installRoot: string, options: { keep: number; lockWaitMs: number }): Promise<PruneResult> {
  const layout = installLayout(installRoot);
  const lock = await acquireLock(layout, 'containai-host prune', options.lockWaitMs);
  try {
    await removeLeftovers(layout);
    // Read the links under the lock: they cannot move while we decide.
    const protectedDirs = new Set(
      (await Promise.all([readReleaseLink(layout, CURRENT_LINK), readReleaseLink(layout, PREVIOUS_LINK)])).flatMap((l) =>
        l.kind === 'release' ? [l.dirName] : [],
      ),
    );
    const { releases } = await inspectInstalledRelease(installRoot);
    // Newest first; a release without a readable install.json counts as oldest.
    const ordered = [...releases].sort((a, b) => (b.record?.installedAt ?? '').localeCompare(a.record?.installedAt ?? ''));
    const kept: string[] = [];
    const removed: string[] = [];
    for (const release of ordered) {
      if (protectedDirs.has(release.dirName) || kept.length < options.keep) {
        kept.push(release.dirName);
        continue;
      }
      await removeRelease(layout, release.dirName);
      removed.push(release.dirName);
    }
    await appendEvent(layout, { action: 'prune', outcome: 'ok', removed, kept });
    return { removed, kept };
  } finally {
    lock.release();
  }
}
