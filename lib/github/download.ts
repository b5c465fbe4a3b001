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
 * The bytes must arrive as published: we ask for `Accept-Encoding: identity`,
 * tell fetch not to decode, and refuse an answer that is encoded anyway. A
 * decoded body would not match its Content-Length (five failed attempts), and
 * a small Content-Encoding bomb inflated to gigabytes on disk before the cap.
 *
 * Connection errors, timeouts, 5xx, 429, cut-short bodies and attempts slower
 * than a minimum rate (16 KiB/s over 60 s: a server that drips one byte a
 * second would otherwise hold the install lock for the whole deadline) are
 * retried a bounded number of times with exponential backoff; every attempt
 * starts over from the release URL (signed URLs expire). The whole download is
 * bounded by a size cap, the free space of the destination's filesystem (less
 * a margin) and an overall deadline.
 */
import { statfsSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ContainaiError, describeCause } from '../errors.ts';
import { log } from '../cli/output.ts';
import { createProgress } from '../cli/progress.ts';
import { registerSecret } from '../secrets.ts';
import { printableName } from '../text.ts';

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
  /** An attempt that receives less than this many bytes per second over rateWindowMs is aborted (and retried). */
  minBytesPerSecond?: number;
  rateWindowMs?: number;
  /** Space left free on the destination's filesystem after the download; the download is refused otherwise. */
  freeSpaceMarginBytes?: number;
}

export const DEFAULT_MIN_BYTES_PER_SECOND = 16 * 1024;
export const DEFAULT_RATE_WINDOW_MS = 60_000;
/** Room for the staging tree's first files and the state/ writes that follow; a release's own bytes come on top. */
export const DEFAULT_FREE_SPACE_MARGIN = 64 * 1024 ** 2;

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
    minBytesPerSecond = DEFAULT_MIN_BYTES_PER_SECOND,
    rateWindowMs = DEFAULT_RATE_WINDOW_MS,
    freeSpaceMarginBytes = DEFAULT_FREE_SPACE_MARGIN,
  } = options;
  registerSecret(options.token);
  const base = parseBaseUrl(options.baseUrl);
  const start = releaseAssetUrl(base, options.repo, options.version, options.asset);
  const deadline = Date.now() + deadlineMs;
  const what = `${options.asset} of release ${options.version} in ${options.repo}`;
  const limits: AttemptLimits = { maxBytes, deadline, idleTimeoutMs, maxRedirects, what, minBytesPerSecond, rateWindowMs, freeSpaceMarginBytes };
  let lastProblem = '';
  let attempts = 0;
  for (let attempt = 0; attempt <= retries; attempt++) {
    if (attempt > 0) {
      const wait = Math.min(backoffMs * 2 ** (attempt - 1), 8_000) * (0.75 + Math.random() * 0.5);
      if (Date.now() + wait >= deadline) break;
      await Bun.sleep(wait);
    }
    attempts++;
    log().debug(`download attempt ${attempts} of ${retries + 1}: ${printableUrl(start)}${lastProblem ? ` (last: ${lastProblem})` : ''}`);
    try {
      return await attemptDownload(start, options, limits);
    } catch (err) {
      if (!(err instanceof Retryable)) throw err;
      lastProblem = err.message;
      if (Date.now() >= deadline) break;
    }
  }
  const deadlineNote = attempts < retries + 1 ? ` (the ${deadlineMs / 1000} s deadline left no time for more)` : '';
  throw new ContainaiError('NETWORK', `could not download ${what} in ${attempts} attempt${attempts === 1 ? '' : 's'}${deadlineNote}: ${lastProblem || 'deadline passed'}`, {
    hint: 'the release server did not answer properly; check the network (or a proxy in the way) and try again',
  });
}

interface AttemptLimits {
  maxBytes: number;
  deadline: number;
  idleTimeoutMs: number;
  maxRedirects: number;
  what: string;
  minBytesPerSecond: number;
  rateWindowMs: number;
  freeSpaceMarginBytes: number;
}

/** Bytes an unprivileged writer may still use on the filesystem holding dir (root may use the reserve too, but we leave it). */
function freeBytes(dir: string): number | undefined {
  try {
    const st = statfsSync(dir);
    return st.bavail * st.bsize;
  } catch {
    return undefined;
  }
}

