/**
 * Link checks are linear in the targets' length (issue 11): 49,000 dangling
 * symlinks with 511-part targets (a payload of about 125 KB) took 242 s of CPU
 * to refuse while holding the lock, because each step of each target rebuilt
 * its path. The manifest's tree (lib/manifest/entry-tree.ts) walks one Map
 * lookup per step and stops at the first link that names nothing. These tests
 * do not time anything: a quadratic check would not finish inside the test
 * timeout (bench/hostile-links.ts prints the times).
 */
import { describe, expect, test } from 'bun:test';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { extractArchive } from '../../lib/archive/extract.ts';
import { PAYLOAD_LIMITS } from '../../lib/archive/policy.ts';
import { EntryTree } from '../../lib/manifest/entry-tree.ts';
import { buildTarGz, HOSTILE_LINKS as LINKS, HOSTILE_LINK_TARGET as TARGET, hostileLinkEntries } from '../helpers/archives.ts';
import { tempDir } from '../helpers/cli.ts';

describe('link checks are linear', () => {
  test('49,000 dangling 511-part links: the extractor refuses the first and writes nothing', async () => {
    const archive = buildTarGz(hostileLinkEntries());
    const dest = join(tempDir('cai-links-'), 'tree');
    const err = await extractArchive((async function* () { yield archive; })(), dest, { label: 'payload.tar.gz', topFolder: 'payload', limits: PAYLOAD_LIMITS }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/symlink "l\d+" -> "a\/a\/a.*names nothing in the release/);
    expect(existsSync(dest)).toBe(false);
  });

  test('the manifest tree judges 49,000 valid 511-part chains through real folders', () => {
    // Folders a/a/a/… 511 deep would break the depth limit of an archive, but the tree itself has none:
    // every link resolves through the same deep folder chain, so each walk is the full 511 steps.
    const tree = new EntryTree();
    let path = '';
    for (let i = 0; i < 511; i++) {
      path = path ? `${path}/a` : 'a';
      expect(tree.add(path, 'dir')).toBeUndefined();
    }
    for (let i = 0; i < LINKS; i++) expect(tree.add(`l${i}`, 'symlink', TARGET)).toBeUndefined();
    expect(tree.firstBadLink()).toBeUndefined();
  });
});
