/**
 * The health gate's probes (SPEC "The health gate"): what a probe is once its
 * file is validated, what one run of it says, and what a run may use.
 *
 * A probe file names one of the kinds in lib/gate/probes/index.ts; the health
 * checks that apply to a release on trial (engine, release, profile) run as
 * probes of kind "check" beside them, under the same grace rule.
 */
import type { CheckResult, HealthCheck, HealthContext } from '../health/types.ts';
import type { SystemctlShow } from './systemctl.ts';

export interface ProbeCommon {
  name: string;
  /** Where it came from: the file (release-relative or absolute), or "health check". */
  source: string;
  timeoutMs: number;
  /** How long it may fail before it fails the gate (a probe file's grace, at most the gate). */
  graceMs: number;
}

export interface ExecProbe extends ProbeCommon {
  kind: 'exec';
  /** argv as written; argv[0] is replaced by program when it runs. */
  argv: string[];
  /** The absolute program: argv[0] as written, or resolved inside the release folder. */
  program: string;
  /** argv[0] was relative to the release: its real path is checked to stay inside it before each run. */
  inRelease: boolean;
  user?: string;
}

export interface HttpProbe extends ProbeCommon {
  kind: 'http';
  url: string;
  status: number;
}

export interface SystemdProbe extends ProbeCommon {
  kind: 'systemd';
  unit: string;
}

export interface ContainersProbe extends ProbeCommon {
  kind: 'containers';
}

/** One of lib/health's checks, run as a probe: it fails the probe only when it fails (warn and skip pass). */
export interface CheckProbe extends ProbeCommon {
  kind: 'check';
  check: string;
}

export type FileProbe = ExecProbe | HttpProbe | SystemdProbe | ContainersProbe;
export type Probe = FileProbe | CheckProbe;
export type ProbeKindName = FileProbe['kind'];

export interface ProbeOutcome {
  ok: boolean;
  /** One line for a person; text from outside (a program's stderr, a unit's state) already printable. */
  message: string;
  /**
   * Counters that must not grow during the trial (a unit's NRestarts, each
   * container's RestartCount). The first value seen in a trial is kept as the
   * baseline, and the probe compares later runs against it.
   */
  observed?: Record<string, number>;
}

export interface ProbeContext {
  installRoot: string;
  /** The release on trial: releases/<dir>, absolute. */
  releaseDir: string;
  /** Engine and profile, asked once per round however many probes read them. */
  health: HealthContext;
  systemctl: SystemctlShow;
  /** The counters this probe reported first in this trial. */
  baseline?: Record<string, number>;
  /** The health checks by id, for kind "check". */
  checks: ReadonlyMap<string, HealthCheck>;
  /** Results already at hand (check-health's own report), used instead of running a check again. */
  checkResults?: ReadonlyMap<string, CheckResult>;
}

/** A problem with one field of one probe file, as the refusal names it. */
export interface FieldProblem {
  field: string;
  message: string;
}
