/**
 * One event per decision in state/events.jsonl (lib/release/events.ts). A
 * decision is completed again after a crash, so its event may be asked for
 * twice: it is appended only when the log does not hold it yet. The lookup
 * reads the log's tail only: a decision's event follows it within a few lines.
 */
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { appendEvent } from '../release/events.ts';
import { type InstallLayout, versionOfDir } from '../release/layout.ts';
import type { GateState } from './state.ts';

const TAIL_BYTES = 256 * 1024;

export async function hasGateEvent(layout: InstallLayout, trialId: string): Promise<boolean> {
  let handle;
  try {
    handle = await open(layout.events, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch {
    return false;
  }
  try {
    const { size } = await handle.stat();
    const length = Math.min(size, TAIL_BYTES);
    const buffer = Buffer.alloc(length);
    await handle.read(buffer, 0, length, size - length);
    const needle = `"trialId":"${trialId}"`;
    return buffer
      .toString('utf8')
      .split('\n')
      .some((line) => {
        if (!line.includes(needle)) return false;
        try {
          const event = JSON.parse(line) as { action?: unknown; trialId?: unknown };
          return event.action === 'gate' && event.trialId === trialId;
        } catch {
          return false;
        }
      });
  } finally {
    await handle.close();
  }
}

const OUTCOME = { pass: 'ok', fail: 'failed', superseded: 'unchanged' } as const;

/** The event of a trial's decision, once. */
export async function logDecisionOnce(layout: InstallLayout, state: GateState): Promise<void> {
  const d = state.decision;
  if (!d || (await hasGateEvent(layout, state.trialId))) return;
  await appendEvent(layout, {
    action: 'gate',
    version: state.version,
    outcome: OUTCOME[d.outcome],
    decision: d.outcome,
    trialId: state.trialId,
    by: d.by,
    reason: d.reason,
    probe: d.probe,
    dir: `releases/${state.dir}`,
    rolledBackTo: d.rolledBackTo ? versionOfDir(d.rolledBackTo) : undefined,
    rollbackProblem: d.rollbackProblem,
  });
}

/** The event of a trial a new install replaced before it was decided, once. */
export async function logSupersededOnce(layout: InstallLayout, superseded: NonNullable<GateState['superseded']>, by: string, newVersion: string): Promise<void> {
  if (await hasGateEvent(layout, superseded.trialId)) return;
  await appendEvent(layout, {
    action: 'gate',
    version: superseded.version,
    outcome: 'unchanged',
    decision: 'superseded',
    trialId: superseded.trialId,
    by,
    reason: `${newVersion} was installed before the trial was decided; ${superseded.version} was neither passed nor listed as bad`,
  });
}
