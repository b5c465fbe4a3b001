/**
 * Is the engine Docker or Podman? Podman answers the Docker API well enough to
 * look healthy, so we judge by fingerprint, never by path alone:
 * - the engine's /version (a "Podman Engine" component, a Podman platform
 *   name) and its headers (Server: Libpod/…, Libpod-Api-Version);
 * - DOCKER_HOST naming a podman socket (/run/podman/podman.sock and friends);
 * - the `docker` command on PATH being Podman: a link to podman, the
 *   podman-docker shim script, or `docker --version` saying podman.
 * Podman merely installed beside a real Docker is reported, not refused.
 */
import { constants } from 'node:fs';
import { access, open, realpath } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { z } from 'zod';
import { ContainaiError } from '../errors.ts';
import { DEFAULT_TIMEOUT_MS, engineApi, engineError, resolveEndpoint, type EngineApi, type EngineEndpoint } from './connect.ts';

const versionSchema = z
  .object({
    Version: z.string().optional(),
    ApiVersion: z.string().optional(),
    MinAPIVersion: z.string().optional(),
    Os: z.string().optional(),
    Arch: z.string().optional(),
    Platform: z.object({ Name: z.string().optional() }).loose().optional(),
    Components: z
      .array(z.object({ Name: z.string(), Version: z.string().optional() }).loose())
      .nullish(),
  })
  .loose();

export type EngineVersion = z.infer<typeof versionSchema>;

export interface EngineFingerprint {
  kind: 'docker' | 'podman';
  /** Why we think it is Podman (empty for Docker). */
  evidence: string[];
  version?: string;
  apiVersion?: string;
}

/** Judges what answered from its /version body and, when we have them, the response headers. */
export function fingerprintVersion(raw: unknown, headers?: Headers | Record<string, string | undefined>): EngineFingerprint {
  const parsed = versionSchema.safeParse(raw);
  const version = parsed.success ? parsed.data : {};
  const header = (name: string) => (headers instanceof Headers ? headers.get(name) : headers?.[name.toLowerCase()]) ?? undefined;
  const evidence: string[] = [];
  const podmanComponent = version.Components?.find((c) => /podman/i.test(c.Name));
  if (podmanComponent) evidence.push(`the engine's /version lists "${podmanComponent.Name}"`);
  const platform = version.Platform?.Name ?? '';
  if (/podman/i.test(platform)) evidence.push(`the engine's platform is "${platform}"`);
  const server = header('server');
  if (server && /libpod|podman/i.test(server)) evidence.push(`the engine answers as "${server}"`);
  if (header('libpod-api-version')) evidence.push('the engine sends a Libpod-Api-Version header');
  return {
    kind: evidence.length > 0 ? 'podman' : 'docker',
    evidence,
    version: podmanComponent?.Version ?? version.Version,
    apiVersion: version.ApiVersion,
  };
}

/** DOCKER_HOST naming a podman socket: rootful /run/podman/podman.sock, rootless /run/user/<uid>/podman/podman.sock. */
export function endpointNamesPodman(endpoint: EngineEndpoint): boolean {
  return endpoint.fromEnv && endpoint.kind === 'unix' && /podman/i.test(endpoint.socketPath);
}

