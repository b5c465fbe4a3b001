/**
 * Where the container engine is and how to talk to it: DOCKER_HOST (unix://,
 * tcp://, with DOCKER_TLS_VERIFY/DOCKER_CERT_PATH for TLS) or the default
 * /var/run/docker.sock.
 *
 * Two clients over the same endpoint:
 * - connectDocker(): a dockerode client, for work that needs the whole API
 *   (image builds and pushes). dockerode is imported lazily: it costs ~70 ms
 *   of start-up in the compiled binary.
 * - engineApi(): a few read-only GETs over Bun's fetch, for check-health,
 *   which runs from a timer every minute and must stay well under 150 ms.
 * Both wrap transport errors into ContainaiError('ENGINE') with a fix.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type Dockerode from 'dockerode';
import { ContainaiError, describeCause } from '../errors.ts';

export const DEFAULT_SOCKET = '/var/run/docker.sock';
export const DEFAULT_TIMEOUT_MS = 5_000;

export type EngineEndpoint =
  | { kind: 'unix'; socketPath: string; /** what the user set, for messages */ label: string; fromEnv: boolean }
  | { kind: 'tcp'; host: string; port: number; tls: boolean; label: string; fromEnv: boolean };

/** Reads DOCKER_HOST the way the docker CLI does; an unsupported scheme is bad input, not a silent fallback. */
export function resolveEndpoint(env: Record<string, string | undefined> = process.env): EngineEndpoint {
  const raw = env.DOCKER_HOST?.trim();
  if (!raw) return { kind: 'unix', socketPath: DEFAULT_SOCKET, label: `unix://${DEFAULT_SOCKET}`, fromEnv: false };
  if (raw.startsWith('unix://')) {
    const socketPath = raw.slice('unix://'.length);
    if (!socketPath.startsWith('/')) {
      throw new ContainaiError('INPUT', `DOCKER_HOST "${raw}" must name an absolute socket path`, {
        hint: 'set DOCKER_HOST=unix:///var/run/docker.sock or unset it',
      });
    }
    return { kind: 'unix', socketPath, label: raw, fromEnv: true };
  }
  if (raw.startsWith('tcp://')) {
    let url: URL;
    try {
      url = new URL(`http://${raw.slice('tcp://'.length)}`);
    } catch (err) {
      throw new ContainaiError('INPUT', `DOCKER_HOST "${raw}" is not a valid tcp:// address`, { cause: err, hint: 'use tcp://HOST:PORT' });
    }
    const tls = isTruthy(env.DOCKER_TLS_VERIFY);
    const port = url.port ? Number(url.port) : tls ? 2376 : 2375;
    return { kind: 'tcp', host: url.hostname, port, tls, label: raw, fromEnv: true };
  }
  throw new ContainaiError('INPUT', `DOCKER_HOST "${raw}" uses a scheme containai does not support`, {
    hint: 'use unix:///path/to/docker.sock or tcp://HOST:PORT (ssh:// is not supported)',
  });
}

function isTruthy(value: string | undefined): boolean {
  return value !== undefined && value !== '' && value !== '0' && value.toLowerCase() !== 'false';
}

interface TlsFiles {
  ca: string;
  cert: string;
  key: string;
}

function readTlsFiles(env: Record<string, string | undefined>): TlsFiles {
  const dir = env.DOCKER_CERT_PATH || join(env.HOME ?? '/root', '.docker');
  try {
    return {
      ca: readFileSync(join(dir, 'ca.pem'), 'utf8'),
      cert: readFileSync(join(dir, 'cert.pem'), 'utf8'),
      key: readFileSync(join(dir, 'key.pem'), 'utf8'),
    };
  } catch (err) {
    throw new ContainaiError('INPUT', `DOCKER_TLS_VERIFY is set but the client certificates in ${dir} cannot be read: ${describeCause(err)}`, {
      cause: err,
      hint: 'set DOCKER_CERT_PATH to the folder holding ca.pem, cert.pem and key.pem',
    });
  }
}

export interface ConnectOptions {
  endpoint?: EngineEndpoint;
  env?: Record<string, string | undefined>;
  /** Per request. */
  timeoutMs?: number;
}

