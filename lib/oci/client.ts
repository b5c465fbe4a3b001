/**
 * The HTTP side of talking to one repository of one registry: the base URL
 * (https, or http for loopback), auth (lib/oci/auth.ts) applied and renewed
 * on 401, redirects followed by hand, bounded retries, and errors turned into
 * ContainaiErrors that say what to do.
 *
 * Authorization goes to the registry's own origin only. Blob downloads are
 * often redirected to a storage host with a signed URL: that hop, and every
 * hop after it, goes without Authorization, and a redirect from https to
 * plain http is refused. Nothing printed holds a query string (signed URLs
 * are credentials too) or a registry's text unescaped.
 */
import { ContainaiError, describeCause } from '../errors.ts';
import { redact } from '../secrets.ts';
import { printableName, printableText } from '../text.ts';
import { VERSION } from '../version.ts';
import { fetchToken, parseChallenges, readTextLimited, type Token } from './auth.ts';
import { basicAuthorization, type RegistryCredentials } from './credentials.ts';
import { isLoopbackHost, registryBaseUrl, type RegistryReference } from './reference.ts';

export type Actions = 'pull' | 'pull,push';

export interface RequestRecord {
  method: string;
  /** Path and query of the registry URL (no host), or the full printable URL after a redirect. */
  url: string;
  status: number;
}

export interface ClientOptions {
  credentials?: RegistryCredentials;
  /** What the client will do: decides the token scope asked for (a push asks for pull,push once). */
  actions?: Actions;
  fetch?: typeof fetch;
  /** Retries of a request after a connection error, 429 or 5xx (idempotent requests only). */
  retries?: number;
  backoffMs?: number;
  /** Called after every HTTP exchange with the registry (tests and the bench count them). */
  onRequest?: (record: RequestRecord) => void;
}

export interface RequestInit {
  method: 'GET' | 'HEAD' | 'PUT' | 'POST' | 'PATCH' | 'DELETE';
  /** A path under the registry ("/v2/…"), or an absolute URL the registry gave (an upload Location). */
  path: string;
  headers?: Record<string, string>;
  /** Made afresh for every attempt (a stream can be sent once). */
  body?: () => Bun.BodyInit;
  /** What the request is for, in messages: "manifest v1.2.3". */
  what: string;
  signal?: AbortSignal;
  /** Statuses that are answers, not errors (404 for "is it there?"). Default: 2xx. */
  accept?: (status: number) => boolean;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
/** A manifest, a small blob, a HEAD: two minutes is far more than any registry needs. */
const REQUEST_TIMEOUT_MS = 120_000;
/** An upload of a large blob (the payload) on a slow link. */
const UPLOAD_TIMEOUT_MS = 30 * 60_000;
const MAX_REDIRECTS = 5;

/** URL without credentials or query: safe to print. */
export function printableUrl(url: URL): string {
  return printableName(`${url.protocol}//${url.host}${url.pathname}`);
}

/** The OCI error body's first message, escaped and short, or ''. */
async function registryMessage(response: Response): Promise<string> {
  try {
    const text = await readTextLimited(response, 64 * 1024);
    const json = JSON.parse(text) as { errors?: Array<{ code?: unknown; message?: unknown }> };
    const first = json.errors?.[0];
    if (!first) return '';
    const parts = [first.code, first.message].filter((p): p is string => typeof p === 'string' && p.length > 0);
    return printableName(parts.join(': ').slice(0, 200));
  } catch {
    return '';
  }
}

class Retryable extends Error {}

export class RegistryClient {
  readonly base: URL;
  readonly ref: RegistryReference;
  readonly credentials?: RegistryCredentials;
  private readonly actions: Actions;
  private readonly fetchImpl: typeof fetch;
  private readonly retries: number;
  private readonly backoffMs: number;
  private readonly onRequest?: (record: RequestRecord) => void;
  private authorization?: string;
  private token?: Token;
  private tokenChallenge?: { realm: string; service?: string };
  readonly userAgent = `containai/${VERSION}`;

  constructor(ref: RegistryReference, options: ClientOptions = {}) {
    this.ref = ref;
    this.base = registryBaseUrl(ref);
    this.credentials = options.credentials;
    this.actions = options.actions ?? 'pull';
    this.fetchImpl = options.fetch ?? fetch;
    this.retries = options.retries ?? 3;
    this.backoffMs = options.backoffMs ?? 250;
    this.onRequest = options.onRequest;
  }

