/**
 * update and the health gate (lib/gate).
 *
 * SEAM(w-gate2): `gateInstallHooks` is the one place update asks for the
 * install hooks of the gate. Branch w-gate2 adds lib/gate/install-hooks.ts,
 * whose gateInstallHooks(GateInstallOptions) builds them for install and
 * update alike (probe files checked on the staged tree, the trial written
 * between place and switch through its new beforeSwitch hook). At merge,
 * replace the stand-in body below with:
 *
 *   return gateHooksOfGate({ spanMs: options.gate === 'off' ? undefined : options.gate.spanMs,
 *     operatorDir: options.operatorDir, by: 'update', policy: options.policy, trustDir: options.trustDir });
 *
 * (import { gateInstallHooks as gateHooksOfGate } from '../gate/install-hooks.ts'). Until then the
 * stand-in does what the gate's API asks, as closely as today's InstallHooks
 * allow: the bad list refuses a version before anything is fetched, and the
 * trial starts right after the switch (afterActivate, the only hook that
 * knows the release's folder).
 *
 * `settleOpenTrial`: update decides nothing new while a release is on trial.
 * It advances the open trial one round (as check-health does, under the
 * same lock, deciding it exactly once), so a host whose update timer runs
 * also decides its trials; while the trial stays undecided, update waits.
 */
import { badReason } from '../gate/bad.ts';
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

/** SEAM(w-gate2): see the module comment. */
export function gateInstallHooks(options: GateOptions): InstallHooks {
  return {
    refuseVersion: (layout, version) => badReason(layout, version),
    async afterActivate(layout, version, dirName) {
      // Loaded here: the trial pulls in the probes and the health checks.
      const { settleTrial, startTrial } = await import('../gate/trial.ts');
      if (options.gate === 'off') {
        await settleTrial(layout, deps(options), version);
        return;
      }
      await startTrial(layout, { version, dirName, spanMs: options.gate.spanMs }, deps(options));
    },
  };
}

/** The version on trial after one more round, or undefined when no trial is open. */
export async function settleOpenTrial(layout: InstallLayout, options: GateOptions): Promise<{ onTrial?: string; advanced?: AdvanceResult }> {
  const state = await readGateState(layout);
  if (!state || (state.decision?.complete && !state.superseded)) return {};
  const { advanceTrial } = await import('../gate/trial.ts');
  const advanced = await advanceTrial(layout, deps(options));
  return { onTrial: advanced.status === 'on-trial' ? advanced.state?.version : undefined, advanced };
}
