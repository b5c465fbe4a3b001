/**
 * The update channel (lib/rollout): what the last `update` decided, from
 * state/channel-<C>.json. Warns when the channel is stale (its statement's
 * expiry passed: nothing new is installed until a new statement comes, and a
 * mirror may be serving an old one), and when the last run was refused or
 * failed. The same facts feed the metrics file.
 */
import { installLayout } from '../release/layout.ts';
import { readAllChannelStates, type ChannelState } from '../rollout/state.ts';
import { shareAt } from '../rollout/statement.ts';
import type { CheckOutcome, HealthCheck } from './types.ts';

export interface ChannelFacts {
  channel: string;
  decision?: string;
  reason?: string;
  version?: string;
  sequence?: number;
  /** The ramp's share now, 0 to 1. */
  share?: number;
  halted: boolean;
  /** The statement's expiry passed. */
  stale: boolean;
  expires?: string;
  lastPoll?: string;
  lastSuccess?: string;
  /** A state file that cannot be read. */
  problem?: string;
}

export function channelFacts(channel: string, state: ChannelState | undefined, now: number, problem?: string): ChannelFacts {
  const p = state?.statement?.predicate;
  return {
    channel,
    decision: state?.decision?.kind,
    reason: state?.decision?.reason,
    version: p?.version,
    sequence: p?.sequence,
    share: p ? shareAt(p, now) : undefined,
    halted: p?.halt ?? false,
    stale: p !== undefined && now >= Date.parse(p.expires),
    expires: p?.expires,
    lastPoll: state?.lastPoll,
    lastSuccess: state?.lastSuccess,
    problem,
  };
}

export async function readChannelFacts(installRoot: string, now = Date.now()): Promise<ChannelFacts[]> {
  return (await readAllChannelStates(installLayout(installRoot))).map((c) => channelFacts(c.channel, c.state, now, c.problem));
}

function judge(c: ChannelFacts): CheckOutcome {
  const what = c.version ? `${c.version}, sequence ${c.sequence}` : 'no statement';
  if (c.problem) return { status: 'warn', message: `${c.channel}: ${c.problem}`, fix: `remove state/channel-${c.channel}.json; the next update reads the channel afresh` };
  if (c.stale) {
    return {
      status: 'warn',
      message: `${c.channel} is stale: its statement (${what}) expired at ${c.expires}; nothing new is installed from it`,
      fix: 'publish a new statement (containai-build rollout); if one was published, the registry or a mirror is serving an old one',
    };
  }
  if (c.decision === 'refused' || c.decision === 'no-statement' || c.decision === 'failed') {
    return { status: 'warn', message: `${c.channel}: the last update ${c.decision === 'failed' ? 'failed' : 'was refused'}: ${c.reason}`, fix: 'see containai-host update --json; fix the channel or the host policy it names' };
  }
  const share = c.share === undefined ? '' : `, ramp at ${Math.round(c.share * 10000) / 100}%`;
  return { status: 'pass', message: `${c.channel}: ${c.decision ?? 'not decided yet'} (${what}${c.halted ? ', halted' : share}): ${c.reason ?? ''}`.replace(/: $/, '') };
}

const RANK = { pass: 0, skip: 0, warn: 1, fail: 2 } as const;

export const channelCheck: HealthCheck = {
  id: 'channel',
  title: 'update channel',
  timeoutMs: 3_000,
  async run(ctx) {
    const channels = await readChannelFacts(ctx.installRoot);
    if (channels.length === 0) return { status: 'skip', message: 'no update channel followed here (containai-host update has not run)' };
    const outcomes = channels.map(judge);
    const worst = outcomes.reduce((a, b) => (RANK[b.status] > RANK[a.status] ? b : a));
    return {
      status: worst.status,
      message: outcomes.map((o) => o.message).join('; '),
      fix: worst.fix,
      details: { channels, stale: channels.filter((c) => c.stale).map((c) => c.channel) },
    };
  },
};
