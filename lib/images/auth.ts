/**
 * Registry credentials for a push. They come from the environment only
 * (GHCR_PAT or GITHUB_TOKEN, with GHCR_USER or GITHUB_ACTOR), are registered
 * as secrets the moment they are read, and reach the engine only inside the
 * X-Registry-Auth header: never in argv, a file, or a message.
 */
import { ContainaiError } from '../errors.ts';
import { registerSecret, secretFromEnv } from '../secrets.ts';

/** What dockerode sends, base64url-encoded, as X-Registry-Auth. */
export interface RegistryAuth {
  username: string;
  password: string;
  serveraddress: string;
}

/** The host[:port] part of REGISTRY (ghcr.io/owner → ghcr.io): what credentials are for. */
export function registryHost(registry: string): string {
  return registry.split('/')[0] ?? registry;
}

export function registryAuthFromEnv(registry: string, env: NodeJS.ProcessEnv = process.env): RegistryAuth {
  const password = secretFromEnv('GHCR_PAT', env) ?? secretFromEnv('GITHUB_TOKEN', env);
  const username = env.GHCR_USER || env.GITHUB_ACTOR;
  const host = registryHost(registry);
  if (!password) {
    throw new ContainaiError('INPUT', `no registry credentials for ${host}: GHCR_PAT (or GITHUB_TOKEN) is not set`, {
      hint: 'set GHCR_PAT to a token that may write packages, and GHCR_USER to its owner, in the environment (never as a flag)',
    });
  }
  if (!username) {
    throw new ContainaiError('INPUT', `no registry user for ${host}: GHCR_USER (or GITHUB_ACTOR) is not set`, {
      hint: 'set GHCR_USER to the account that owns GHCR_PAT',
    });
  }
  const auth: RegistryAuth = { username, password, serveraddress: host };
  // The header itself, should an engine or proxy ever echo it back.
  const json = JSON.stringify(auth);
  registerSecret(json);
  registerSecret(Buffer.from(json).toString('base64url'));
  return auth;
}
