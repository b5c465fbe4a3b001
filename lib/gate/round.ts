/**
 * One round of a trial: every probe once, concurrently, each bounded by its
 * own timeout; then the results folded into the trial (pure), and the verdict
 * the trial now allows (pure): a probe failing for longer than its grace
 * fails the gate; past the deadline, a round where every probe passes passes
 * it; otherwise the trial goes on. A probe still failing at the deadline, but
 * within its grace, holds the decision until it recovers or its grace runs out.
 */
import { join } from 'node:path';
import { describeCause, isContainaiError } from '../errors.ts';
import { createHealthContext } from '../health/context.ts';
import type { CheckResult, HealthCheck } from '../health/types.ts';
import type { InstallLayout } from '../release/layout.ts';
import type { TrustPolicy } from '../trust/policy.ts';
import { DEFAULT_OPERATOR_PROBE_DIR, DEFAULT_PROBE_GRACE_MS, loadProbes } from './load.ts';
import { checkProbes, GATE_HEALTH_CHECKS, runCheckProbe } from './probes/checks.ts';
import { probeKind } from './probes/index.ts';
import { formatSpan } from './span.ts';
import type { GateState, ProbeResult } from './state.ts';
import { systemctlShow, type SystemctlShow } from './systemctl.ts';
import type { Probe, ProbeContext, ProbeOutcome } from './types.ts';

export interface RoundDeps {
  /** The operator's probe folder; default: the one the trial started with (gate.json), else /etc/containai/health.d. */
  operatorDir?: string;
  /** The lib/health checks run as probes (default engine, release, profile). */
  healthChecks?: readonly HealthCheck[];
  /** Results already at hand (check-health's report): not run again. */
  healthResults?: readonly CheckResult[];
  /** The trust policy the release check verifies under; default: the signer install.json recorded. */
  policy?: TrustPolicy;
  trustDir?: string;
  env?: Record<string, string | undefined>;
  systemctl?: SystemctlShow;
}

/** The probes of the release on trial: its files and the operator's, then the health checks. */
export async function trialProbes(layout: InstallLayout, state: GateState, deps: RoundDeps): Promise<Probe[]> {
  const files = await loadProbes(join(layout.releases, state.dir), deps.operatorDir ?? state.operatorDir ?? DEFAULT_OPERATOR_PROBE_DIR, state.spanMs);
  return [...checkProbes(deps.healthChecks ?? GATE_HEALTH_CHECKS, Math.min(DEFAULT_PROBE_GRACE_MS, state.spanMs)), ...files];
}

/** A probe that breaks or hangs is a failing probe, never a broken round. */
async function runProbe(probe: Probe, ctx: ProbeContext): Promise<ProbeOutcome> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const guard = new Promise<ProbeOutcome>((resolve) => {
    // Each kind bounds itself; this only catches one that does not.
    timer = setTimeout(() => resolve({ ok: false, message: `did not finish within ${formatSpan(probe.timeoutMs)}` }), probe.timeoutMs + 2_000);
  });
  const work = (async () => {
    if (probe.kind === 'check') return runCheckProbe(probe, ctx);
    const kind = probeKind(probe.kind);
    if (!kind) return { ok: false, message: `unknown kind ${probe.kind}` };
    return kind.run(probe, ctx);
  })().catch((err: unknown): ProbeOutcome => ({ ok: false, message: isContainaiError(err) ? err.message : describeCause(err) }));
  try {
    return await Promise.race([work, guard]);
  } finally {
    clearTimeout(timer);
  }
}

export async function runRound(layout: InstallLayout, state: GateState, probes: readonly Probe[], deps: RoundDeps): Promise<Map<string, ProbeOutcome>> {
  const health = createHealthContext({ installRoot: layout.root, offline: true, env: deps.env, policy: deps.policy, trustDir: deps.trustDir });
  const checks = new Map((deps.healthChecks ?? GATE_HEALTH_CHECKS).map((c) => [c.id, c]));
  const checkResults = deps.healthResults ? new Map(deps.healthResults.map((r) => [r.id, r])) : undefined;
  const baselines = new Map(state.probes.map((p) => [p.name, p.baseline]));
  const releaseDir = join(layout.releases, state.dir);
  const systemctl = deps.systemctl ?? systemctlShow;
  const outcomes = await Promise.all(
    probes.map(async (probe) => [probe.name, await runProbe(probe, { installRoot: layout.root, releaseDir, health, systemctl, checks, checkResults, baseline: baselines.get(probe.name) })] as const),
  );
  return new Map(outcomes);
}

const iso = (ms: number) => new Date(ms).toISOString();

/** The trial with this round's results: pure, so a round can be dropped if the trial changed meanwhile. */
export function mergeRound(state: GateState, probes: readonly Probe[], outcomes: ReadonlyMap<string, ProbeOutcome>, now: number): GateState {
  const before = new Map(state.probes.map((p) => [p.name, p]));
  const at = iso(now);
  const results = probes.map((probe): ProbeResult => {
    const prev = before.get(probe.name);
    const outcome = outcomes.get(probe.name) ?? { ok: false, message: 'did not run' };
    const failing = !outcome.ok;
    return {
      name: probe.name,
      kind: probe.kind,
      source: probe.source,
      graceMs: probe.graceMs,
      status: failing ? 'fail' : 'pass',
      message: outcome.message,
      rounds: (prev?.rounds ?? 0) + 1,
      failures: (prev?.failures ?? 0) + (failing ? 1 : 0),
      lastAt: at,
      firstFailureAt: prev?.firstFailureAt ?? (failing ? at : undefined),
      failingSince: failing ? (prev?.status === 'fail' && prev.failingSince ? prev.failingSince : at) : undefined,
      // The first value of each counter stays: growth is measured over the whole trial.
      baseline: outcome.observed || prev?.baseline ? { ...outcome.observed, ...prev?.baseline } : undefined,
    };
  });
  return { ...state, rounds: state.rounds + 1, lastRoundAt: at, probes: results };
}

export type Verdict = { kind: 'continue' } | { kind: 'pass'; reason: string } | { kind: 'fail'; probe: string; reason: string };

export function judge(state: GateState, now: number): Verdict {
  const overdue = state.probes
    .filter((p) => p.status === 'fail' && p.failingSince && now - Date.parse(p.failingSince) >= p.graceMs)
    .sort((a, b) => Date.parse(a.failingSince as string) - Date.parse(b.failingSince as string))[0];
  if (overdue) {
    const failedFor = now - Date.parse(overdue.failingSince as string);
    return {
      kind: 'fail',
      probe: overdue.name,
      reason: `probe "${overdue.name}" failed for ${formatSpan(failedFor)} (grace ${formatSpan(overdue.graceMs)}): ${overdue.message}`,
    };
  }
  if (now >= Date.parse(state.deadline) && state.probes.every((p) => p.status === 'pass')) {
    const n = state.probes.length;
    return { kind: 'pass', reason: `${n} probe${n === 1 ? '' : 's'} passed through the ${formatSpan(state.spanMs)} window` };
  }
  return { kind: 'continue' };
}

const ROUND_MS = 1_000;

/** When a waiting caller (install --wait) should run the next round. */
export function nextRoundInMs(state: GateState, now: number): number {
  const due = [Date.parse(state.deadline) - now, ...state.probes.filter((p) => p.status === 'fail' && p.failingSince).map((p) => Date.parse(p.failingSince as string) + p.graceMs - now)];
  const soonest = Math.min(...due.filter((ms) => ms > 0), ROUND_MS);
  return Math.max(50, soonest);
}
