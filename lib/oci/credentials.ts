/**
 * Registry credentials, from where operators already keep them:
 *
 * - pulls (hosts): Docker's config.json as `docker login` writes it
 *   ($DOCKER_CONFIG/config.json, else ~/.docker/config.json): auths[host].auth
 *   (base64 "user:password") or auths[host].username/password; else
 *   GITHUB_TOKEN for ghcr.io; else anonymous (the registry's token server
 *   still issues an anonymous pull token where the repository is public).
 * - pushes (publish): GHCR_PAT or GITHUB_TOKEN with GHCR_USER or GITHUB_ACTOR,
 *   as `images push` takes them (lib/images/auth.ts), else config.json.
 *
 * A credential helper or store (credsStore, credHelpers) is not run: running
 * a program named by a file is not something a root agent does on a guess.
 * When config.json says the host's credentials live in one, that is a clear
 * error, not a silent anonymous pull. Every value read is registered as a
 * secret at once, and none is ever put in argv.
 */
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { ContainaiError } from '../errors.ts';
import { registerSecret, secretFromEnv } from '../secrets.ts';
import { registryAuthFromEnv } from '../images/auth.ts';
import { printableName } from '../text.ts';
import { zodProblems } from './types.ts';

export interface RegistryCredentials {
  username: string;
  password: string;
  /** Where they came from, safe to print: "DOCKER_CONFIG/config.json", "GITHUB_TOKEN". */
  source: string;
}

const AuthEntry = z.looseObject({
  auth: z.string().optional(),
  username: z.string().optional(),
  password: z.string().optional(),
  identitytoken: z.string().optional(),
  registrytoken: z.string().optional(),
});
const DockerConfig = z.looseObject({
  auths: z.record(z.string(), AuthEntry).optional(),
  credsStore: z.string().optional(),
  credHelpers: z.record(z.string(), z.string()).optional(),
});

/** Docker's path for config.json: $DOCKER_CONFIG/config.json, else ~/.docker/config.json. */
export function dockerConfigPath(env: NodeJS.ProcessEnv = process.env): { path: string; label: string } {
  if (env.DOCKER_CONFIG) return { path: join(env.DOCKER_CONFIG, 'config.json'), label: '$DOCKER_CONFIG/config.json' };
  return { path: join(env.HOME || homedir(), '.docker', 'config.json'), label: '~/.docker/config.json' };
}

const DOCKER_HUB = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);

/** A config.json key ("https://ghcr.io", "ghcr.io", "https://index.docker.io/v1/") as host[:port]. */
function keyHost(key: string): string {
  const host = key.replace(/^[a-z]+:\/\//i, '').split('/')[0]?.toLowerCase() ?? '';
  return DOCKER_HUB.has(host) ? 'docker.io' : host;
}

function sameHost(key: string, registry: string): boolean {
  const want = DOCKER_HUB.has(registry) ? 'docker.io' : registry.toLowerCase();
  return keyHost(key) === want;
}

function configError(label: string, message: string, hint: string): ContainaiError {
  return new ContainaiError('INPUT', `${label}: ${message}`, { hint });
}

/** The credentials config.json holds for `registry` (host[:port]); undefined when it has none or does not exist. */
export async function dockerConfigCredentials(registry: string, env: NodeJS.ProcessEnv = process.env): Promise<RegistryCredentials | undefined> {
  const { path, label } = dockerConfigPath(env);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
    throw configError(label, `cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`, `check the file's permissions, or point DOCKER_CONFIG at the folder holding a readable config.json`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw configError(label, 'is not JSON', 'run `docker login` again to rewrite it, or fix the file');
  }
  const parsed = DockerConfig.safeParse(json);
  if (!parsed.success) throw configError(label, `is not a Docker config: ${zodProblems(parsed.error)}`, 'run `docker login` again to rewrite it');
  const config = parsed.data;
  const host = printableName(registry);

  const helper = Object.entries(config.credHelpers ?? {}).find(([key]) => sameHost(key, registry))?.[1];
  if (helper !== undefined) {
    throw configError(label, `the credentials for ${host} are kept by the credential helper "docker-credential-${printableName(helper)}", which containai does not run`, `put them in config.json itself: remove credHelpers["${host}"] and run \`docker login ${host}\` (or set DOCKER_CONFIG to a folder with such a config.json)`);
  }
  const entry = Object.entries(config.auths ?? {}).find(([key]) => sameHost(key, registry))?.[1];
  if (!entry) return undefined;
  for (const secret of [entry.auth, entry.password, entry.identitytoken, entry.registrytoken]) registerSecret(secret);

  let username = entry.username;
  let password = entry.password;
  if (entry.auth) {
    const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon <= 0) throw configError(label, `auths["${host}"].auth is not base64 of "user:password"`, `run \`docker login ${host}\` again`);
    username = decoded.slice(0, colon);
    password = decoded.slice(colon + 1);
  }
  if (username && password) {
    registerSecret(password);
    return { username, password, source: label };
  }
  if (entry.identitytoken || entry.registrytoken) {
    throw configError(label, `auths["${host}"] holds only an identity token (an OAuth refresh token), which containai does not use`, `log in with a user and password or token: \`docker login -u USER ${host}\``);
  }
  if (config.credsStore) {
    throw configError(label, `the credentials for ${host} are kept by the credential store "docker-credential-${printableName(config.credsStore)}", which containai does not run`, `remove "credsStore" from config.json and run \`docker login ${host}\` again, so the credentials are written to the file (root-only)`);
  }
  throw configError(label, `auths["${host}"] has no credentials`, `run \`docker login ${host}\` again`);
}

/** A host's credentials for pulling: config.json, else GITHUB_TOKEN for ghcr.io, else none (anonymous). */
export async function pullCredentials(registry: string, env: NodeJS.ProcessEnv = process.env): Promise<RegistryCredentials | undefined> {
  const fromConfig = await dockerConfigCredentials(registry, env);
  if (fromConfig) return fromConfig;
  if (registry === 'ghcr.io') {
    const token = secretFromEnv('GITHUB_TOKEN', env);
    // GHCR takes any user name with a token; the token is what it checks.
    if (token) return { username: env.GITHUB_ACTOR || 'containai', password: token, source: 'GITHUB_TOKEN' };
  }
  return undefined;
}

/** publish's credentials: GHCR_PAT/GITHUB_TOKEN (+ GHCR_USER/GITHUB_ACTOR) as images push takes them, else config.json. */
export async function pushCredentials(registry: string, env: NodeJS.ProcessEnv = process.env): Promise<RegistryCredentials | undefined> {
  if (env.GHCR_PAT || env.GITHUB_TOKEN) {
    const auth = registryAuthFromEnv(registry, env);
    registerSecret(`${auth.username}:${auth.password}`);
    return { username: auth.username, password: auth.password, source: env.GHCR_PAT ? 'GHCR_PAT' : 'GITHUB_TOKEN' };
  }
  return dockerConfigCredentials(registry, env);
}

/** The Basic value for these credentials, registered as a secret. */
export function basicAuthorization(credentials: RegistryCredentials): string {
  const value = Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64');
  registerSecret(value);
  return `Basic ${value}`;
}
