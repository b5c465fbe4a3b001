/** writeTarGz: reproducible bytes that the system's tar and gzip read back exactly. */
import { describe, expect, test } from 'bun:test';
import { chmodSync, mkdirSync, readdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { type ArchiveEntry, writeTarGz } from '../../lib/archive/write.ts';
import { sha256Bytes } from '../../lib/digest.ts';
import { ContainaiError } from '../../lib/errors.ts';
import { tempDir } from '../helpers/cli.ts';

const MTIME = 1_700_000_000;

function sh(args: string[], cwd?: string): { code: number; out: string } {
  const r = Bun.spawnSync(args, { cwd, stdout: 'pipe', stderr: 'pipe' });
  return { code: r.exitCode, out: r.stdout.toString() + r.stderr.toString() };
}

/** A source tree with the awkward cases: long names, a long link, UTF-8, random and text data. */
function fixture(): { dir: string; entries: ArchiveEntry[]; files: Record<string, Buffer> } {
  const dir = tempDir('cai-archive-');
  const src = join(dir, 'src');
  mkdirSync(src);
  const longDir = 'd'.repeat(90);
  const longName = `${'n'.repeat(120)}.txt`; // no slash split fits: needs a pax path record
  const files: Record<string, Buffer> = {
    'top/run.sh': Buffer.from('#!/bin/sh\necho hi\n'),
    'top/readme.txt': Buffer.from('hello\n'.repeat(1000)),
    [`top/${longDir}/file-in-a-deep-folder.txt`]: Buffer.from('deep\n'),
    [`top/${longName}`]: Buffer.from('long\n'),
    'top/ünïcødé.txt': Buffer.from('utf8\n'),
    'top/random.bin': randomBytes(3 << 20),
    'top/empty': Buffer.alloc(0),
  };
  const entries: ArchiveEntry[] = [
    { path: 'top', type: 'directory', mode: 0o755 },
    { path: `top/${longDir}`, type: 'directory', mode: 0o755 },
    { path: 'top/link', type: 'symlink', mode: 0o777, linkTarget: 'readme.txt' },
    { path: 'top/longlink', type: 'symlink', mode: 0o777, linkTarget: `${longDir}/${'x'.repeat(60)}` },
  ];
  Object.entries(files).forEach(([path, data], i) => {
    const source = join(src, `f${i}`);
    writeFileSync(source, data);
    entries.push({ path, type: 'file', source, mode: path.endsWith('.sh') ? 0o4755 : 0o644 });
  });
  return { dir, entries, files };
}

describe('writeTarGz', () => {
  test('system tar lists and extracts every entry with its mode, owner 0/0 and the fixed mtime', async () => {
    const { dir, entries, files } = fixture();
    const out = join(dir, 'a.tar.gz');
    await writeTarGz(entries, out, { mtime: MTIME });

    expect(sh(['gzip', '-t', out]).code).toBe(0);
    const listing = sh(['tar', '--numeric-owner', '--utc', '-tvzf', out]);
    expect(listing.code).toBe(0);
    expect(listing.out).toContain('-rwxr-xr-x 0/0'); // setuid dropped, executable kept
    expect(listing.out).toContain('drwxr-xr-x 0/0');
    expect(listing.out).toContain('2023-11-14 22:13 top/run.sh');
    expect(listing.out).not.toMatch(/root|warning/i);

    const x = join(dir, 'x');
    mkdirSync(x);
    expect(sh(['tar', '-xzf', out, '-C', x]).code).toBe(0);
    for (const [path, data] of Object.entries(files)) expect(readFileSync(join(x, path)).equals(data), path).toBe(true);
    expect(statSync(join(x, 'top/run.sh')).mode & 0o7777).toBe(0o755);
    expect(statSync(join(x, 'top/readme.txt')).mode & 0o7777).toBe(0o644);
    expect(readlinkSync(join(x, 'top/link'))).toBe('readme.txt');
    expect(readlinkSync(join(x, 'top/longlink'))).toBe(`${'d'.repeat(90)}/${'x'.repeat(60)}`);
    expect(statSync(join(x, 'top/readme.txt')).mtimeMs).toBe(MTIME * 1000);
  });

  test('the same entries in any order give the same bytes, and the returned hash and size are the file\'s', async () => {
    const { dir, entries } = fixture();
    const a = join(dir, 'a.tar.gz');
    const b = join(dir, 'b.tar.gz');
    const first = await writeTarGz(entries, a, { mtime: MTIME });
    await writeTarGz([...entries].reverse(), b, { mtime: MTIME });
    const bytes = readFileSync(a);
    expect(readFileSync(b).equals(bytes)).toBe(true);
    expect(first.sha256).toBe(sha256Bytes(bytes));
    expect(first.bytes).toBe(bytes.length);
  });

  test("order: 'given' writes the entries as listed (a format that fixes its order), and still refuses a path twice", async () => {
    const { dir, entries } = fixture();
    const out = join(dir, 'a.tar.gz');
    const readme = entries.find((e) => e.path === 'top/readme.txt') as ArchiveEntry;
    const given = [entries[0] as ArchiveEntry, readme, ...entries.slice(1).filter((e) => e !== readme).reverse()];
    await writeTarGz(given, out, { mtime: MTIME, order: 'given' });
    const names = sh(['tar', '-tzf', out]).out.trim().split('\n');
    expect(names).toEqual(given.map((e) => (e.type === 'directory' ? `${e.path}/` : e.path)));
    const twice = await writeTarGz([...given, readme], join(dir, 'b.tar.gz'), { mtime: MTIME, order: 'given' }).catch((e) => e);
    expect(twice.message).toContain('"top/readme.txt" is listed twice');
    expect(readdirSync(dir)).not.toContain('b.tar.gz');
  });

  test('the gzip header carries no time, no file name, and the Unix OS byte', async () => {
    const { dir, entries } = fixture();
    const out = join(dir, 'a.tar.gz');
    await writeTarGz(entries, out, { mtime: MTIME });
    const head = readFileSync(out).subarray(0, 10);
    expect([head[0], head[1], head[2]]).toEqual([0x1f, 0x8b, 8]);
    expect(head[3]).toBe(0); // FLG: no FNAME, no FCOMMENT, no FEXTRA
    expect(head.readUInt32LE(4)).toBe(0); // MTIME
    expect(head[9]).toBe(3);
  });

  test('random data is stored, not inflated, and text is still compressed', async () => {
    const { dir, entries, files } = fixture();
    const out = join(dir, 'a.tar.gz');
    const { bytes } = await writeTarGz(entries, out, { mtime: MTIME });
    const random = (files['top/random.bin'] as Buffer).length;
    // Deflate would make random data 5% larger; stored, it grows by 5 bytes per 64 KiB.
    expect(bytes).toBeLessThan(random * 1.01);
    expect(bytes).toBeGreaterThan(random);
  });

  test('a source that cannot be read fails with its path named and leaves no file behind', async () => {
    const { dir, entries } = fixture();
    const out = join(dir, 'out', 'a.tar.gz');
    mkdirSync(join(dir, 'out'));
    entries.push({ path: 'top/missing', type: 'file', source: join(dir, 'nope'), mode: 0o644 });
    const err = await writeTarGz(entries, out, { mtime: MTIME }).catch((e) => e);
    expect(err).toBeInstanceOf(ContainaiError);
    expect(err.message).toContain(join(dir, 'nope'));
    expect(readdirSync(join(dir, 'out'))).toEqual([]);
  });

  test('a source that is a symlink is refused rather than followed', async () => {
    const { dir, entries } = fixture();
    const link = join(dir, 'link-to-readme');
    Bun.spawnSync(['ln', '-s', (entries.find((e) => e.path === 'top/readme.txt') as ArchiveEntry).source as string, link]);
    chmodSync(dir, 0o755);
    entries.push({ path: 'top/via-link', type: 'file', source: link, mode: 0o644 });
    const out = join(dir, 'a.tar.gz');
    await expect(writeTarGz(entries, out, { mtime: MTIME })).rejects.toThrow(link);
  });
});
