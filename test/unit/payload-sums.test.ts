/** Reading payload/SHA256SUMS out of a payload.tar.gz as its bytes pass (lib/bundle/payload-sums.ts). */
import { describe, expect, test } from 'bun:test';
import { randomBytes } from 'node:crypto';
import { PayloadSumsReader } from '../../lib/bundle/payload-sums.ts';
import { buildTarGz, type TarSpec } from '../helpers/archives.ts';

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
    const payload = buildTarGz(entries([], [{ name: 'payload/tools/containai-host', body: randomBytes(4 * 1024 * 1024), mode: 0o755 }]));
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
