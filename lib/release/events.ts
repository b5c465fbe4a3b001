/**
 * The event log: one JSON line per install, rollback, prune, refused
 * verification and health-gate decision, appended to state/events.jsonl, so an operator (or an
 * auditor after an incident) can see what changed on the host and what was
 * turned away. A failure to log never hides the outcome of the command.
 */
import { constants } from 'node:fs';
import { mkdir, open } from 'node:fs/promises';
import { redact } from '../secrets.ts';
import { printableJson } from '../text.ts';
import { assertLayoutFolders } from './guard.ts';
import type { InstallLayout } from './layout.ts';

export interface ReleaseEvent {
  action: 'install' | 'rollback' | 'prune' | 'verify' | 'gate' | 'self-update' | 'update';
  version?: string;
  outcome: 'ok' | 'refused' | 'failed' | 'unchanged';
  reason?: string;
  [key: string]: unknown;
}

/**
 * Appends one event. A failure to log is swallowed (the log is a record, not a gate) unless `strict`
 * asks for it to be thrown, for a caller that reports it as a warning.
 */
export async function appendEvent(layout: InstallLayout, event: ReleaseEvent, options: { createState?: boolean; strict?: boolean } = {}): Promise<void> {
  // One line of JSON with no raw control in it (names from archives reach reasons): a viewer of the log acts on none.
  const line = redact(printableJson({ time: new Date().toISOString(), ...event })) + '\n';
  try {
    // Root writes here: never through a state/ or events.jsonl that is a symlink out of the install root.
    await assertLayoutFolders(layout);
    if (options.createState !== false) await mkdir(layout.state, { recursive: true, mode: 0o755 });
    // One write of a short line with O_APPEND: lines never interleave.
    const handle = await open(layout.events, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW, 0o644);
    try {
      await handle.write(line);
    } finally {
      await handle.close();
    }
  } catch (err) {
    if (options.strict) throw err;
  }
}
