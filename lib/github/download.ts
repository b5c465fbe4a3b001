/**
 * Downloading a release asset from GitHub Releases (or the server named by
 * CONTAINAI_GITHUB_URL), streamed to a file.
 *
 * The token is the one thing here that must never escape: redirects are
 * followed by hand so that Authorization goes only to the origin we were
 * given (GitHub answers asset downloads with a redirect to a storage host
 * whose signed URL needs no token), and a redirect may never go from https to
 * plain http, nor to plain http anywhere but a loopback test server reached
 * over http in the first place. Signed storage URLs are credentials too: no
 * message prints a query string.
 *
 * Connection errors, timeouts, 5xx, 429 and cut-short bodies are retried a
 * bounded number of times with exponential backoff; every attempt starts over
 * from the release URL (signed URLs expire). The whole download is bounded by
 * a size cap and an overall deadline.
 */
import { open } from 'node:fs/promises';
import { ContainaiError, describeCause } from '../errors.ts';
import { createProgress } from '../cli/progress.ts';
import { registerSecret } from '../secrets.ts';

export const DEFAULT_GITHUB_URL = 'https://github.com';

export interface DownloadOptions {
  /** Base URL of the release server (CONTAINAI_GITHUB_URL). */
  baseUrl: string;
  repo: string;
  version: string;
  asset: string;
  /** Created (exclusively) and filled; left partial on failure for the caller to remove. */
  dest: string;
  token?: string;
  maxBytes?: number;
  /** The whole download, every retry included. */
  deadlineMs?: number;
  /** No byte for this long ends the attempt. */
  idleTimeoutMs?: number;
  retries?: number;
  backoffMs?: number;
  maxRedirects?: number;
}

export interface DownloadResult {
  bytes: number;
  sha256: string;
  /** Where the bytes came from, without query string. */
  from: string;
}

const REPO = /^[A-Za-z0-9][A-Za-z0-9-]{0,38}\/[A-Za-z0-9._-]{1,100}$/;
const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]', '::1']);

/** URL without credentials or query string: safe to print. */
export function printableUrl(url: URL): string {
  return `${url.protocol}//${url.host}${url.pathname}`;
}

function isLoopback(url: URL): boolean {
  return LOOPBACK.has(url.hostname) || /^127\.\d+\.\d+\.\d+$/.test(url.hostname);
}

/** The release server's base URL, checked: https, or http on loopback (tests). */
export function parseBaseUrl(value: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ContainaiError('INPUT', `CONTAINAI_GITHUB_URL "${value}" is not a URL`, { hint: 'unset it to use https://github.com' });
  }
  if (url.username || url.password) {
    throw new ContainaiError('INPUT', 'CONTAINAI_GITHUB_URL must not carry credentials', { hint: 'give the token in GITHUB_TOKEN' });
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && isLoopback(url))) {
    throw new ContainaiError('INPUT', `CONTAINAI_GITHUB_URL must be https:// (plain http only for a loopback test server), not ${printableUrl(url)}`, {
      hint: 'unset it to use https://github.com',
    });
  }
  return url;
}

export function releaseAssetUrl(base: URL, repo: string, version: string, asset: string): URL {
  if (!REPO.test(repo)) throw new ContainaiError('INPUT', `--repo "${repo}" is not OWNER/REPO`, { hint: 'e.g. --repo acme/containai' });
  const prefix = base.pathname.replace(/\/+$/, '');
  const url = new URL(base.href);
  url.pathname = `${prefix}/${repo}/releases/download/${encodeURIComponent(version)}/${encodeURIComponent(asset)}`;
  url.search = '';
  url.hash = '';
  return url;
}

/**
 * Whether a redirect from `from` to `to` may be followed: never to plain http,
 * except between loopback addresses when we already speak http (a test
 * server); never from https down to http.
 */
export function redirectAllowed(from: URL, to: URL): string | undefined {
  if (to.protocol === 'https:') return undefined;
  if (to.protocol === 'http:' && from.protocol === 'http:' && isLoopback(from) && isLoopback(to)) return undefined;
  return `a redirect to ${to.protocol === 'http:' ? 'plain http' : to.protocol} (${printableUrl(to)}) was refused`;
}

class Retryable extends Error {}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

export async function downloadReleaseAsset(options: DownloadOptions): Promise<DownloadResult> {
  const {
    maxBytes = 4 * 1024 ** 3,
    deadlineMs = 30 * 60_000,
    idleTimeoutMs = 60_000,
    retries = 4,
    backoffMs = 500,
    maxRedirects = 5,
  } = options;
  registerSecret(options.token);
  const base = parseBaseUrl(options.baseUrl);
  const start = releaseAssetUrl(base, options.repo, options.version, options.asset);
  const deadline = Date.now() + deadlineMs;
  const what = `${options.asset} of release ${options.version} in ${options.repo}`;
  let lastProblem = '';
  for (let attempt = 0; attempt <= retries; attempt++) {
    if (attempt > 0) {
      const wait = Math.min(backoffMs * 2 ** (attempt - 1), 8_000) * (0.75 + Math.random() * 0.5);
      if (Date.now() + wait >= deadline) break;
      await Bun.sleep(wait);
    }
    try {
      return await attemptDownload(start, options, { maxBytes, deadline, idleTimeoutMs, maxRedirects, what });
    } catch (err) {
      if (!(err instanceof Retryable)) throw err;
      lastProblem = err.message;
      if (Date.now() >= deadline) break;
    }
  }
  throw new ContainaiError('NETWORK', `could not download ${what}: ${lastProblem || 'deadline passed'}`, {
    hint: `the release server did not answer properly after ${retries + 1} attempts; check the network and try again`,
  });
}

