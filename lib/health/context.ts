/**
 * One context per report: the engine is asked once (ping, /version, the PATH
 * around it) and /info once, however many checks need them, and every check
 * can start at once and wait only for what it reads.
 */
import { lstat, realpath } from 'node:fs/promises';
import { join, sep } from 'node:path';
import { DEFAULT_TIMEOUT_MS, engineApi, resolveEndpoint } from '../engine/connect.ts';
import { identifyEngine } from '../engine/identify.ts';
import { ContainaiError } from '../errors.ts';
import { readProfile, type Profile } from '../profile.ts';
import { readReleaseLink } from '../release/activate.ts';
import { CURRENT_LINK, installLayout } from '../release/layout.ts';
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

/**
 * The profile of the current release, read only when it is a plain file inside
 * that release: a profile.env (or host/) swapped for a link would have root
 * judge, and echo, a file of the attacker's choosing from anywhere.
 */
async function readReleaseProfile(installRoot: string): Promise<Profile> {
  const path = profilePath(installRoot);
  const refuse = (why: string) =>
    new ContainaiError('VERIFY', `${path} ${why}; refusing to read the profile through it`, {
      hint: 'the profile must be the file the release shipped: install the release again (install --force) or roll back',
    });
  const info = await lstat(path).catch(() => undefined);
  if (info?.isSymbolicLink()) throw refuse('is a symlink');
  if (info) {
    const link = await readReleaseLink(installLayout(installRoot), CURRENT_LINK);
    if (link.kind !== 'release') throw refuse(`is not in a release (${link.kind === 'invalid' ? link.reason : 'no current link'})`);
    const [release, real] = await Promise.all([realpath(link.dir), realpath(path)]);
    if (!real.startsWith(release + sep)) throw refuse(`leaves the release folder releases/${link.dirName}`);
  }
  return readProfile(path);
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
  const profile = memo((): Promise<Profile> => readReleaseProfile(options.installRoot));
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
