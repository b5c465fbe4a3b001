/**
 * Trust that stays fresh (issue 15): the public-good root in use (its age and
 * end) and every pinned root, key and certificate. Warns within 60 days of an
 * end date, fails once one has passed or a pinned file cannot be read (every
 * verification would fail on it). The dates are in details.endDates, for the
 * metrics file.
 */
import { daysLeft, WARN_WITHIN_DAYS } from '../trust/expiry.ts';
import { collectTrustStatus, type TrustSource, type TrustStatus } from '../trust/status.ts';
import type { CheckOutcome, HealthCheck } from './types.ts';

const DAY_MS = 86_400_000;

function fixFor(source: TrustSource): string {
  if (source.kind === 'public-good') return 'run "containai-host trust update" (or self-update to a newer agent, which carries a newer root)';
  if (source.problem) return `fix or remove ${source.name}: a pinned file that cannot be read fails every verification`;
  if (source.kind === 'key') return `rotate the key before its certificate ends: pin the new key beside it, sign with it, then remove ${source.name}`;
  return `pin the renewed trusted root beside ${source.name}, then remove the old one once no release you may roll back to needs it`;
}

function describe(source: TrustSource, now: number): string {
  if (source.problem) return `${source.name} ${source.problem}`;
  const when = source.end!.slice(0, 10);
  const days = daysLeft(source.end!, now);
  const reason = source.endReason ? ` (${source.endReason})` : '';
  return source.status === 'expired' ? `${source.name} ended ${when}${reason}` : `${source.name} ends ${when}, in ${days} days${reason}`;
}

export function judgeTrust(status: TrustStatus): CheckOutcome {
  const now = Date.parse(status.now);
  const used = status.sources.filter((s) => s.inUse);
  const endDates = status.sources.map((s) => ({
    source: s.name,
    kind: s.kind,
    inUse: s.inUse,
    end: s.end ?? null,
    daysLeft: s.end ? daysLeft(s.end, now) : null,
    status: s.status,
  }));
  const pg = status.sources.find((s) => s.kind === 'public-good' && s.inUse);
  const since = pg?.verifiedAt ?? pg?.builtAt;
  const publicGood = pg && { inUse: status.publicGood.inUse, tufVersion: pg.tufVersion, since, ageDays: since ? Math.floor((now - Date.parse(since)) / DAY_MS) : null, testing: pg.testing ?? false };
  const next = used.filter((s) => s.end).sort((a, b) => Date.parse(a.end!) - Date.parse(b.end!))[0];
  const details = { endDates, earliestEnd: next?.end ?? null, warnWithinDays: WARN_WITHIN_DAYS, publicGood };

  const failing = used.filter((s) => s.status === 'expired' || s.status === 'invalid');
  if (failing.length > 0) {
    return { status: 'fail', message: failing.map((s) => describe(s, now)).join('; '), fix: fixFor(failing[0]!), details };
  }
  const warning = used.filter((s) => s.status === 'warn');
  if (warning.length > 0) {
    return { status: 'warn', message: warning.map((s) => describe(s, now)).join('; '), fix: fixFor(warning[0]!), details };
  }
  if (status.publicGood.storedProblem) {
    return { status: 'warn', message: `the root kept by trust update is not used: ${status.publicGood.storedProblem}`, fix: 'run "containai-host trust update" to replace it', details };
  }
  if (pg?.testing) {
    return { status: 'warn', message: 'the public-good root in use was chained from CONTAINAI_TUF_ROOT (a test root)', fix: 'unset CONTAINAI_TUF_ROOT and CONTAINAI_TUF_URL: they are for tests', details };
  }
  const pinned = used.filter((s) => s.kind !== 'public-good');
  const parts = [
    pg ? `public-good root TUF v${pg.tufVersion} (${pg.origin === 'tuf-updated' ? 'updated' : 'compiled in'} ${since?.slice(0, 10)}, ${publicGood?.ageDays} days old)` : 'public-good root not used',
    `${pinned.filter((s) => s.kind === 'trusted-root').length} pinned roots, ${pinned.filter((s) => s.kind === 'key').length} pinned keys`,
    next ? `next end ${next.end!.slice(0, 10)} (${next.name}, in ${daysLeft(next.end!, now)} days)` : 'no end date',
  ];
  return { status: 'pass', message: parts.join('; '), details };
}

export const trustCheck: HealthCheck = {
  id: 'trust',
  title: 'trust roots and keys',
  timeoutMs: 3_000,
  async run(ctx) {
    return judgeTrust(
      collectTrustStatus({
        trustDir: ctx.trustDir,
        trustedRootFiles: ctx.policy?.trustedRootFiles,
        keyFiles: ctx.policy?.keyFiles,
        publicGood: ctx.policy?.publicGood,
        env: ctx.env,
      }),
    );
  },
};
