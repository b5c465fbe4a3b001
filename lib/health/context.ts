/**
 * One context per report: the engine is asked once (ping, /version, the PATH
 * around it) and /info once, however many checks need them, and every check
 * can start at once and wait only for what it reads.
 */
import { join } from 'node:path';
import { DEFAULT_TIMEOUT_MS, engineApi, resolveEndpoint } from '../engine/connect.ts';
import { identifyEngine } from '../engine/identify.ts';
import { readProfile, type Profile } from '../profile.ts';
import type { TrustPolicy } from '../trust/policy.ts';
import type { EngineProbe, HealthContext } from './types.ts';

export interface HealthOptions {
  installRoot: string;
  offline?: boolean;
  env?: Record<string, string | undefined>;
  policy?: TrustPolicy;
  /** Where the host pins keys and roots, for verifying against the signer install.json recorded. */
  trustDir?: string;
  /** Ignore the verification stamp: hash every file and verify the kept bundle again. */
  fullVerify?: boolean;
  engineTimeoutMs?: number;
}

function memo<T>(make: () => Promise<T>): () => Promise<T> {
  let promise: Promise<T> | undefined;
  return () => (promise ??= make());
}

export function profilePath(installRoot: string): string {
  return join(installRoot, 'current', 'host', 'profile.env');
}

export function createHealthContext(options: HealthOptions): HealthContext {
  const env = options.env ?? process.env;
  const timeoutMs = options.engineTimeoutMs ?? DEFAULT_TIMEOUT_MS;
  const engine = memo(async (): Promise<EngineProbe> => {
    const endpoint = resolveEndpoint(env);
    const api = engineApi({ endpoint, env, timeoutMs });
    const [, versionResponse] = await Promise.all([api.get('/_ping', 'ping'), api.get('/version', '/version')]);
    const identity = await identifyEngine({ env, endpoint, versionResponse });
    const info = memo(async () => (await api.get('/info', '/info')).body);
    return { api, endpoint, identity, info };
  });
  const profile = memo((): Promise<Profile> => readProfile(profilePath(options.installRoot)));
  return {
    installRoot: options.installRoot,
    offline: options.offline ?? false,
    env,
    policy: options.policy,
    trustDir: options.trustDir,
    fullVerify: options.fullVerify ?? false,
    engine,
    profile,
  };
}
