/**
 * A simulated fleet for the rollout tests and bench/fleet.ts, built from the
 * real parts:
 *
 * - releases made by the compiled containai-build (package, sign with a
 *   test key, publish) into the token registry (test/helpers/registry.ts);
 * - a pull-through mirror (a second docker-registry, `proxy: remoteurl:`) in
 *   front of it, which every host reads through;
 * - hosts: each the compiled containai-host, run as a process of its own
 *   with its own install root, CONTAINAI_STATE_DIR and
 *   CONTAINAI_MACHINE_ID_FILE (32 hex digits from a seed), so the ramp places
 *   each one by its own machine id, as on a real fleet;
 * - statements made by the compiled `containai-build rollout --key`. Time
 *   moves by publishing statements whose --start lies in the past, never by
 *   sleeping.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { binaryPath, build, baseEnv, type RunResult } from './cli.ts';
import { accessLog, accessSince, startProxyRegistry, type AccessEntry, type ProxyRegistryService } from './registry.ts';
import { waitFor } from './services.ts';
import { makeRelease, type Release, type TreeSpec, SMALL_HOST_TREE } from './release.ts';
import { makeKeyPair, writeKeyPair } from './signing.ts';

export interface FleetRegistry {
  mirror: ProxyRegistryService;
  /** The repository this fleet's releases live in (its own, so runs never share a cache). */
  repository: string;
  /** oci://MIRROR/REPO: what hosts follow. */
  hostFrom: string;
  /** oci://UPSTREAM/REPO: where releases and statements are pushed. */
  upstreamTo: string;
  pushEnv: Record<string, string>;
}

export interface FleetKeys {
  dir: string;
  key: string;
  pub: string;
  /** An empty trust folder: hosts pin the key on the command line only. */
  trustDir: string;
}

export async function fleetRegistry(name: string): Promise<FleetRegistry> {
  const mirror = await startProxyRegistry();
  const repository = `acme/${name}-${randomBytes(4).toString('hex')}`;
  return {
    mirror,
    repository,
    hostFrom: `oci://${mirror.address}/${repository}`,
    upstreamTo: `oci://${mirror.upstream.address}/${repository}`,
    pushEnv: { GHCR_PAT: mirror.upstream.password, GHCR_USER: mirror.upstream.username },
  };
}

export function fleetKeys(dir: string): FleetKeys {
  mkdirSync(dir, { recursive: true });
  const { key, pub } = writeKeyPair(dir, 'release', makeKeyPair('ecdsa'));
  const trustDir = join(dir, 'trust');
  mkdirSync(trustDir, { recursive: true });
  return { dir, key, pub, trustDir };
}

/** A host tree whose release carries an exec probe that always fails (a release that breaks its hosts). */
export const FAILING_PROBE_TREE: TreeSpec = {
  ...SMALL_HOST_TREE,
  'health.d/probe.json': JSON.stringify({ name: 'the service answers', kind: 'exec', argv: ['host/bin/probe.sh'], timeout: '5s', grace: '1ms' }),
  'bin/probe.sh': { content: '#!/bin/sh\necho "the service does not answer" >&2\nexit 1\n', mode: 0o755 },
};

/** Packages, signs (key) and publishes a release to the fleet's repository; returns it. */
export async function publishRelease(reg: FleetRegistry, keys: FleetKeys, out: string, version: string, hostTree?: TreeSpec): Promise<Release> {
  const release = await makeRelease({ version, out, hostTree });
  const signed = await build(['sign', '--version', version, '--out', out, '--key', keys.key]);
  if (signed.code !== 0) throw new Error(`sign ${version} failed:\n${signed.stderr}`);
  const pushed = await build(['publish', '--version', version, '--to', reg.upstreamTo, '--out', out], { env: reg.pushEnv });
  if (pushed.code !== 0) throw new Error(`publish ${version} failed:\n${pushed.stderr}`);
  return release;
}

/** containai-build rollout against the upstream registry, signed with the fleet's key. */
export function rollout(reg: FleetRegistry, keys: FleetKeys, args: string[]): Promise<RunResult> {
  return build(['rollout', '--to', reg.upstreamTo, '--key', keys.key, '--json', ...args], { env: reg.pushEnv });
}

