/**
 * The health checks that apply to a release on trial, run as probes: the
 * engine answers and is Docker, the release still verifies, the profile is
 * valid and its images are present. A check fails its probe only when it
 * fails; warn and skip pass (a missing gVisor is not the new release's fault).
 * check-health hands its own results in (ctx.checkResults), so a round it
 * drives does not run them twice.
 */
import { engineCheck } from '../../health/engine.ts';
import { profileCheck } from '../../health/profile.ts';
import { releaseCheck } from '../../health/release.ts';
import { runCheck } from '../../health/runner.ts';
import type { HealthCheck } from '../../health/types.ts';
import { CHECK_PROBE_PREFIX } from '../kind.ts';
import type { CheckProbe, ProbeContext, ProbeOutcome } from '../types.ts';

export const GATE_HEALTH_CHECKS: readonly HealthCheck[] = [engineCheck, releaseCheck, profileCheck];

/** One probe per check, named health:<id>, with the default grace (at most the gate). */
export function checkProbes(checks: readonly HealthCheck[], graceMs: number): CheckProbe[] {
  return checks.map((check) => ({
    kind: 'check',
    name: `${CHECK_PROBE_PREFIX}${check.id}`,
    source: 'health check',
    check: check.id,
    timeoutMs: check.timeoutMs,
    graceMs,
  }));
}

export async function runCheckProbe(probe: CheckProbe, ctx: ProbeContext): Promise<ProbeOutcome> {
  const check = ctx.checks.get(probe.check);
  if (!check) return { ok: false, message: `no health check "${probe.check}"` };
  const result = ctx.checkResults?.get(probe.check) ?? (await runCheck(check, ctx.health));
  return { ok: result.status !== 'fail', message: `${result.status}: ${result.message}` };
}
