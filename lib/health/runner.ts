/**
 * Runs the checks concurrently, each bounded by its own timeout, and turns
 * whatever happens (an outcome, a thrown ContainaiError, a hang) into one
 * result line. The report is healthy when nothing failed.
 */
import { describeCause, isContainaiError } from '../errors.ts';
import type { CheckOutcome, CheckResult, CheckStatus, HealthCheck, HealthContext, HealthReport } from './types.ts';

class CheckTimeout extends Error {}

async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new CheckTimeout()), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A thrown error is a failed check: its message says what, its hint says what to do. */
export function outcomeOfError(err: unknown): CheckOutcome {
  if (isContainaiError(err)) return { status: 'fail', message: err.message, fix: err.hint };
  return { status: 'fail', message: `the check itself broke: ${describeCause(err)}`, fix: 'this is a bug in containai; report it with CONTAINAI_DEBUG=1 output' };
}

export async function runCheck(check: HealthCheck, ctx: HealthContext): Promise<CheckResult> {
  const started = performance.now();
  const reason = check.skip?.(ctx);
  let outcome: CheckOutcome;
  if (reason) {
    outcome = { status: 'skip', message: reason };
  } else {
    try {
      outcome = await withTimeout(check.run(ctx), check.timeoutMs);
    } catch (err) {
      outcome =
        err instanceof CheckTimeout
          ? { status: 'fail', message: `${check.title} did not finish within ${check.timeoutMs / 1000} s`, fix: 'the service it asks is hung or unreachable; check it by hand' }
          : outcomeOfError(err);
    }
  }
  return { id: check.id, title: check.title, ...outcome, durationMs: Math.round(performance.now() - started) };
}

export async function runHealthChecks(checks: readonly HealthCheck[], ctx: HealthContext): Promise<HealthReport> {
  const started = performance.now();
  const results = await Promise.all(checks.map((check) => runCheck(check, ctx)));
  const summary: Record<CheckStatus, number> = { pass: 0, warn: 0, fail: 0, skip: 0 };
  for (const r of results) summary[r.status] += 1;
  return { ok: summary.fail === 0, installRoot: ctx.installRoot, checks: results, summary, durationMs: Math.round(performance.now() - started) };
}
