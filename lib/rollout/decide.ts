/**
 * What a host does with a verified statement, as a pure function of the
 * statement, the time and what the host knows of itself. In order:
 *
 *   current   the current release is that version: nothing to do
 *   expired   the statement's expiry passed: nothing is installed and the
 *             channel is reported stale (a frozen mirror is not obeyed forever)
 *   halted    the halt flag: no new installs
 *   wait      a trial of another release is not decided yet, or the ramp has
 *             not reached this host (its bucket is at or above the share now)
 *   skip      the version failed its health gate here (the bad list), or is
 *             below the downgrade floor
 *   install   everything else: install it, with the health gate
 *
 * A host that waits knows when its turn comes (turnAt), and says so.
 */
import type { DecisionKind } from './state.ts';
import { isoSeconds, shareAt, turnAt, type RolloutPredicate } from './statement.ts';

export interface HostFacts {
  /** The version current names, when there is one. */
  current?: string;
  /** This host's number for the statement's version (lib/rollout/bucket.ts). */
  bucket: number;
  /** Why the version is on the bad list, when it is. */
  bad?: string;
  /** Why the version is below the floor, when it is. */
  belowFloor?: string;
  /** The version on trial, when a trial is not decided yet. */
  onTrial?: string;
}

export interface Decision {
  kind: Exclude<DecisionKind, 'no-statement' | 'refused' | 'failed'>;
  reason: string;
  /** The ramp's share now, 0 to 1. */
  share: number;
  /** When the ramp reaches this host (ms), for a host that waits on the ramp. */
  turnAt?: number;
}

const percent = (share: number) => `${Math.round(share * 10000) / 100}%`;

export function decide(p: RolloutPredicate, now: number, host: HostFacts): Decision {
  const share = shareAt(p, now);
  if (host.current === p.version) return { kind: 'current', reason: `${p.version} is current`, share };
  if (now >= Date.parse(p.expires)) {
    return { kind: 'expired', reason: `the statement (sequence ${p.sequence}) expired at ${p.expires}: the channel is stale, nothing is installed until a new statement is published`, share };
  }
  if (p.halt) return { kind: 'halted', reason: `the rollout of ${p.version} is halted (sequence ${p.sequence})`, share };
  if (host.onTrial) return { kind: 'wait', reason: `the trial of ${host.onTrial} is not decided yet`, share };
  if (host.bucket >= share) {
    const at = turnAt(p, host.bucket);
    const when = at === undefined ? 'the ramp never reaches this host' : `this host's turn comes at ${isoSeconds(at)}`;
    return { kind: 'wait', reason: `the ramp is at ${percent(share)} and this host stands at ${percent(host.bucket)}: ${when}`, share, turnAt: at };
  }
  if (host.bad) return { kind: 'skip', reason: host.bad, share };
  if (host.belowFloor) return { kind: 'skip', reason: host.belowFloor, share };
  return { kind: 'install', reason: `the ramp is at ${percent(share)} and this host stands at ${percent(host.bucket)}`, share };
}