  /** "/v2/<repository>/<rest>". */
  repoPath(rest: string): string {
    return `/v2/${this.ref.repository}/${rest}`;
  }

  /** Where the registry is, for messages. */
  get where(): string {
    return `${this.ref.registry}/${this.ref.repository}`;
  }

  /**
   * Sends a request with auth, following redirects by hand; retries idempotent
   * requests on connection errors, 429 and 5xx. Resolves to the final response
   * when its status is accepted; otherwise throws a ContainaiError.
   */
  async send(init: RequestInit): Promise<Response> {
    const idempotent = init.method !== 'POST' && init.method !== 'PATCH';
    let lastProblem = '';
    for (let attempt = 0; attempt <= (idempotent ? this.retries : 0); attempt++) {
      if (attempt > 0) await Bun.sleep(this.backoffMs * 2 ** (attempt - 1) * (0.75 + Math.random() * 0.5));
      try {
        return await this.sendAuthorized(init);
      } catch (err) {
        if (!(err instanceof Retryable)) throw err;
        lastProblem = err.message;
      }
    }
    throw new ContainaiError('NETWORK', redact(`${init.what} at ${this.where}: ${lastProblem}`), {
      hint: `the registry did not answer properly${idempotent ? ` after ${this.retries + 1} attempts` : ''}; check the network and the registry, then try again`,
    });
  }

  private async sendAuthorized(init: RequestInit): Promise<Response> {
    await this.refreshExpiredToken(init.signal);
    let response = await this.sendFollowing(init);
    if (response.status === 401) {
      const header = response.headers.get('www-authenticate') ?? '';
      await response.body?.cancel().catch(() => undefined);
      const sent = this.authorization;
      await this.authenticate(header, init.signal);
      if (this.authorization === sent) throw this.authError(401, init, '');
      response = await this.sendFollowing(init);
      if (response.status === 401) {
        await response.body?.cancel().catch(() => undefined);
        throw this.authError(401, init, '');
      }
    }
    const accepted = init.accept ?? ((s: number) => s >= 200 && s < 300);
    if (accepted(response.status)) return response;
    if (response.status === 429 || response.status >= 500) {
      const message = await registryMessage(response);
      throw new Retryable(`answered ${response.status}${message ? ` (${message})` : ''}`);
    }
    const message = await registryMessage(response);
    if (response.status === 403) throw this.authError(403, init, message);
    if (response.status === 404) {
      throw new ContainaiError('NOT_FOUND', `${init.what} was not found at ${this.where}${message ? ` (${message})` : ''}`, {
        hint: 'check the repository, tag and digest in the reference; a private repository answers "not found" to an anonymous client',
      });
    }
    throw new ContainaiError('NETWORK', `${init.what} at ${this.where}: the registry answered ${response.status}${message ? ` (${message})` : ''}`, {
      hint: 'check the reference and the registry; if it persists, tell the registry operator',
    });
  }

  private authError(status: number, init: RequestInit, message: string): ContainaiError {
    const creds = this.credentials;
    const verb = this.actions === 'pull,push' ? 'push to' : 'pull from';
    return new ContainaiError('NETWORK', `${init.what}: the registry ${this.ref.registry} ${status === 403 ? 'denied access' : 'refused the credentials'}${creds ? ` from ${creds.source}` : ' (none were found)'}${message ? ` (${message})` : ''}`, {
      hint: creds
        ? `check that the credentials in ${creds.source} may ${verb} ${this.where}`
        : `log in with \`docker login ${this.ref.registry}\` (DOCKER_CONFIG), ${this.actions === 'pull,push' ? 'or set GHCR_PAT and GHCR_USER' : 'or set GITHUB_TOKEN for ghcr.io'}`,
    });
  }

  private async refreshExpiredToken(signal?: AbortSignal): Promise<void> {
    if (!this.token || !this.tokenChallenge || Date.now() < this.token.expiresAt) return;
    this.token = await fetchToken({ ...this.tokenChallenge, scopes: this.token.scopes, credentials: this.credentials, registry: this.base, userAgent: this.userAgent, fetch: this.fetchImpl, signal });
    this.authorization = `Bearer ${this.token.value}`;
  }

