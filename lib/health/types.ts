/**
 * The shape of a health report: one result per check, each pass, warn or
 * fail with a one-line message and, unless it passed, a one-line fix.
 * "skip" is for a check that could not apply (--offline, or no engine to ask).
 */
import type { EngineApi, EngineEndpoint } from '../engine/connect.ts';
import type { EngineIdentity } from '../engine/identify.ts';
import type { Profile } from '../profile.ts';
import type { TrustPolicy } from '../trust/policy.ts';

export type CheckStatus = 'pass' | 'warn' | 'fail' | 'skip';

export interface CheckOutcome {
  status: CheckStatus;
  message: string;
  fix?: string;
  details?: Record<string, unknown>;
}

export interface CheckResult extends CheckOutcome {
  id: string;
  title: string;
  durationMs: number;
}

export interface HealthReport {
  ok: boolean;
  installRoot: string;
  checks: CheckResult[];
  summary: Record<CheckStatus, number>;
  durationMs: number;
}

/** What answered on the engine socket, fetched once and shared by the checks that need it. */
export interface EngineProbe {
  api: EngineApi;
  endpoint: EngineEndpoint;
  identity: EngineIdentity;
  /** /info, fetched on first use. */
  info(): Promise<unknown>;
}

export interface HealthContext {
  installRoot: string;
  offline: boolean;
  env: Record<string, string | undefined>;
  /** Given on the command line; undefined means "the policy the install recorded". */
  policy?: TrustPolicy;
  /** Where the host pins keys and roots (for the policy the install recorded). */
  trustDir?: string;
  /** Hash every file and verify the kept bundle again, ignoring the verification stamp. */
  fullVerify: boolean;
  engine(): Promise<EngineProbe>;
  /** current/host/profile.env, validated; rejects with the reason it is not valid. */
  profile(): Promise<Profile>;
}

export interface HealthCheck {
  id: string;
  title: string;
  /** A check that has not answered by then fails, so one slow service cannot hang the report. */
  timeoutMs: number;
  skip?(ctx: HealthContext): string | undefined;
  run(ctx: HealthContext): Promise<CheckOutcome>;
}
