/**
 * self-update's events, logged like installs (one JSON line, appended with
 * O_APPEND, never through a link, redacted). Where: the agent serves the whole
 * host rather than one install root, so by default the state folder's
 * events.jsonl (CONTAINAI_STATE_DIR, default /var/lib/containai/events.jsonl);
 * with --install-root, that root's state/events.jsonl, beside its installs, so
 * one file tells the host's story. A failure to log never hides the outcome.
 */
import { constants } from 'node:fs';
import { mkdir, open } from 'node:fs/promises';
import { join } from 'node:path';
import { assertLayoutFolders } from '../release/guard.ts';
import { installLayout } from '../release/layout.ts';
import { redact } from '../secrets.ts';
import { stateDir } from '../trust/tuf-store.ts';

export interface AgentEvent {
  action: 'self-update' | 'self-update-rollback';
  outcome: 'ok' | 'refused' | 'failed' | 'unchanged';
  version?: string;
  from?: string;
  binary: string;
  source?: string;
  sha256?: string;
  signer?: string;
  reason?: string;
}

/** The events.jsonl self-update writes to (see the header); undefined when there is none to write. */
export function agentEventLog(installRoot: string | undefined, env: Record<string, string | undefined> = process.env): string | undefined {
  if (installRoot) return installLayout(installRoot).events;
  const dir = stateDir(env);
  return dir ? join(dir, 'events.jsonl') : undefined;
}

export async function appendAgentEvent(installRoot: string | undefined, event: AgentEvent): Promise<void> {
  const path = agentEventLog(installRoot);
  if (!path) return;
  const line = redact(JSON.stringify({ time: new Date().toISOString(), ...event })) + '\n';
  try {
    if (installRoot) await assertLayoutFolders(installLayout(installRoot));
    await mkdir(join(path, '..'), { recursive: true, mode: 0o755 });
    const handle = await open(path, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW, 0o644);
    try {
      await handle.write(line);
    } finally {
      await handle.close();
    }
  } catch {
    // The log is a record, not a gate.
  }
}