/** A dockerode client for the endpoint (imported on first use). */
export async function connectDocker(options: ConnectOptions = {}): Promise<Dockerode> {
  const env = options.env ?? process.env;
  const endpoint = options.endpoint ?? resolveEndpoint(env);
  const { default: Docker } = await import('dockerode');
  const timeout = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (endpoint.kind === 'unix') return new Docker({ socketPath: endpoint.socketPath, timeout });
  const tls = endpoint.tls ? readTlsFiles(env) : undefined;
  return new Docker({ host: endpoint.host, port: endpoint.port, protocol: endpoint.tls ? 'https' : 'http', timeout, ...tls });
}

/** The fix for "nothing answers", worded for how the endpoint was chosen. */
export function noAnswerHint(endpoint: EngineEndpoint): string {
  if (!endpoint.fromEnv) return 'start the Docker service (systemctl start docker), or set DOCKER_HOST to where Docker listens';
  return `DOCKER_HOST points at a socket nobody answers (${endpoint.label}): start Docker there or fix DOCKER_HOST`;
}

/** Turns a dockerode/fetch failure into one line with the fix: call it at the boundary. */
export function engineError(endpoint: EngineEndpoint, what: string, err: unknown): ContainaiError {
  if (err instanceof ContainaiError) return err;
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const name = (err as Error | undefined)?.name;
  if (name === 'TimeoutError' || name === 'AbortError' || code === 'ETIMEDOUT' || /timeout/i.test(describeCause(err))) {
    return new ContainaiError('ENGINE', `the container engine at ${endpoint.label} did not answer ${what} in time`, {
      cause: err,
      hint: 'the engine is hung or overloaded: check "systemctl status docker" and its logs',
    });
  }
  if (code === 'EACCES' || code === 'EPERM') {
    return new ContainaiError('ENGINE', `no permission to use the engine socket ${endpoint.label}`, {
      cause: err,
      hint: 'run as root or as a member of the docker group',
    });
  }
  const why =
    code === 'ENOENT' || code === 'FailedToOpenSocket'
      ? endpoint.kind === 'unix' ? `${endpoint.socketPath} does not exist` : 'the address does not resolve'
      : code === 'ECONNREFUSED' || code === 'ConnectionRefused'
        ? 'the connection was refused'
        : describeCause(err);
  return new ContainaiError('ENGINE', `no container engine answers at ${endpoint.label} (${why})`, {
    cause: err,
    hint: noAnswerHint(endpoint),
  });
}

export interface EngineResponse<T> {
  status: number;
  headers: Headers;
  body: T;
}

/** The handful of read-only Engine API calls check-health needs, without dockerode's start-up cost. */
export interface EngineApi {
  readonly endpoint: EngineEndpoint;
  /** GET a path; 404 resolves with status 404 and a null body, other non-2xx throw. */
  get<T = unknown>(path: string, what?: string): Promise<EngineResponse<T | null>>;
}

export function engineApi(options: ConnectOptions = {}): EngineApi {
  const env = options.env ?? process.env;
  const endpoint = options.endpoint ?? resolveEndpoint(env);
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const base =
    endpoint.kind === 'unix' ? 'http://localhost' : `${endpoint.tls ? 'https' : 'http'}://${endpoint.host.includes(':') ? `[${endpoint.host}]` : endpoint.host}:${endpoint.port}`;
  const transport: Record<string, unknown> =
    endpoint.kind === 'unix' ? { unix: endpoint.socketPath } : endpoint.tls ? { tls: readTlsFiles(env) } : {};
  return {
    endpoint,
    async get<T>(path: string, what = path) {
      let res: Response;
      let body: unknown;
      try {
        res = await fetch(`${base}${path}`, { ...transport, signal: AbortSignal.timeout(timeoutMs) } as RequestInit);
        const text = await res.text();
        body = res.headers.get('content-type')?.includes('json') && text ? JSON.parse(text) : text;
      } catch (err) {
        throw engineError(endpoint, what, err);
      }
      if (res.status === 404) return { status: 404, headers: res.headers, body: null };
      if (!res.ok) {
        const message = typeof body === 'object' && body && 'message' in body ? String((body as { message: unknown }).message) : `HTTP ${res.status}`;
        throw new ContainaiError('ENGINE', `the engine at ${endpoint.label} refused ${what}: ${message.split('\n')[0]}`, {
          hint: 'check the engine logs (journalctl -u docker)',
        });
      }
      return { status: res.status, headers: res.headers, body: body as T };
    },
  };
}
