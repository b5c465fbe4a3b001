/**
 * The gate's two files under state/ (SPEC "The host"):
 *
 *   gate.json  the release on trial, or the last one and its decision
 *   bad.json   versions that failed their gate, refused by install and update until --force
 *
 * Both are replaced whole (lib/fs/atomic.ts): a reader, or the next run after
 * a kill, sees the old content or the new, never half. Read without following
 * a link (a state file swapped for one is damaged, not followed), validated
 * with zod; a damaged file is an error naming the file, never a silent reset
 * (resetting gate.json would forget a decision, bad.json a refusal).
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { readPlainFile } from '../fs/plain-file.ts';
import { ContainaiError } from '../errors.ts';
import { writeFileAtomic } from '../fs/atomic.ts';
import { assertLayoutFolders } from '../release/guard.ts';
import type { InstallLayout } from '../release/layout.ts';

export const GATE_FILE = 'gate.json';
export const BAD_FILE = 'bad.json';
const MAX_STATE_BYTES = 1024 * 1024;

export function gatePath(layout: InstallLayout): string {
  return join(layout.state, GATE_FILE);
}

export function badPath(layout: InstallLayout): string {
  return join(layout.state, BAD_FILE);
}

const DIR_NAME = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._+@-]*$/);
const TIME = z.iso.datetime();

export const ProbeResultSchema = z.object({
  name: z.string(),
  kind: z.string(),
  source: z.string(),
  graceMs: z.number().int().nonnegative(),
  /** pending until its first round. */
  status: z.enum(['pending', 'pass', 'fail']),
  message: z.string(),
  rounds: z.number().int().nonnegative(),
  failures: z.number().int().nonnegative(),
  lastAt: TIME.optional(),
  /** The first failure of the whole trial. */
  firstFailureAt: TIME.optional(),
  /** When the failure it is in now began; cleared by a pass. The gate fails once this is older than the grace. */
  failingSince: TIME.optional(),
  /** Counters as first seen in this trial (NRestarts, RestartCount): they must not grow. */
  baseline: z.record(z.string(), z.number()).optional(),
});
export type ProbeResult = z.infer<typeof ProbeResultSchema>;

export const DecisionSchema = z.object({
  outcome: z.enum(['pass', 'fail', 'superseded']),
  at: TIME,
  /** Who decided: check-health, install --wait, gate pass, gate fail, install (superseded). */
  by: z.string(),
  reason: z.string(),
  /** The probe whose failure decided it. */
  probe: z.string().optional(),
  /** Every step after the decision is done (switch, bad.json, event). Until then the next run completes it. */
  complete: z.boolean(),
  /** The release made current again (a folder under releases/). */
  rolledBackTo: z.string().optional(),
  /** Why a failed trial could not roll back (no previous, or it does not verify): the failed release stays current. */
  rollbackProblem: z.string().optional(),
});
export type Decision = z.infer<typeof DecisionSchema>;

const ReleaseRefSchema = z.object({ version: z.string(), dir: DIR_NAME });

export const GateStateSchema = z.object({
  format: z.literal(1),
  trialId: z.string().regex(/^[0-9a-f]{16}$/),
  version: z.string(),
  /** The release on trial: releases/<dir>. */
  dir: DIR_NAME,
  /** What was current before it: where a failure rolls back to. */
  previous: ReleaseRefSchema.optional(),
  start: TIME,
  deadline: TIME,
  spanMs: z.number().int().positive(),
  /**
   * The operator's probe folder the trial started with (install --probe-dir), absolute: every round
   * reads the same one, whoever runs it (the timer's check-health takes no --probe-dir). Absent in
   * trials of stage 1: the default folder.
   */
  operatorDir: z.string().startsWith('/').max(4096).optional(),
  rounds: z.number().int().nonnegative(),
  lastRoundAt: TIME.optional(),
  probes: z.array(ProbeResultSchema),
  decision: DecisionSchema.optional(),
  /** The undecided trial this one replaced (a new install during it), until its event is logged. */
  superseded: z.object({ trialId: z.string(), version: z.string(), at: TIME }).optional(),
});
export type GateState = z.infer<typeof GateStateSchema>;

export const BadEntrySchema = z.object({
  version: z.string(),
  at: TIME,
  reason: z.string(),
  trialId: z.string().optional(),
});
export type BadEntry = z.infer<typeof BadEntrySchema>;

const BadListSchema = z.object({ format: z.literal(1), versions: z.array(BadEntrySchema) });

/** A state file's text, or undefined when there is none; a link, a FIFO or a huge file is refused. */
async function readStateFile(path: string): Promise<string | undefined> {
  const read = await readPlainFile(path, MAX_STATE_BYTES);
  if (read === undefined) return undefined;
  if ('problem' in read) throw damaged(path, read.problem);
  return read.bytes.toString('utf8');
}

function damaged(path: string, why: string): ContainaiError {
  return new ContainaiError('STATE', `${path} ${why}`, {
    hint: path.endsWith(BAD_FILE)
      ? 'restore it from a backup; removing it forgets which versions failed their gate (install would take them again)'
      : 'look at it, then remove it to end the trial undecided (containai-host gate status shows what it held)',
  });
}

function parseState<T>(path: string, text: string, schema: z.ZodType<T>): T {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw damaged(path, 'is not valid JSON');
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) throw damaged(path, `is damaged: ${parsed.error.issues.slice(0, 3).map((i) => `${i.path.join('.') || '(top)'}: ${i.message}`).join('; ')}`);
  return parsed.data;
}

export async function readGateState(layout: InstallLayout): Promise<GateState | undefined> {
  const path = gatePath(layout);
  const text = await readStateFile(path);
  return text === undefined ? undefined : parseState(path, text, GateStateSchema);
}

async function writeState(layout: InstallLayout, path: string, doc: unknown): Promise<void> {
  // Root writes here: never through a state/ that is a link out of the install root.
  await assertLayoutFolders(layout);
  await mkdir(layout.state, { recursive: true, mode: 0o755 });
  await writeFileAtomic(path, `${JSON.stringify(doc, null, 2)}\n`);
}

export async function writeGateState(layout: InstallLayout, state: GateState): Promise<void> {
  await writeState(layout, gatePath(layout), state);
}

export async function readBadList(layout: InstallLayout): Promise<BadEntry[]> {
  const path = badPath(layout);
  const text = await readStateFile(path);
  return text === undefined ? [] : parseState(path, text, BadListSchema).versions;
}

export async function writeBadList(layout: InstallLayout, versions: readonly BadEntry[]): Promise<void> {
  await writeState(layout, badPath(layout), { format: 1, versions });
}
