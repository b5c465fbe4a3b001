/**
 * The downgrade floor: the highest version ever installed, kept in
 * state/floor.json on its own so that deleting or pruning a release does not
 * lower it. An attacker who can serve an old, validly signed release (with a
 * known hole) must not get it installed silently: going below the floor needs
 * --allow-downgrade. Versions compare by semver when both are semver, else by
 * when they were installed.
 */
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { ContainaiError } from '../errors.ts';
import { writeFileAtomic } from '../fs/atomic.ts';
import type { InstallLayout } from './layout.ts';

const FloorSchema = z.object({
  /** The highest semver version ever made current. */
  highest: z.string().optional(),
  /** The last time each version was made current (bounded: see MAX_VERSIONS). */
  installs: z.record(z.string(), z.string()).default({}),
});
export type Floor = z.infer<typeof FloorSchema>;

const MAX_VERSIONS = 500;
const SEMVER = /^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/;

export function isSemver(version: string): boolean {
  return SEMVER.test(version);
}

/** <0, 0, >0 as a is lower, equal or higher than b (both semver). */
export function compareSemver(a: string, b: string): number {
  return Bun.semver.order(a.replace(/^v/, ''), b.replace(/^v/, ''));
}

export async function readFloor(layout: InstallLayout): Promise<Floor> {
  let text: string;
  try {
    text = await readFile(layout.floor, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { installs: {} };
    throw err;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  const parsed = FloorSchema.safeParse(json);
  if (!parsed.success) {
    throw new ContainaiError('STATE', `${layout.floor} is damaged: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(top)'}: ${i.message}`).join('; ')}`, {
      hint: 'restore it from a backup, or remove it only if you know the highest version this host ever ran (it guards against downgrades)',
    });
  }
  return parsed.data;
}

/** Why installing version would go below the floor, or undefined when it would not. */
export function downgradeReason(floor: Floor, version: string, otherVersions: readonly string[] = []): string | undefined {
  if (isSemver(version)) {
    const candidates = [floor.highest, ...Object.keys(floor.installs), ...otherVersions].filter(
      (v): v is string => v !== undefined && isSemver(v),
    );
    const highest = candidates.reduce<string | undefined>((max, v) => (max === undefined || compareSemver(v, max) > 0 ? v : max), undefined);
    if (highest && compareSemver(version, highest) < 0) return `${version} is older than ${highest}, the highest version installed here`;
    return undefined;
  }
  const last = floor.installs[version];
  if (!last) return undefined;
  const newer = Object.entries(floor.installs).find(([v, at]) => v !== version && at > last);
  return newer ? `${version} was installed before ${newer[0]} (by install time; the versions are not semver)` : undefined;
}

/** Records that version became current now; the floor only ever rises. */
export async function raiseFloor(layout: InstallLayout, floor: Floor, version: string, at: string): Promise<void> {
  const installs = { ...floor.installs, [version]: at };
  const kept = Object.entries(installs)
    .sort((a, b) => (a[1] < b[1] ? 1 : -1))
    .slice(0, MAX_VERSIONS);
  let highest = floor.highest;
  if (isSemver(version) && (!highest || compareSemver(version, highest) > 0)) highest = version;
  const next: Floor = { highest, installs: Object.fromEntries(kept) };
  await writeFileAtomic(layout.floor, `${JSON.stringify(next, null, 2)}\n`);
}
