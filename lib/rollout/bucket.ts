/**
 * Where a host stands in a ramp: a number in [0, 1) from its machine id and
 * the version, fixed for that pair. A host takes the release once the ramp's
 * share is above its number:
 *
 *   bucket = (first 8 bytes of sha256(machine-id + version), big-endian) >> 11, / 2^53
 *
 * - the same host gets the same number on every run, so a ramp only ever adds
 *   hosts (10% → 50% keeps the first 10% and adds more);
 * - sha256 spreads the numbers evenly, so the share of a fleet that takes a
 *   release at 10% is binomial(n, 0.1) (the fleet test checks its bounds);
 * - the version is in the hash, so the first 1% differs from release to
 *   release: no host is everyone's canary.
 *
 * The top 53 bits make a double exactly (no rounding at the edges). The
 * machine id is systemd's /etc/machine-id (CONTAINAI_MACHINE_ID_FILE moves
 * it), 32 lower-case hex digits; it is never printed (machine-id(5) asks
 * that it not be exposed), only the bucket is.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { ContainaiError } from '../errors.ts';

export const DEFAULT_MACHINE_ID_FILE = '/etc/machine-id';
export const MACHINE_ID_ENV = 'CONTAINAI_MACHINE_ID_FILE';

const MACHINE_ID = /^[0-9a-f]{32}$/;

export function machineIdFile(env: NodeJS.ProcessEnv = process.env): string {
  return env[MACHINE_ID_ENV] || DEFAULT_MACHINE_ID_FILE;
}

/** The host's machine id; refuses a missing or malformed one (a host cannot place itself in a ramp without it). */
export async function readMachineId(path: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new ContainaiError('STATE', `cannot read the machine id ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'}): this host cannot find its place in a rollout`, {
      hint: `run systemd-machine-id-setup, or point ${MACHINE_ID_ENV} at a file holding 32 hex digits`,
    });
  }
  const id = text.trim();
  if (!MACHINE_ID.test(id)) {
    throw new ContainaiError('STATE', `${path} does not hold a machine id (32 lower-case hex digits, as machine-id(5) describes)`, {
      hint: `run systemd-machine-id-setup, or point ${MACHINE_ID_ENV} at a file holding 32 hex digits`,
    });
  }
  return id;
}

/** The host's number in [0, 1) for this version. */
export function hostBucket(machineId: string, version: string): number {
  const digest = createHash('sha256').update(`${machineId}${version}`).digest();
  return Number(digest.readBigUInt64BE(0) >> 11n) / 2 ** 53;
}
