/**
 * update and the health gate (lib/gate): update installs with the same hooks
 * as install (lib/gate/install-hooks.ts: the bad list refuses a version
 * before anything is fetched, probe files are checked on the staged tree, the
 * trial is written between place and switch).
 *
 * `settleOpenTrial`: update decides nothing new while a release is on trial.
 * It advances the open trial one round (as check-health does, under the
 * same lock, deciding it exactly once), so a host whose update timer runs
 * also decides its trials; while the trial stays undecided, update waits.
 */
import { gateInstallHooks as gateHooksOfGate } from '../gate/install-hooks.ts';
import { readGateState } from '../gate/state.ts';
import type { AdvanceResult, GateDeps } from '../gate/trial.ts';
import type { InstallHooks } from '../release/install.ts';
import type { InstallLayout } from '../release/layout.ts';
import type { TrustPolicy } from '../trust/policy.ts';

export type GateRequest = { spanMs: number } | 'off';

export interface GateOptions {
  gate: GateRequest;
  /** The operator's probe folder (default /etc/containai/health.d). */
  operatorDir?: string;
  /** The policy previous must verify under when a failed trial rolls back. */
  policy: TrustPolicy;
  trustDir?: string;
  lockWaitMs: number;
}

function deps(options: GateOptions): GateDeps {
  return { by: 'update', operatorDir: options.operatorDir, policy: options.policy, trustDir: options.trustDir, lockWaitMs: options.lockWaitMs };
}

/** The gate's install hooks, as install builds them, with update as the one who decides. */
export function gateInstallHooks(options: GateOptions): InstallHooks {
  return gateHooksOfGate({
    spanMs: options.gate === 'off' ? undefined : options.gate.spanMs,
    operatorDir: options.operatorDir,
    by: 'update',
    policy: options.policy,
    trustDir: options.trustDir,
  });
}

/** The version on trial after one more round, or undefined when no trial is open. */
export async function settleOpenTrial(layout: InstallLayout, options: GateOptions): Promise<{ onTrial?: string; advanced?: AdvanceResult }> {
  const state = await readGateState(layout);
  if (!state || (state.decision?.complete && !state.superseded)) return {};
  const { advanceTrial } = await import('../gate/trial.ts');
  const advanced = await advanceTrial(layout, deps(options));
  return { onTrial: advanced.status === 'on-trial' ? advanced.state?.version : undefined, advanced };
}