/** An RFC 3339 time `hours` before now: a statement whose ramp started that long ago. */
export function hoursAgo(hours: number): string {
  return new Date(Date.now() - hours * 3_600_000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export interface FleetHost {
  index: number;
  root: string;
  stateDir: string;
  machineIdFile: string;
  machineId: string;
}

/**
 * `count` hosts under dir. Machine ids come from a seed (sha256 of seed and index): the same seed makes
 * the same fleet, so a test is reproducible; bench/fleet.ts draws a fresh seed per run.
 */
export function makeHosts(dir: string, count: number, seed = 'containai-fleet'): FleetHost[] {
  return Array.from({ length: count }, (_, index) => {
    const base = join(dir, `host-${String(index).padStart(3, '0')}`);
    const root = join(base, 'root');
    const stateDir = join(base, 'var-lib');
    mkdirSync(root, { recursive: true, mode: 0o755 });
    mkdirSync(stateDir, { recursive: true });
    const machineId = createHash('sha256').update(`${seed}/${index}`).digest('hex').slice(0, 32);
    const machineIdFile = join(base, 'machine-id');
    writeFileSync(machineIdFile, `${machineId}\n`);
    return { index, root, stateDir, machineIdFile, machineId };
  });
}

export interface HostRun extends RunResult {
  host: FleetHost;
  /** The --json document, when it printed one. */
  json?: Record<string, unknown>;
  ms: number;
  /** CPU time the process took (user + system), ms. */
  cpuMs: number;
}

/** The environment of one host: its own state folder and machine id; no engine (a socket that is not there). */
export function hostEnv(host: FleetHost): Record<string, string> {
  return { ...baseEnv(), CONTAINAI_STATE_DIR: host.stateDir, CONTAINAI_MACHINE_ID_FILE: host.machineIdFile, DOCKER_HOST: 'unix:///nonexistent/containai-fleet.sock' };
}

async function runHost(host: FleetHost, args: string[]): Promise<HostRun> {
  const started = performance.now();
  const proc = Bun.spawn([binaryPath('containai-host'), ...args], { env: hostEnv(host), stdout: 'pipe', stderr: 'pipe', stdin: 'ignore' });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  let json: Record<string, unknown> | undefined;
  try {
    json = JSON.parse(stdout);
  } catch {
    json = undefined;
  }
  const usage = proc.resourceUsage();
  const cpuMs = usage ? Number(usage.cpuTime.user + usage.cpuTime.system) / 1000 : 0;
  return { host, code, stdout, stderr, json, ms: performance.now() - started, cpuMs };
}

/** Runs a command on every host, `concurrency` processes at a time; results in host order. */
export async function onEveryHost(hosts: readonly FleetHost[], args: (host: FleetHost) => string[], concurrency = 40): Promise<HostRun[]> {
  const results: HostRun[] = new Array(hosts.length);
  let next = 0;
  const workers = Array.from({ length: Math.min(concurrency, hosts.length) }, async () => {
    for (let i = next++; i < hosts.length; i = next++) results[i] = await runHost(hosts[i]!, args(hosts[i]!));
  });
  await Promise.all(workers);
  return results;
}

/** `update` as the timer runs it on a host, with the fleet's policy. */
export function updateArgs(reg: FleetRegistry, keys: FleetKeys, host: FleetHost, gate: string[] = ['--no-gate']): string[] {
  return ['update', '--from', reg.hostFrom, '--channel', 'stable', '--install-root', host.root, '--allow-nonroot', '--key', keys.pub, '--no-public-good', '--trust-dir', keys.trustDir, '--json', ...gate];
}

/** check-health as the health timer runs it on a host (offline: the registry check asks ghcr.io). */
export function healthArgs(keys: FleetKeys, host: FleetHost, extra: string[] = []): string[] {
  return ['check-health', '--install-root', host.root, '--offline', '--key', keys.pub, '--no-public-good', '--trust-dir', keys.trustDir, '--json', ...extra];
}

/** Registry requests in an access log, by kind. */
export interface LoadCount {
  requests: number;
  manifestHeads: number;
  manifestGets: number;
  blobGets: number;
  /** Bytes of bodies sent (HEADs send none). */
  bytes: number;
  /** GETs of each blob (digest → count). */
  perBlob: Map<string, number>;
}

export function countLoad(entries: readonly AccessEntry[], repository: string): LoadCount {
  const mine = entries.filter((e) => e.path.startsWith(`/v2/${repository}/`));
  const perBlob = new Map<string, number>();
  for (const e of mine) {
    const blob = /\/blobs\/(sha256:[0-9a-f]{64})$/.exec(e.path)?.[1];
    if (blob && e.method === 'GET' && e.status < 300) perBlob.set(blob, (perBlob.get(blob) ?? 0) + 1);
  }
  return {
    requests: mine.length,
    manifestHeads: mine.filter((e) => e.method === 'HEAD' && e.path.includes('/manifests/')).length,
    manifestGets: mine.filter((e) => e.method === 'GET' && e.path.includes('/manifests/')).length,
    blobGets: mine.filter((e) => e.method === 'GET' && e.path.includes('/blobs/')).length,
    // The log gives a HEAD the Content-Length of the body it did not send: only bodies sent count.
    bytes: mine.filter((e) => e.method !== 'HEAD').reduce((n, e) => n + e.bytes, 0),
    perBlob,
  };
}

/** The size of a blob in the mirror's storage (distribution's filesystem layout), or -1. */
export function storedSize(reg: FleetRegistry, hex: string): number {
  try {
    return statSync(join(reg.mirror.dir, 'data', 'docker', 'registry', 'v2', 'blobs', 'sha256', hex.slice(0, 2), hex, 'data')).size;
  } catch {
    return -1;
  }
}

/**
 * Waits until the mirror has stored every blob it served whole since `mark` (distribution's proxy
 * stores in the background, after it answered): what a later host meets is then a warm mirror, and
 * the upstream log holds every fetch the phase caused.
 */
export async function settleMirror(reg: FleetRegistry, mark: number): Promise<void> {
  const served = accessSince(reg.mirror, mark).filter((e) => e.method === 'GET' && e.status === 200 && /\/blobs\/sha256:[0-9a-f]{64}$/.test(e.path));
  await waitFor('the mirror to store the blobs it served', () => served.every((e) => storedSize(reg, e.path.slice(-64)) === e.bytes), 30_000);
}

export { accessLog };
