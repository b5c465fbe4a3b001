/**
 * Registry auth as registries do it (distribution's token spec, which GHCR,
 * Docker Hub and Harbor follow): a request without credentials is answered
 * 401 with `WWW-Authenticate: Bearer realm="…",service="…",scope="…"`; the
 * client asks the realm for a token (anonymously, or with Basic credentials),
 * and retries with `Authorization: Bearer <token>`. A registry that answers
 * `WWW-Authenticate: Basic` takes the credentials directly.
 *
 * Tokens are registered as secrets the moment they arrive. A realm is
 * reached over https only (plain http only when both the registry and the
 * realm are on loopback), so credentials never cross the network in clear.
 */
import { ContainaiError, describeCause } from '../errors.ts';
import { registerSecret } from '../secrets.ts';
import { printableName } from '../text.ts';
import { basicAuthorization, type RegistryCredentials } from './credentials.ts';
import { isLoopbackHost } from './reference.ts';

export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/**
 * Parses a WWW-Authenticate value (RFC 7235): one or more challenges, each a
 * scheme and comma-separated key=value or key="quoted value" parameters.
 */
export function parseChallenges(header: string): Challenge[] {
  const challenges: Challenge[] = [];
  let i = 0;
  let current: Challenge | undefined;
  const skip = () => {
    while (i < header.length && /[\s,]/.test(header[i] as string)) i++;
  };
  while (i < header.length) {
    skip();
    const token = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+/.exec(header.slice(i))?.[0];
    if (!token) break;
    i += token.length;
    const afterToken = /^\s*=/.exec(header.slice(i));
    if (afterToken && current) {
      i += afterToken[0].length;
      while (header[i] === ' ') i++;
      let value = '';
      if (header[i] === '"') {
        i++;
        while (i < header.length && header[i] !== '"') {
          if (header[i] === '\\' && i + 1 < header.length) i++;
          value += header[i];
          i++;
        }
        i++;
      } else {
        const bare = /^[^,\s]*/.exec(header.slice(i))?.[0] ?? '';
        value = bare;
        i += bare.length;
      }
      current.params[token.toLowerCase()] = value;
    } else {
      current = { scheme: token.toLowerCase(), params: {} };
      challenges.push(current);
    }
  }
  return challenges;
}

export interface TokenRequest {
  realm: string;
  service?: string;
  scopes: string[];
  credentials?: RegistryCredentials;
  /** The registry's URL: decides whether a plain-http realm is acceptable (loopback to loopback only). */
  registry: URL;
  userAgent: string;
  fetch: typeof fetch;
  signal?: AbortSignal;
}

export interface Token {
  value: string;
  /** Milliseconds since the epoch after which it is asked for again. */
  expiresAt: number;
  scopes: string[];
}

/** The realm as a URL we may send credentials to, or a clear refusal. */
function realmUrl(realm: string, registry: URL): URL {
  let url: URL;
  try {
    url = new URL(realm);
  } catch {
    throw new ContainaiError('NETWORK', `the registry ${registry.host} named a token realm that is not a URL`, { hint: 'the registry is misconfigured; tell its operator' });
  }
  const loopbackPair = url.protocol === 'http:' && registry.protocol === 'http:' && isLoopbackHost(url.hostname) && isLoopbackHost(registry.hostname);
  if (url.protocol !== 'https:' && !loopbackPair) {
    throw new ContainaiError('NETWORK', `the registry ${registry.host} sent us to a token server over ${url.protocol.replace(':', '')} (${printableName(url.host)}); refused: tokens and credentials travel over https only`, {
      hint: 'the registry (or something between) is misconfigured or hostile; nothing was sent',
    });
  }
  if (url.username || url.password) throw new ContainaiError('NETWORK', `the registry ${registry.host} named a token realm with credentials in it; refused`, { hint: 'the registry (or something between) answered what no registry should: try again; if it persists, tell its operator' });
  return url;
}

/** Asks the realm for a bearer token (GET, as docker pull does), anonymously or with Basic credentials. */
export async function fetchToken(request: TokenRequest): Promise<Token> {
  const url = realmUrl(request.realm, request.registry);
  if (request.service) url.searchParams.set('service', request.service);
  for (const scope of request.scopes) url.searchParams.append('scope', scope);
  const headers: Record<string, string> = { 'user-agent': request.userAgent, accept: 'application/json' };
  if (request.credentials) headers.authorization = basicAuthorization(request.credentials);
  let response: Response;
  try {
    response = await request.fetch(url, { headers, redirect: 'error', signal: request.signal ?? AbortSignal.timeout(60_000) });
  } catch (err) {
    throw new ContainaiError('NETWORK', `the token server ${printableName(url.host)} did not answer: ${describeCause(err)}`, { hint: 'check the network; the registry sends clients there to log in' });
  }
  if (response.status === 401 || response.status === 403) {
    await response.body?.cancel().catch(() => undefined);
    throw new ContainaiError('NETWORK', `the token server ${printableName(url.host)} refused ${request.credentials ? `the credentials from ${request.credentials.source}` : 'an anonymous token'} (${response.status})`, {
      hint: request.credentials
        ? `check the user and password or token in ${request.credentials.source}`
        : 'the repository is private: `docker login` to the registry (config.json), or set GITHUB_TOKEN for ghcr.io',
    });
  }
  if (!response.ok) {
    await response.body?.cancel().catch(() => undefined);
    throw new ContainaiError('NETWORK', `the token server ${printableName(url.host)} answered ${response.status}`, { hint: 'try again later; if it persists, tell the registry operator' });
  }
  const text = await readTextLimited(response, 1 << 20);
  let json: { token?: unknown; access_token?: unknown; expires_in?: unknown };
  try {
    json = JSON.parse(text);
  } catch {
    throw new ContainaiError('NETWORK', `the token server ${printableName(url.host)} answered something that is not JSON`, { hint: 'the registry (or something between) answered what no registry should: try again; if it persists, tell its operator' });
  }
  const value = typeof json.token === 'string' && json.token ? json.token : typeof json.access_token === 'string' ? json.access_token : '';
  if (!value || /[\s\u0000-\u001f]/.test(value)) throw new ContainaiError('NETWORK', `the token server ${printableName(url.host)} answered without a usable token`, { hint: 'the registry (or something between) answered what no registry should: try again; if it persists, tell its operator' });
  registerSecret(value);
  // The spec's default lifetime is 60 s; renew a little early.
  const lifetime = typeof json.expires_in === 'number' && json.expires_in > 0 ? json.expires_in : 60;
  return { value, expiresAt: Date.now() + Math.max(1, lifetime - 5) * 1000, scopes: request.scopes };
}

/** Reads a small response body, refusing one larger than `max`. */
export async function readTextLimited(response: Response, max: number): Promise<string> {
  return new TextDecoder().decode(await readBytesLimited(response, max));
}

export async function readBytesLimited(response: Response, max: number): Promise<Uint8Array> {
  const declared = Number(response.headers.get('content-length') ?? '');
  if (Number.isFinite(declared) && declared > max) {
    await response.body?.cancel().catch(() => undefined);
    throw new ContainaiError('NETWORK', `an answer of ${declared} bytes was refused (at most ${max})`, { hint: 'the registry (or something between) answered what no registry should: try again; if it persists, tell its operator' });
  }
  if (!response.body) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
    total += chunk.byteLength;
    if (total > max) {
      await response.body.cancel().catch(() => undefined);
      throw new ContainaiError('NETWORK', `an answer larger than ${max} bytes was refused`, { hint: 'the registry (or something between) answered what no registry should: try again; if it persists, tell its operator' });
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}