interface AttemptLimits {
  maxBytes: number;
  deadline: number;
  idleTimeoutMs: number;
  maxRedirects: number;
  what: string;
}

async function attemptDownload(start: URL, options: DownloadOptions, limits: AttemptLimits): Promise<DownloadResult> {
  const controller = new AbortController();
  let idle: ReturnType<typeof setTimeout> | undefined;
  let timedOut = '';
  const arm = () => {
    clearTimeout(idle);
    const ms = Math.min(limits.idleTimeoutMs, Math.max(0, limits.deadline - Date.now()));
    idle = setTimeout(() => {
      timedOut = ms < limits.idleTimeoutMs ? 'the overall deadline passed' : `no data for ${limits.idleTimeoutMs / 1000} s`;
      controller.abort();
    }, ms);
  };
  const origin = start.origin;
  let url = start;
  let sendToken = Boolean(options.token);
  try {
    arm();
    let response: Response;
    for (let hop = 0; ; hop++) {
      const headers: Record<string, string> = { accept: 'application/octet-stream', 'user-agent': 'containai-host' };
      // The token goes to the origin we were given and nowhere else, not even back there after a hop away.
      if (sendToken && url.origin === origin && options.token) headers.authorization = `Bearer ${options.token}`;
      else sendToken = false;
      try {
        response = await fetch(url, { redirect: 'manual', headers, signal: controller.signal });
      } catch (err) {
        throw new Retryable(timedOut || `${printableUrl(url)}: ${describeCause(err)}`);
      }
      if (!REDIRECTS.has(response.status)) break;
      await response.body?.cancel().catch(() => undefined);
      const location = response.headers.get('location');
      if (!location) throw new ContainaiError('NETWORK', `${printableUrl(url)} answered ${response.status} without a Location`);
      if (hop >= limits.maxRedirects) throw new ContainaiError('NETWORK', `too many redirects downloading ${limits.what}`);
      const next = new URL(location, url);
      const refused = redirectAllowed(url, next);
      if (refused) {
        throw new ContainaiError('NETWORK', `downloading ${limits.what}: ${refused}`, {
          hint: 'the release server or something between sent us to an insecure address; nothing was downloaded from it',
        });
      }
      url = next;
      arm();
    }
    const status = response.status;
    if (status === 404) {
      await response.body?.cancel().catch(() => undefined);
      throw new ContainaiError('NOT_FOUND', `release ${options.version} of ${options.repo} has no asset ${options.asset} (404 from ${printableUrl(url)})`, {
        hint: `check --version and --repo (is the release published, with its bundle?)${options.token ? '' : '; a private repository needs GITHUB_TOKEN'}`,
      });
    }
    if (status === 401 || status === 403) {
      await response.body?.cancel().catch(() => undefined);
      throw new ContainaiError('NETWORK', `the release server refused access to ${limits.what} (HTTP ${status})`, {
        hint: options.token ? 'GITHUB_TOKEN was sent: check that it can read the repository' : 'set GITHUB_TOKEN to a token that can read the repository',
      });
    }
    if (status >= 500 || status === 429 || status === 408) {
      await response.body?.cancel().catch(() => undefined);
      throw new Retryable(`HTTP ${status} from ${printableUrl(url)}`);
    }
    if (status !== 200 || !response.body) {
      await response.body?.cancel().catch(() => undefined);
      throw new ContainaiError('NETWORK', `unexpected HTTP ${status} from ${printableUrl(url)} for ${limits.what}`);
    }
    const declared = Number(response.headers.get('content-length') ?? NaN);
    if (Number.isFinite(declared) && declared > limits.maxBytes) {
      await response.body.cancel().catch(() => undefined);
      throw new ContainaiError('INPUT', `${limits.what} is ${declared} bytes, over the ${limits.maxBytes}-byte cap`);
    }
    return await saveBody(response.body, url, options.dest, declared, limits, arm, () => timedOut);
  } finally {
    clearTimeout(idle);
  }
}

async function saveBody(
  body: ReadableStream<Uint8Array>,
  url: URL,
  dest: string,
  declared: number,
  limits: AttemptLimits,
  arm: () => void,
  timedOut: () => string,
): Promise<DownloadResult> {
  const file = await open(dest, 'w', 0o600);
  const hasher = new Bun.CryptoHasher('sha256');
  const progress = createProgress('download', Number.isFinite(declared) ? declared : undefined);
  let bytes = 0;
  try {
    const reader = body.getReader();
    for (;;) {
      let chunk: Awaited<ReturnType<typeof reader.read>>;
      try {
        chunk = await reader.read();
      } catch (err) {
        throw new Retryable(timedOut() || `the download from ${printableUrl(url)} broke off after ${bytes} bytes (${describeCause(err)})`);
      }
      if (chunk.done) break;
      bytes += chunk.value.byteLength;
      if (bytes > limits.maxBytes) {
        await reader.cancel().catch(() => undefined);
        throw new ContainaiError('INPUT', `${limits.what} is over the ${limits.maxBytes}-byte cap`);
      }
      hasher.update(chunk.value);
      await file.write(chunk.value);
      progress.advance(chunk.value.byteLength);
      arm();
    }
    if (Number.isFinite(declared) && bytes !== declared) {
      throw new Retryable(`the download from ${printableUrl(url)} ended after ${bytes} of ${declared} bytes`);
    }
    await file.sync();
  } finally {
    progress.done();
    await file.close();
  }
  return { bytes, sha256: hasher.digest('hex'), from: printableUrl(url) };
}
