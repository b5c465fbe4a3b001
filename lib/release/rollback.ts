/**
 * rollback: previous becomes current and current becomes previous. The
 * release going live is checked first (its files against SHA256SUMS, its kept
 * bundle against install.json): a rollback must not put a tampered tree live.
 * With no usable previous it refuses and changes nothing. The swap itself is
 * one atomic exchange where Linux allows it (lib/fs/exchange.ts).
 */
import { ContainaiError, describeCause } from '../errors.ts';
import { pointLink, readReleaseLink, removeLink, swapCurrentAndPrevious } from './activate.ts';
import { removeLeftovers } from './cleanup.ts';
import { appendEvent } from './events.ts';
import { verifyInstalledRelease } from './installed.ts';
import { CURRENT_LINK, installLayout, PREVIOUS_LINK, versionOfDir } from './layout.ts';
import { acquireLock } from './lock.ts';
import type { ReleasePolicy } from './trust.ts';

export interface RollbackResult {
  current: string;
  previous?: string;
}

export async function rollbackRelease(installRoot: string, options: { lockWaitMs: number; policy: ReleasePolicy }): Promise<RollbackResult> {
  const layout = installLayout(installRoot);
  const lock = await acquireLock(layout, 'containai-host rollback', options.lockWaitMs);
  try {
    await removeLeftovers(layout);
    const current = await readReleaseLink(layout, CURRENT_LINK);
    const previous = await readReleaseLink(layout, PREVIOUS_LINK);
    if (previous.kind !== 'release') {
      const reason = previous.kind === 'absent' ? 'there is no previous release' : previous.reason;
      await appendEvent(layout, { action: 'rollback', outcome: 'refused', reason });
      throw new ContainaiError('STATE', `cannot roll back: ${reason}`, { hint: 'install the release you want with install --version (nothing was changed)' });
    }
    const check = await verifyInstalledRelease(installRoot, { link: PREVIOUS_LINK, policy: options.policy, checkSignature: false });
    if (!check.ok) {
      const reason = `the previous release does not verify: ${check.problems.slice(0, 3).join('; ')}`;
      await appendEvent(layout, { action: 'rollback', version: versionOfDir(previous.dirName), outcome: 'refused', reason });
      throw new ContainaiError('VERIFY', `cannot roll back: ${reason}`, { hint: 'install a good release with install --version (nothing was changed)' });
    }
    let swap: 'exchange' | 'renames';
    if (current.kind === 'release') {
      swap = await swapCurrentAndPrevious(layout, current.dirName, previous.dirName).catch((err: unknown) => {
        throw new ContainaiError('STATE', `cannot swap current and previous: ${describeCause(err)}`, {
          hint: 'check the install root with status; run rollback again',
          cause: err,
        });
      });
    } else {
      // No release is current: nothing to keep as previous.
      await pointLink(layout, CURRENT_LINK, previous.dirName);
      await removeLink(layout, PREVIOUS_LINK);
      swap = 'renames';
    }
    await appendEvent(layout, {
      action: 'rollback',
      version: versionOfDir(previous.dirName),
      outcome: 'ok',
      from: current.kind === 'release' ? versionOfDir(current.dirName) : undefined,
      swap,
    });
    return { current: previous.dirName, previous: current.kind === 'release' ? current.dirName : undefined };
  } finally {
    lock.release();
  }
}