async function isExecutable(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The first executable `name` on PATH, as a shell would find it. */
export async function whichCommand(name: string, pathEnv = process.env.PATH ?? ''): Promise<string | undefined> {
  for (const dir of pathEnv.split(':')) {
    if (!dir) continue;
    const candidate = join(dir, name);
    if (await isExecutable(candidate)) return candidate;
  }
  return undefined;
}

export interface DockerCommand {
  path: string;
  isPodman: boolean;
  /** How we know, e.g. "/usr/bin/docker is a link to /usr/bin/podman". */
  reason?: string;
}

const SCRIPT_HEAD_BYTES = 4096;

async function readHead(path: string): Promise<Buffer> {
  const handle = await open(path, 'r');
  try {
    const buffer = Buffer.alloc(SCRIPT_HEAD_BYTES);
    const { bytesRead } = await handle.read(buffer, 0, SCRIPT_HEAD_BYTES, 0);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

/** What `docker` on PATH really is; undefined when there is none. */
export async function inspectDockerCommand(pathEnv = process.env.PATH ?? '', timeoutMs = 2_000): Promise<DockerCommand | undefined> {
  const path = await whichCommand('docker', pathEnv);
  if (!path) return undefined;
  const target = await realpath(path).catch(() => path);
  if (/podman/i.test(basename(target))) return { path, isPodman: true, reason: `${path} is a link to ${target}` };
  const head = await readHead(target).catch(() => Buffer.alloc(0));
  if (head.subarray(0, 2).toString() === '#!') {
    // The podman-docker shim (and hand-made ones) are scripts that exec podman.
    const text = head.toString('utf8');
    return /podman/i.test(text)
      ? { path, isPodman: true, reason: `${path} is a script that runs podman (the podman-docker shim)` }
      : { path, isPodman: false };
  }
  // A binary: ask it. Podman copied to "docker" names itself after argv[0]
  // ("docker version 4.3.1"), so anything not in Docker's own format
  // ("Docker version 27.0.1, build 1234abc") is asked once more, in its help.
  const said = await runFor([path, '--version'], pathEnv, timeoutMs);
  if (/podman/i.test(said)) return { path, isPodman: true, reason: `"${path} --version" says "${firstLine(said)}"` };
  if (DOCKER_CLI_VERSION.test(said)) return { path, isPodman: false };
  const help = await runFor([path, 'version', '--help'], pathEnv, timeoutMs);
  if (/podman/i.test(help)) return { path, isPodman: true, reason: `"${path} --version" says "${firstLine(said)}" and its help says Podman` };
  return { path, isPodman: false };
}

const DOCKER_CLI_VERSION = /^Docker version \S+, build \S+/;

function firstLine(text: string): string {
  return text.trim().split('\n')[0] ?? '';
}

async function runFor(argv: string[], pathEnv: string, timeoutMs: number): Promise<string> {
  try {
    const proc = Bun.spawn(argv, { stdout: 'pipe', stderr: 'pipe', stdin: 'ignore', timeout: timeoutMs, env: { PATH: pathEnv, LC_ALL: 'C' } });
    const [out, err] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    return `${out}\n${err}`.trim();
  } catch {
    return '';
  }
}

export interface EngineIdentity {
  kind: 'docker' | 'podman';
  endpoint: EngineEndpoint;
  /** Engine version (Docker's, or Podman's when it is Podman). */
  version?: string;
  apiVersion?: string;
  /** Every sign of Podman found; non-empty exactly when kind is "podman". */
  evidence: string[];
  /** `podman` is on PATH, but the engine and the docker command are Docker. */
  podmanBeside?: string;
  dockerCommand?: DockerCommand;
}

export interface IdentifyOptions {
  env?: Record<string, string | undefined>;
  endpoint?: EngineEndpoint;
  timeoutMs?: number;
  /** An open client whose version() gives /version (dockerode's Docker works). Default: engineApi(). */
  client?: { version(): Promise<unknown> };
  /** Already fetched /version (with headers), e.g. by check-health. */
  versionResponse?: { body: unknown; headers?: Headers };
  /** Look at the `docker` command and `podman` on PATH too (default true). */
  inspectPath?: boolean;
}

/**
 * Asks the engine what it is and looks at the host around it. Throws
 * ContainaiError('ENGINE') when nothing answers; never throws for Podman:
 * callers decide (assertDockerEngine refuses it).
 */
export async function identifyEngine(options: IdentifyOptions = {}): Promise<EngineIdentity> {
  const env = options.env ?? process.env;
  const endpoint = options.endpoint ?? resolveEndpoint(env);
  const pathEnv = env.PATH ?? '';
  const inspectPath = options.inspectPath !== false;
  const [versionResponse, dockerCommand, podmanPath] = await Promise.all([
    options.versionResponse ??
      (options.client
        ? options.client.version().then(
            (body) => ({ body, headers: undefined }),
            (err: unknown) => {
              throw engineError(endpoint, '/version', err);
            },
          )
        : engineApi({ endpoint, env, timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS }).get('/version', '/version')),
    inspectPath ? inspectDockerCommand(pathEnv) : undefined,
    inspectPath ? whichCommand('podman', pathEnv) : undefined,
  ]);
  const fingerprint = fingerprintVersion(versionResponse.body, versionResponse.headers ?? undefined);
  const evidence = [...fingerprint.evidence];
  if (endpointNamesPodman(endpoint)) evidence.push(`DOCKER_HOST names a Podman socket (${endpoint.label})`);
  if (dockerCommand?.isPodman && dockerCommand.reason) evidence.push(`the docker command is Podman: ${dockerCommand.reason}`);
  const kind = evidence.length > 0 ? 'podman' : 'docker';
  return {
    kind,
    endpoint,
    version: fingerprint.version,
    apiVersion: fingerprint.apiVersion,
    evidence,
    podmanBeside: kind === 'docker' ? podmanPath : undefined,
    dockerCommand,
  };
}

export const PODMAN_HINT = 'containai supports Docker Engine only: install docker.io (or docker-ce), point DOCKER_HOST at it, and remove podman-docker';

/** The error for a Podman engine, shared by check-health and the commands that refuse to run on Podman. */
export function podmanError(identity: EngineIdentity): ContainaiError {
  return new ContainaiError('ENGINE', `the container engine is Podman, not Docker: ${identity.evidence.join('; ')}`, {
    hint: PODMAN_HINT,
    details: { engine: 'podman', evidence: identity.evidence },
  });
}

/** Identifies the engine and refuses Podman however it shows. Returns the identity for logging. */
export async function assertDockerEngine(options: IdentifyOptions = {}): Promise<EngineIdentity> {
  const identity = await identifyEngine(options);
  if (identity.kind === 'podman') throw podmanError(identity);
  return identity;
}
