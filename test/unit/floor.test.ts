/**
 * lib/release/floor.ts compares versions as semver, not as text: every earlier floor test used
 * single digits, where "v1.9.0" < "v1.10.0" and "v2.0.0-rc.1" < "v2.0.0" come out wrong under a
 * string compare (and a planted string compare passed the suite).
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { compareSemver, downgradeReason, raiseFloor, readFloor, type Floor } from '../../lib/release/floor.ts';
import { installLayout } from '../../lib/release/layout.ts';
import { removeDir, tempDir } from '../helpers/cli.ts';

const work = tempDir('cai-floor-');
afterAll(() => removeDir(work));

const floorAt = (highest: string): Floor => ({ highest, installs: { [highest]: '2026-01-01T00:00:00.000Z' } });

describe('the floor compares semver', () => {
  test.each([
    ['v1.9.0', 'v1.10.0'],
    ['v1.10.0', 'v1.10.1'],
    ['v2.0.0-rc.1', 'v2.0.0'],
    ['v2.0.0-rc.2', 'v2.0.0-rc.10'],
    ['v2.0.0-alpha', 'v2.0.0-alpha.1'],
    ['v9.99.99', 'v10.0.0'],
  ])('%s is refused below %s, and not the other way round', (lower, higher) => {
    expect(compareSemver(lower, higher)).toBeLessThan(0);
    expect(downgradeReason(floorAt(higher), lower)).toBe(`${lower} is older than ${higher}, the highest version installed here`);
    expect(downgradeReason(floorAt(lower), higher)).toBeUndefined();
  });

  test('a release folder present counts as well as the floor file', () => {
    expect(downgradeReason({ installs: {} }, 'v1.9.0', ['v1.10.0'])).toContain('older than v1.10.0');
  });

  test('raising the floor keeps the semver-highest, whatever order versions come in', async () => {
    const layout = installLayout(join(work, 'root'));
    mkdirSync(layout.state, { recursive: true });
    let floor = await readFloor(layout);
    for (const [i, version] of ['v1.9.0', 'v1.10.0', 'v2.0.0-rc.1', 'v1.11.0'].entries()) {
      await raiseFloor(layout, floor, version, `2026-01-0${i + 1}T00:00:00.000Z`);
      floor = await readFloor(layout);
    }
    expect(floor.highest).toBe('v2.0.0-rc.1');
    await raiseFloor(layout, floor, 'v2.0.0', '2026-01-09T00:00:00.000Z');
    expect((await readFloor(layout)).highest).toBe('v2.0.0');
  });
});
