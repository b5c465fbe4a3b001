/**
 * GNU sparse files, made by GNU tar itself from a file with a real hole, are refused whole as
 * unsupported (lib/archive/tar.ts): old GNU type 'S', and pax sparse 0.0, 0.1 and 1.0 (the last
 * would otherwise land as payload/GNUSparseFile.N/holes holding the raw map). Nothing is left behind.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { extractTarGz } from '../../lib/archive/extract.ts';
import { ContainaiError } from '../../lib/errors.ts';
import { removeDir, tempDir } from '../helpers/cli.ts';
import { requireService } from '../helpers/services.ts';

const work = tempDir('cai-sparse-');
afterAll(() => removeDir(work));

const tar = requireService('tar', 'tar');
const truncate = requireService('truncate', 'coreutils');

function sh(argv: string[], cwd = work): void {
  const r = Bun.spawnSync(argv, { cwd, stdout: 'pipe', stderr: 'pipe' });
  if (r.exitCode !== 0) throw new Error(`${argv.join(' ')} failed: ${r.stderr.toString()}`);
}

// A 4 MiB file with 4 KiB of data in the middle: the rest is a hole tar --sparse records as such.
mkdirSync(join(work, 'payload'));
writeFileSync(join(work, 'payload', 'README.md'), 'hello\n');
sh([truncate, '-s', '4M', 'payload/holes']);
sh(['dd', 'if=/dev/urandom', 'of=payload/holes', 'bs=4096', 'count=1', 'seek=512', 'conv=notrunc', 'status=none']);

const FORMATS: Array<[string, string[], RegExp]> = [
  ['old GNU (type S)', ['--format=gnu'], /entry "payload\/holes" is a GNU sparse file \(old GNU type 'S'\), which is not supported/],
  ['pax 0.0', ['--format=pax', '--sparse-version=0.0'], /entry "payload\/holes" is a GNU sparse file \(pax GNU\.sparse\.\w+\)/],
  ['pax 0.1', ['--format=pax', '--sparse-version=0.1'], /entry "payload\/GNUSparseFile\.\d+\/holes" is a GNU sparse file \(pax GNU\.sparse\.\w+\)/],
  ['pax 1.0', ['--format=pax', '--sparse-version=1.0'], /entry "payload\/GNUSparseFile\.\d+\/holes" is a GNU sparse file \(pax GNU\.sparse\.\w+\)/],
];

describe('GNU sparse entries are refused as unsupported', () => {
  test.each(FORMATS)('%s', async (name, flags, message) => {
    const archive = join(work, `${name.replace(/\W+/g, '-')}.tar.gz`);
    sh([tar, '--sparse', ...flags, '--owner=0', '--group=0', '-czf', archive, 'payload/README.md', 'payload/holes']);
    const dest = join(work, `dest-${name.replace(/\W+/g, '-')}`);
    const before = readdirSync(work).sort();
    const err = await extractTarGz(archive, dest, { topFolder: 'payload' }).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(ContainaiError);
    expect((err as ContainaiError).code).toBe('ARCHIVE');
    expect((err as ContainaiError).message).toMatch(message);
    expect((err as ContainaiError).hint).toContain('tar --sparse');
    expect(existsSync(dest)).toBe(false);
    expect(readdirSync(work).sort()).toEqual(before);
  });

  test('the same file without --sparse extracts (the refusal is about the format, not the content)', async () => {
    const archive = join(work, 'plain.tar.gz');
    sh([tar, '--format=pax', '--owner=0', '--group=0', '-czf', archive, 'payload/README.md', 'payload/holes']);
    const result = await extractTarGz(archive, join(work, 'dest-plain'), { topFolder: 'payload' });
    expect(result.files.map((f) => [f.path, f.size]).sort()).toEqual([['README.md', 6], ['holes', 4 * 1024 ** 2]]);
  });
});
