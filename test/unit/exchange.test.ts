/** lib/fs/exchange.ts and rollback's swap of current and previous, in-process on the temp folder's file system. */
import { afterAll, describe, expect, test } from 'bun:test';
import { mkdirSync, mkdtempSync, readdirSync, readlinkSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exchangeNames } from '../../lib/fs/exchange.ts';
import { swapCurrentAndPrevious, SYSTEM_IO } from '../../lib/release/activate.ts';
import { installLayout } from '../../lib/release/layout.ts';

const dir = mkdtempSync(join(tmpdir(), 'cai-exchange-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function links(): { root: string; a: string; b: string } {
  const root = mkdtempSync(join(dir, 'root-'));
  mkdirSync(join(root, 'releases'));
  for (const v of ['v1', 'v2']) mkdirSync(join(root, 'releases', v));
  symlinkSync('releases/v2', join(root, 'current'));
  symlinkSync('releases/v1', join(root, 'previous'));
  return { root, a: join(root, 'current'), b: join(root, 'previous') };
}

describe('exchangeNames', () => {
  test('swaps two symlinks in one step (on Linux with glibc; elsewhere says unsupported and changes nothing)', async () => {
    const { a, b } = links();
    const outcome = await exchangeNames(a, b);
    if (process.platform === 'linux') expect(outcome).toBe('exchanged');
    if (outcome === 'exchanged') {
      expect([readlinkSync(a), readlinkSync(b)]).toEqual(['releases/v1', 'releases/v2']);
    } else {
      expect([readlinkSync(a), readlinkSync(b)]).toEqual(['releases/v2', 'releases/v1']);
    }
  });

  test('a missing name fails cleanly (ENOENT) and the other is unchanged', async () => {
    const { root, a } = links();
    const missing = join(root, 'nothing-here');
    const err = await exchangeNames(a, missing).then(
      (outcome) => outcome,
      (e: unknown) => e as NodeJS.ErrnoException,
    );
    if (err !== 'unsupported') {
      expect(err).toBeInstanceOf(Error);
      expect((err as NodeJS.ErrnoException).code).toBe('ENOENT');
    }
    expect(readlinkSync(a)).toBe('releases/v2');
    expect(readdirSync(root).sort()).toEqual(['current', 'previous', 'releases']);
  });
});

describe('swapCurrentAndPrevious', () => {
  test('uses the exchange where it can', async () => {
    const { root, a, b } = links();
    const how = await swapCurrentAndPrevious(installLayout(root), 'v2', 'v1');
    if (process.platform === 'linux') expect(how).toBe('exchange');
    expect([readlinkSync(a), readlinkSync(b)]).toEqual(['releases/v1', 'releases/v2']);
  });

  test('falls back to two renames when the exchange is unsupported, leaving no temp links', async () => {
    const { root, a, b } = links();
    const how = await swapCurrentAndPrevious(installLayout(root), 'v2', 'v1', { ...SYSTEM_IO, exchange: async () => 'unsupported' });
    expect(how).toBe('renames');
    expect([readlinkSync(a), readlinkSync(b)]).toEqual(['releases/v1', 'releases/v2']);
    expect(readdirSync(root).sort()).toEqual(['current', 'previous', 'releases']);
  });
});
