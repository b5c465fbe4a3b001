/** Flags of the commands that change an install root (install, rollback, prune), declared once. */
import type { ArgsDef } from 'citty';
import { usageError } from '../../lib/errors.ts';

export { installRootArgs, jsonArgs, policyArgs, trustDirArgs } from '../_shared.ts';

export const nonrootArgs = {
  'allow-nonroot': { type: 'boolean', description: 'TESTS AND DEMOS ONLY: skip the root, ownership and home-folder rules' },
} as const satisfies ArgsDef;

export const lockArgs = {
  'lock-wait': { type: 'string', description: 'how long to wait for another install, rollback or prune to finish', default: '30', valueHint: 'SECONDS' },
} as const satisfies ArgsDef;

export function lockWaitMs(value: string | undefined): number {
  const seconds = Number(value ?? 30);
  if (value === '' || !Number.isFinite(seconds) || seconds < 0 || seconds > 3600) {
    throw usageError(`--lock-wait "${value}" is not a number of seconds (0 to 3600)`);
  }
  return seconds * 1000;
}
