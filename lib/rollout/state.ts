/**
 * What a host remembers of a channel, in <install-root>/state/channel-<C>.json
 * (written atomically, like every state file):
 *
 *   tagDigest         the channel tag's digest when the kept statement was read:
 *                     the next run stops after one HEAD when the tag still says it
 *   statement         the last verified statement: its manifest digest, the
 *                     release it names, the predicate, the signed bundle (kept, so
 *                     an install decided later from it is verified again first)
 *                     and who signed it
 *   highestSequence   the highest sequence ever verified on this channel: a
 *                     statement below it is a replay and is refused. It only rises.
 *   lastPoll          the last run that asked the registry
 *   lastSuccess       the last run that read a verified statement (or found the tag unmoved)
 *   decision          the last decision, with its reason: check-health and the
 *                     metrics file report it, and an event is logged only when it changes
 *
 * Only a verified statement moves tagDigest: a channel whose tag names
 * something refused is read again on the next run (the host's policy may
 * have been fixed meanwhile), at the cost of a manifest, not a payload.
 */
import { mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { readPlainFile } from '../fs/plain-file.ts';
import { ContainaiError } from '../errors.ts';
import { writeFileAtomic } from '../fs/atomic.ts';
import { DescriptorSchema } from '../oci/types.ts';
import { assertLayoutFolders } from '../release/guard.ts';
import type { InstallLayout } from '../release/layout.ts';
import { SignerSchema } from '../release/record.ts';
import { RolloutPredicateSchema } from './statement.ts';

export const DECISIONS = ['current', 'halted', 'expired', 'wait', 'skip', 'install', 'no-statement', 'refused', 'failed'] as const;
export type DecisionKind = (typeof DECISIONS)[number];

export const DecisionRecordSchema = z.object({
  kind: z.enum(DECISIONS),
  reason: z.string(),
  at: z.string(),
  version: z.string().optional(),
  sequence: z.number().int().optional(),
});
export type DecisionRecord = z.infer<typeof DecisionRecordSchema>;

export const KeptStatementSchema = z.object({
  /** The rollout manifest's digest. */
  digest: z.string(),
  subject: DescriptorSchema,
  subjectName: z.string(),
  predicate: RolloutPredicateSchema,
  bundle: z.string(),
  signer: SignerSchema,
});
export type KeptStatement = z.infer<typeof KeptStatementSchema>;

export const ChannelStateSchema = z.object({
  format: z.literal(1),
  channel: z.string(),
  /** oci://REGISTRY/REPO, as followed. */
  from: z.string(),
  tagDigest: z.string().optional(),
  statement: KeptStatementSchema.optional(),
  highestSequence: z.number().int().min(0),
  lastPoll: z.string().optional(),
  lastSuccess: z.string().optional(),
  decision: DecisionRecordSchema.optional(),
});
export type ChannelState = z.infer<typeof ChannelStateSchema>;

const PREFIX = 'channel-';
const SUFFIX = '.json';
const MAX_BYTES = 1024 * 1024;

/** state/channel-<C>.json; a channel name is a tag (A-Z a-z 0-9 _ . -, not starting with . or -), safe as a file name. */
export function channelStatePath(layout: InstallLayout, channel: string): string {
  return join(layout.state, `${PREFIX}${channel}${SUFFIX}`);
}

function damaged(path: string, why: string): ContainaiError {
  return new ContainaiError('STATE', `${path} ${why}`, {
    hint: 'remove it: the next update reads the channel afresh (it forgets the highest sequence seen, so only do so if you trust the registry now)',
  });
}

export async function readChannelState(layout: InstallLayout, channel: string): Promise<ChannelState | undefined> {
  return readChannelStateFile(channelStatePath(layout, channel));
}

async function readChannelStateFile(path: string): Promise<ChannelState | undefined> {
  const read = await readPlainFile(path, MAX_BYTES);
  if (read === undefined) return undefined;
  if ('problem' in read) throw damaged(path, read.problem);
  const text = read.bytes.toString('utf8');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw damaged(path, 'is not valid JSON');
  }
  const parsed = ChannelStateSchema.safeParse(json);
  if (!parsed.success) throw damaged(path, `is damaged: ${parsed.error.issues.slice(0, 3).map((i) => `${i.path.join('.') || '(top)'}: ${i.message}`).join('; ')}`);
  return parsed.data;
}

/**
 * Writes the channel's state. The highest sequence is merged with what is on disk now, so two runs
 * at once (the timer and a person) can never lower it.
 */
export async function writeChannelState(layout: InstallLayout, state: ChannelState): Promise<ChannelState> {
  await assertLayoutFolders(layout);
  await mkdir(layout.state, { recursive: true, mode: 0o755 });
  const path = channelStatePath(layout, state.channel);
  const onDisk = await readChannelStateFile(path).catch(() => undefined);
  const merged = { ...state, highestSequence: Math.max(state.highestSequence, onDisk?.highestSequence ?? 0) };
  await writeFileAtomic(path, `${JSON.stringify(merged, null, 2)}\n`);
  return merged;
}

/** Every channel this install root follows, as its state files say (check-health, the metrics file). */
export async function readAllChannelStates(layout: InstallLayout): Promise<Array<{ channel: string; state?: ChannelState; problem?: string }>> {
  let names: string[];
  try {
    names = await readdir(layout.state);
  } catch {
    return [];
  }
  const out: Array<{ channel: string; state?: ChannelState; problem?: string }> = [];
  for (const name of names.sort()) {
    if (!name.startsWith(PREFIX) || !name.endsWith(SUFFIX)) continue;
    const channel = name.slice(PREFIX.length, -SUFFIX.length);
    try {
      const state = await readChannelStateFile(join(layout.state, name));
      if (state) out.push({ channel, state });
    } catch (err) {
      out.push({ channel, problem: err instanceof Error ? err.message : String(err) });
    }
  }
  return out;
}
