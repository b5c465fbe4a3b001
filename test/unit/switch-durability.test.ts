/**
 * Every rename that commits a switch of current or previous is followed by an
 * fsync of the install root, before the next step: a kill -9 cannot show lost
 * durability (the page cache survives it), so the calls are recorded through
 * the switch's one seam (lib/release/activate.ts SwitchIo) and their order checked.
 */
import { describe, expect, test } from 'bun:test';
import { mkdirSync, readdirSync, readlinkSync, rmSync, symlinkSync } from 'node:fs';
import { basename, join } from 'node:path';
import { activateRelease, SYSTEM_IO, swapCurrentAndPrevious, type SwitchIo } from '../../lib/release/activate.ts';
import { removeLeftovers } from '../../lib/release/cleanup.ts';
import { installLayout } from '../../lib/release/layout.ts';
import { tempDir } from '../helpers/cli.ts';

function recorder(root: string, exchange: 'real' | 'unsupported' = 'real'): { io: SwitchIo; calls: string[] } {
  const calls: string[] = [];
  const io: SwitchIo = {
    async rename(from, to) {
      await SYSTEM_IO.rename(from, to);
      calls.push(`rename ${basename(to)}`);
    },
    async fsyncDir(dir) {
      await SYSTEM_IO.fsyncDir(dir);
      calls.push(`fsync ${dir === root ? 'root' : dir}`);
    },
    async exchange(a, b) {
      if (exchange === 'unsupported') return 'unsupported';
      const outcome = await SYSTEM_IO.exchange(a, b);
      calls.push(`exchange ${basename(a)} ${basename(b)}`);
      return outcome;
    },
  };
  return { io, calls };
}

function rootWith(...dirs: string[]): string {
  const root = tempDir('cai-durable-');
  for (const d of dirs) mkdirSync(join(root, 'releases', d), { recursive: true });
  return root;
}

describe('the install root is fsynced after each rename that commits a switch', () => {
  test('activate: current, then previous, each rename followed by an fsync of the root', async () => {
    const root = rootWith('v1', 'v2');
    symlinkSync('releases/v1', join(root, 'current'));
    const { io, calls } = recorder(root);
    await activateRelease(installLayout(root), 'v2', io);
    expect(calls).toEqual(['rename current', 'fsync root', 'rename previous', 'fsync root']);
    expect(readlinkSync(join(root, 'current'))).toBe('releases/v2');
    expect(readlinkSync(join(root, 'previous'))).toBe('releases/v1');
  });

  test('rollback by exchange: one exchange, then an fsync', async () => {
    const root = rootWith('v1', 'v2');
    symlinkSync('releases/v2', join(root, 'current'));
    symlinkSync('releases/v1', join(root, 'previous'));
    const { io, calls } = recorder(root);
    const how = await swapCurrentAndPrevious(installLayout(root), 'v2', 'v1', io);
    if (how === 'exchange') expect(calls).toEqual(['exchange current previous', 'fsync root']);
    else expect(calls).toEqual(['rename current', 'fsync root', 'rename previous', 'fsync root']);
    expect(readlinkSync(join(root, 'current'))).toBe('releases/v1');
  });

  test('rollback where the exchange is unsupported: two renames, each followed by an fsync', async () => {
    const root = rootWith('v1', 'v2');
    symlinkSync('releases/v2', join(root, 'current'));
    symlinkSync('releases/v1', join(root, 'previous'));
    const { io, calls } = recorder(root, 'unsupported');
    await swapCurrentAndPrevious(installLayout(root), 'v2', 'v1', io);
    expect(calls).toEqual(['rename current', 'fsync root', 'rename previous', 'fsync root']);
    expect(readlinkSync(join(root, 'previous'))).toBe('releases/v2');
  });
});

describe('a crash between the two renames of a switch is completed by the next run', () => {
  test('current moved, previous not yet: cleanup makes the release that was current previous', async () => {
    const root = rootWith('v1', 'v2', 'v3');
    symlinkSync('releases/v3', join(root, 'current'));
    symlinkSync('releases/v1', join(root, 'previous'));
    // What activateRelease(v3 → v2... ) leaves when killed after current moved: the pending previous link.
    symlinkSync('releases/v3', join(root, '.pending-previous-123-abcd'));
    rmSync(join(root, 'current'));
    symlinkSync('releases/v2', join(root, 'current'));
    const removed = await removeLeftovers(installLayout(root));
    expect(removed.join()).toContain('made previous');
    expect(readlinkSync(join(root, 'current'))).toBe('releases/v2');
    expect(readlinkSync(join(root, 'previous'))).toBe('releases/v3');
    expect(readdirSync(root).filter((n) => n.startsWith('.pending'))).toEqual([]);
  });

  test('killed before current moved: the pending link is dropped and previous stays', async () => {
    const root = rootWith('v1', 'v2');
    symlinkSync('releases/v2', join(root, 'current'));
    symlinkSync('releases/v1', join(root, 'previous'));
    symlinkSync('releases/v2', join(root, '.pending-previous-123-abcd'));
    await removeLeftovers(installLayout(root));
    expect(readlinkSync(join(root, 'previous'))).toBe('releases/v1');
    expect(readdirSync(root).filter((n) => n.startsWith('.pending'))).toEqual([]);
  });

  test('a whole activation leaves no pending link, and previous names the release that was current', async () => {
    const root = rootWith('v1', 'v2');
    symlinkSync('releases/v1', join(root, 'current'));
    await activateRelease(installLayout(root), 'v2');
    expect(readlinkSync(join(root, 'previous'))).toBe('releases/v1');
    expect(readdirSync(root).filter((n) => n.startsWith('.'))).toEqual([]);
  });
});
