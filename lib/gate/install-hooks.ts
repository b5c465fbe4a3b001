/**
 * The health gate in the install pipeline (lib/release/install.ts's
 * InstallHooks), for every command that installs: `install`, and `update`
 * (issue 16), which builds its hooks here with the same options.
 *
 *   refuseVersion  a version on the bad list is refused, naming when and why
 *                  it failed (the pipeline skips this hook with --force);
 *   beforeActivate the probe files of the staged release and the operator's
 *                  are validated: a broken or hostile one is refused, file and
 *                  field named, before the release is placed or switched;
 *   beforeSwitch   with the lock held, between place and the switch: the trial
 *                  is written (startTrial), so a crash at any instant leaves a
 *                  trial the next run decides. With --no-gate, an undecided
 *                  trial ends as superseded and a forced bad version is taken
 *                  off the list (current must never be a version it names).
 *
 * afterActivate is not needed: everything the gate writes is on disk before
 * the switch.
 */
import { ContainaiError, isContainaiError, usageError } from '../errors.ts';
import type { InstallHooks } from '../release/install.ts';
import type { InstallLayout } from '../release/layout.ts';
import type { TrustPolicy } from '../trust/policy.ts';
import { badReason, forgetBadVersion } from './bad.ts';
import { DEFAULT_OPERATOR_PROBE_DIR, loadProbes } from './load.ts';
import { gateSpanMs } from './span.ts';
import type { GateDeps } from './trial.ts';

export interface GateInstallOptions {
  /** The trial's length; undefined is --no-gate (no trial: activation as before the gate). */
  spanMs?: number;
  /** The operator's probe folder (default /etc/containai/health.d); the trial keeps it for every round. */
  operatorDir?: string;
  /** Who installs, recorded when a trial this install replaces ends undecided: "install", "update". */
  by: string;
  /** The policy a rollback target must verify under when this install completes an interrupted decision. */
  policy?: TrustPolicy;
  trustDir?: string;
}

/** The command-line words (`--gate SPAN | --no-gate`, `--probe-dir DIR`) as options; a usage error (exit 2) for bad ones. */
export function gateOptionsFromFlags(flags: { gate?: string; noGate?: boolean; probeDir?: string }, by: string): GateInstallOptions {
  if (flags.noGate && flags.gate !== undefined) throw usageError('give --gate SPAN or --no-gate, not both', '--no-gate activates without a trial; --gate sets how long the trial lasts');
  return { spanMs: flags.noGate ? undefined : gateSpanMs(flags.gate), operatorDir: flags.probeDir, by };
}

/** The GateDeps an install's hooks and its --wait use. */
export function gateDeps(options: GateInstallOptions, extra: Partial<GateDeps> = {}): GateDeps {
  return { by: options.by, operatorDir: options.operatorDir ?? DEFAULT_OPERATOR_PROBE_DIR, policy: options.policy, trustDir: options.trustDir, ...extra };
}

/** The hooks to hand to installRelease. */
export function gateInstallHooks(options: GateInstallOptions): InstallHooks {
  const deps = gateDeps(options);
  return {
    refuseVersion: (layout: InstallLayout, version: string) => badReason(layout, version),

    async beforeActivate(tree: string, version: string) {
      if (options.spanMs === undefined) return;
      try {
        await loadProbes(tree, deps.operatorDir, options.spanMs);
      } catch (err) {
        if (!isContainaiError(err)) throw err;
        throw new ContainaiError(err.code, `${version}: ${err.message}`, { hint: `${err.hint}; nothing was activated (current is unchanged)`, details: err.details, cause: err });
      }
    },

    async beforeSwitch(layout: InstallLayout, version: string, dirName: string) {
      // Loaded here: the trial pulls in the probes and the health checks, which a refused install never needs.
      const { settleTrial, startTrial } = await import('./trial.ts');
      if (options.spanMs === undefined) {
        await settleTrial(layout, deps, version);
        await forgetBadVersion(layout, version);
        return;
      }
      await startTrial(layout, { version, dirName, spanMs: options.spanMs }, deps);
    },
  };
}