function spaceError(what: string, dir: string, needed: number, free: number, margin: number): ContainaiError {
  const mib = (n: number) => `${Math.ceil(n / 1024 ** 2)} MiB`;
  return new ContainaiError('STATE', `not enough free space for ${what}: it is ${needed === Infinity ? 'larger' : mib(needed)}, and ${dir} has ${mib(free)} free (keeping ${mib(margin)} spare)`, {
    hint: `free space on the filesystem of ${dir} (prune old releases: containai-host prune) and run again; nothing was installed`,
  });
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
      // identity: the bytes as published, which Content-Length, the cap and the hashes all count.
      const headers: Record<string, string> = { accept: 'application/octet-stream', 'accept-encoding': 'identity', 'user-agent': 'containai-host' };
      // The token goes to the origin we were given and nowhere else, not even back there after a hop away.
      if (sendToken && url.origin === origin && options.token) headers.authorization = `Bearer ${options.token}`;
      else sendToken = false;
      try {
        // decompress: false (Bun): an encoded answer reaches us as it was sent, to be refused, never inflated.
        response = await fetch(url, { redirect: 'manual', headers, signal: controller.signal, decompress: false } as RequestInit);
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
      log().debug(`redirected to ${printableUrl(next)}${next.origin === origin ? '' : ' (another origin: no Authorization)'}`);
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
    const encoding = (response.headers.get('content-encoding') ?? '').trim().toLowerCase();
    if (encoding !== '' && encoding !== 'identity') {
      await response.body.cancel().catch(() => undefined);
      throw new ContainaiError('NETWORK', `${printableUrl(url)} sent ${limits.what} encoded (Content-Encoding: ${printableName(encoding.slice(0, 40))}) though it was asked for the bytes as published; refusing it`, {
        hint: 'the release server, or a proxy between, compresses downloads: have it serve the file as is (no Content-Encoding); nothing was written',
      });
    }
    const declared = Number(response.headers.get('content-length') ?? NaN);
    if (Number.isFinite(declared) && declared > limits.maxBytes) {
      await response.body.cancel().catch(() => undefined);
      throw new ContainaiError('INPUT', `${limits.what} is ${declared} bytes, over the ${limits.maxBytes}-byte cap`);
    }
    const dir = dirname(options.dest);
    const free = freeBytes(dir);
    if (free !== undefined && Number.isFinite(declared) && declared + limits.freeSpaceMarginBytes > free) {
      await response.body.cancel().catch(() => undefined);
      throw spaceError(limits.what, dir, declared, free, limits.freeSpaceMarginBytes);
    }
    // Below the minimum rate over a whole window, the attempt ends (and is retried): a drip never holds the lock for long.
    let windowBytes = 0;
    const rate = setInterval(() => {
      if (windowBytes < (limits.minBytesPerSecond * limits.rateWindowMs) / 1000) {
        timedOut = `the download was slower than ${formatRate(limits.minBytesPerSecond)} over ${limits.rateWindowMs / 1000} s (${windowBytes} bytes)`;
        controller.abort();
      }
      windowBytes = 0;
    }, limits.rateWindowMs);
    try {
      return await saveBody(response.body, url, options.dest, declared, limits, arm, () => timedOut, (n) => {
        windowBytes += n;
      }, free);
    } finally {
      clearInterval(rate);
    }
  } finally {
    clearTimeout(idle);
  }
}

function formatRate(bytesPerSecond: number): string {
  return bytesPerSecond >= 1024 ? `${Math.round(bytesPerSecond / 1024)} KiB/s` : `${bytesPerSecond} B/s`;
}

async function saveBody(
  body: ReadableStream<Uint8Array>,
  url: URL,
  dest: string,
  declared: number,
  limits: AttemptLimits,
  arm: () => void,
  timedOut: () => string,
  received: (n: number) => void,
  free: number | undefined,
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
      received(chunk.value.byteLength);
      if (bytes > limits.maxBytes) {
        await reader.cancel().catch(() => undefined);
        throw new ContainaiError('INPUT', `${limits.what} is over the ${limits.maxBytes}-byte cap`);
      }
      // No Content-Length (chunked): the space is checked as the bytes come.
      if (free !== undefined && bytes + limits.freeSpaceMarginBytes > free) {
        await reader.cancel().catch(() => undefined);
        throw spaceError(limits.what, dirname(dest), Infinity, free, limits.freeSpaceMarginBytes);
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