  /** Answers a 401's challenge: a bearer token from the realm, or Basic credentials. */
  private async authenticate(header: string, signal?: AbortSignal): Promise<void> {
    const challenges = parseChallenges(header);
    const bearer = challenges.find((c) => c.scheme === 'bearer');
    if (bearer?.params.realm) {
      const ours = `repository:${this.ref.repository}:${this.actions}`;
      const asked = bearer.params.scope ? bearer.params.scope.split(' ') : [];
      const scopes = [...new Set([ours, ...asked.filter((s) => s !== `repository:${this.ref.repository}:pull` && s !== ours)])];
      this.tokenChallenge = { realm: bearer.params.realm, service: bearer.params.service };
      this.token = await fetchToken({ ...this.tokenChallenge, scopes, credentials: this.credentials, registry: this.base, userAgent: this.userAgent, fetch: this.fetchImpl, signal });
      this.authorization = `Bearer ${this.token.value}`;
      return;
    }
    if (challenges.some((c) => c.scheme === 'basic') && this.credentials) {
      this.authorization = basicAuthorization(this.credentials);
    }
  }

  private async sendFollowing(init: RequestInit): Promise<Response> {
    // A registry that stops answering must not hang a host's timer: a bound on every request that
    // has no signal of its own (a blob download has its own, with an idle timer).
    const signal = init.signal ?? AbortSignal.timeout(init.method === 'PUT' || init.method === 'PATCH' ? UPLOAD_TIMEOUT_MS : REQUEST_TIMEOUT_MS);
    let url = /^https?:\/\//.test(init.path) ? new URL(init.path) : new URL(init.path, this.base);
    if (url.origin !== this.base.origin && !this.mayFollow(this.base, url)) {
      throw new ContainaiError('NETWORK', `${init.what}: the registry sent us to ${printableUrl(url)}; refused (a downgrade to plain http)`, { hint: 'the registry (or something between) answered what no registry should: try again; if it persists, tell its operator' });
    }
    let method = init.method;
    let body = init.body;
    let leftOrigin = url.origin !== this.base.origin;
    for (let hop = 0; ; hop++) {
      const headers: Record<string, string> = { 'user-agent': this.userAgent, ...init.headers };
      // Authorization only while we have never left the registry's origin.
      if (this.authorization && !leftOrigin) headers.authorization = this.authorization;
      let response: Response;
      try {
        response = await this.fetchImpl(url, { method, headers, body: body?.(), redirect: 'manual', signal, ...(body ? { duplex: 'half' } : {}) } as globalThis.RequestInit);
      } catch (err) {
        if (init.signal?.aborted) throw new ContainaiError('NETWORK', `${init.what}: stopped (${describeCause(init.signal.reason ?? err)})`, { hint: 'run the command again' });
        if (signal.aborted) throw new Retryable(`${printableUrl(url)}: no answer in time`);
        throw new Retryable(`${printableUrl(url)}: ${describeCause(err)}`);
      }
      this.onRequest?.({ method, url: leftOrigin ? printableUrl(url) : `${url.pathname}${url.search}`, status: response.status });
      if (!REDIRECTS.has(response.status)) return response;
      await response.body?.cancel().catch(() => undefined);
      const location = response.headers.get('location');
      if (!location) throw new ContainaiError('NETWORK', `${init.what}: the registry answered ${response.status} without a Location`, { hint: 'the registry (or something between) answered what no registry should: try again; if it persists, tell its operator' });
      if (hop >= MAX_REDIRECTS) throw new ContainaiError('NETWORK', `${init.what}: too many redirects`, { hint: 'the registry (or something between) answered what no registry should: try again; if it persists, tell its operator' });
      const next = new URL(location, url);
      if (!this.mayFollow(url, next)) {
        throw new ContainaiError('NETWORK', `${init.what}: a redirect to ${printableUrl(next)} was refused (plain http)`, {
          hint: 'the registry or something between sent us to an insecure address; nothing was fetched from it',
        });
      }
      if (next.origin !== this.base.origin) leftOrigin = true;
      if (response.status === 303) {
        method = method === 'HEAD' ? 'HEAD' : 'GET';
        body = undefined;
      }
      url = next;
    }
  }

  /** https anywhere; plain http only from loopback http to loopback http. */
  private mayFollow(from: URL, to: URL): boolean {
    if (to.protocol === 'https:') return true;
    return to.protocol === 'http:' && from.protocol === 'http:' && isLoopbackHost(from.hostname) && isLoopbackHost(to.hostname);
  }
}
