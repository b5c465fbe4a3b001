/**
 * Reading payload/SHA256SUMS out of a payload.tar.gz as its bytes pass (lib/bundle/payload-sums.ts),
 * and from the first entries of a file, as sign and repack do (readLeadingEntry, lib/payload/folder.ts).
 */
import { describe, expect, test } from 'bun:test';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PayloadSumsReader } from '../../lib/bundle/payload-sums.ts';
import { readLeadingEntry } from '../../lib/payload/folder.ts';
import { buildTarGz, type TarSpec } from '../helpers/archives.ts';
import { tempDir } from '../helpers/cli.ts';

const SUMS = `${'a'.repeat(64)}  host/run.sh\n`;

/** Feeds the payload in small chunks, as the bundle reader does, and says how many bytes it took. */
function read(payload: Uint8Array, chunk = 4096) {
  const reader = new PayloadSumsReader();
  let fed = 0;
  while (fed < payload.length && !reader.done) {
    reader.write(payload.subarray(fed, fed + chunk));
    fed += chunk;
  }
  return { outcome: reader.end(), fed: Math.min(fed, payload.length) };
}

const entries = (before: TarSpec[] = [], after: TarSpec[] = []): TarSpec[] => [
  { name: 'payload/', type: 'dir', mode: 0o755 },
  ...before,
  { name: 'payload/SHA256SUMS', body: SUMS, mode: 0o644 },
  ...after,
];

describe('PayloadSumsReader', () => {
  test('finds SHA256SUMS in the first blocks and stops long before the end of a large payload', () => {
    const payload = buildTarGz(entries([], [{ name: 'payload/host/large.bin', body: randomBytes(4 * 1024 * 1024), mode: 0o755 }]));
    const { outcome, fed } = read(payload);
    expect(outcome).toEqual({ sums: Buffer.from(SUMS) });
    expect(fed).toBeLessThan(256 * 1024);
  });

  test('finds it after a large entry too, reading further', () => {
    const payload = buildTarGz(entries([{ name: 'payload/LICENSE', body: randomBytes(1024 * 1024), mode: 0o644 }]));
    expect(read(payload).outcome).toEqual({ sums: Buffer.from(SUMS) });
  });

  test('a payload without SHA256SUMS, garbage and a truncated payload are problems, not exceptions', () => {
    const without = buildTarGz([{ name: 'payload/', type: 'dir', mode: 0o755 }, { name: 'payload/host/run.sh', body: 'x', mode: 0o644 }]);
    expect(read(without).outcome).toEqual({ problem: 'the payload has no SHA256SUMS' });
    expect(read(new TextEncoder().encode('not gzip at all')).outcome).toMatchObject({ problem: expect.stringContaining('cannot be unpacked') });
    const big = buildTarGz(entries([{ name: 'payload/LICENSE', body: randomBytes(512 * 1024), mode: 0o644 }]));
    expect('problem' in read(big.subarray(0, 100 * 1024)).outcome).toBe(true);
  });

  test('a SHA256SUMS that is not a regular file is a problem', () => {
    const link = buildTarGz([{ name: 'payload/', type: 'dir', mode: 0o755 }, { name: 'payload/SHA256SUMS', type: 'symlink', linkname: '/etc/passwd' }]);
    expect(read(link).outcome).toMatchObject({ problem: expect.stringContaining('SHA256SUMS is a symlink') });
  });
});

describe('readLeadingEntry', () => {
  const file = (bytes: Uint8Array) => {
    const path = join(tempDir('cai-lead-'), 'p.tar.gz');
    writeFileSync(path, bytes);
    return path;
  };

  test('reads the entry at the start of a large archive, whatever follows it in the same chunk', async () => {
    const path = file(
      buildTarGz(entries([], [{ name: 'payload/release.json', body: '{}', mode: 0o644 }, { name: 'payload/host/large.bin', body: randomBytes(8 << 20), mode: 0o644 }])),
    );
    expect(await readLeadingEntry(path, 'payload/SHA256SUMS', 2, 'payload.tar.gz')).toEqual({ bytes: Buffer.from(SUMS) });
  });

  test('an entry later than `within`, a missing one, a link, garbage and a truncated file are problems', async () => {
    const late = file(buildTarGz(entries([{ name: 'payload/README.md', body: 'x', mode: 0o644 }])));
    expect(await readLeadingEntry(late, 'payload/SHA256SUMS', 2, 'p')).toEqual({ problem: 'payload/SHA256SUMS is not among its first 2 entries' });
    const none = file(buildTarGz([{ name: 'payload/', type: 'dir', mode: 0o755 }]));
    expect(await readLeadingEntry(none, 'payload/SHA256SUMS', 2, 'p')).toEqual({ problem: 'p ends before payload/SHA256SUMS' });
    const link = file(buildTarGz([{ name: 'SHA256SUMS', type: 'symlink', linkname: '/etc/passwd' }]));
    expect(await readLeadingEntry(link, 'SHA256SUMS', 1, 'b')).toEqual({ problem: 'SHA256SUMS is a symlink, not a file' });
    expect('problem' in (await readLeadingEntry(file(new TextEncoder().encode('not gzip')), 'SHA256SUMS', 1, 'b'))).toBe(true);
    const whole = buildTarGz(entries([], [{ name: 'payload/x', body: randomBytes(1 << 20), mode: 0o644 }]));
    const cut = buildTarGz([{ name: 'payload/', type: 'dir', mode: 0o755 }, { name: 'payload/SHA256SUMS', body: randomBytes(256 * 1024), mode: 0o644 }]);
    expect('problem' in (await readLeadingEntry(file(cut.subarray(0, cut.length >> 1)), 'payload/SHA256SUMS', 2, 'p'))).toBe(true);
    expect('bytes' in (await readLeadingEntry(file(whole), 'payload/SHA256SUMS', 2, 'p'))).toBe(true);
  });
});
