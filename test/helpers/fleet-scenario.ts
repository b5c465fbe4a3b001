/**
 * The fleet scenario of issue 16, run by test/e2e/fleet.test.ts (60 hosts)
 * and bench/fleet.ts (200): a fleet of compiled containai-host processes
 * (test/helpers/fleet.ts) following one channel through a real pull-through
 * mirror, while an operator publishes statements with the compiled
 * containai-build. Time moves only by statements whose --start lies in the
 * past. Each phase polls every host (--concurrency processes at a time) and
 * is reported from what the hosts printed and what the registries logged:
 *
 *   base       v1 at 100%: every host installs it (the first, cold wave)
 *   ramp10     v2 "10%@0h,50%@6h,100%@24h" from now: the 10% step
 *   unchanged  the same tag polled again: one request per host, no install
 *   again10    the same ramp as a new statement: the same hosts, no other
 *   ramp50     the same ramp from 7h ago: the 50% step
 *   halt       a halt of v2
 *   expired    v2 at 100% from 8 days ago with a 7-day expiry; then
 *              check-health on every host
 *   replay     the ramp50 statement served again on the channel tag
 *   bad        v3, whose probe fails, at 20% with --gate; its takers' trials
 *              driven by check-health (and the next update), until decided
 *   bad100     v3 at 100%: no taker takes it again (nor did they on the
 *              polls that decided their trials); every other host takes it
 *              (the e2e test polls the takers only, for time)
 *
 * The checks (bounds, sets, counts) are the caller's; this only gathers.
 */
import { existsSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { RegistryClient } from '../../lib/oci/client.ts';
import { parseRegistryReference } from '../../lib/oci/reference.ts';
import { putManifest } from '../../lib/oci/registry.ts';
import { MEDIA_TYPE_IMAGE_MANIFEST } from '../../lib/oci/types.ts';
import { hostBucket } from '../../lib/rollout/bucket.ts';
import {
  accessLog,
  countLoad,
  FAILING_PROBE_TREE,
  fleetKeys,
  fleetRegistry,
  healthArgs,
  hoursAgo,
  makeHosts,
  onEveryHost,
  publishRelease,
  rollout,
  settleMirror,
  updateArgs,
  type FleetHost,
  type FleetKeys,
  type FleetRegistry,
  type HostRun,
  type LoadCount,
} from './fleet.ts';
import { accessSince } from './registry.ts';
import { waitFor } from './services.ts';

export const RAMP = '10%@0h,50%@6h,100%@24h';
export const BAD_GATE = ['--gate', '30s'];

export interface PhaseReport {
  name: string;
  /** Hosts whose update installed something. */
  installs: number;
  /** Hosts by the decision they printed. */
  decisions: Record<string, number>;
  /** Exit codes other than 0, by host. */
  failures: Array<{ host: number; code: number; stderr: string }>;
  /** What each host said it asked (update --json requests). */
  requestsPerHost: { min: number; max: number; mean: number };
  /** The mirror's access log for the phase (what the hosts asked). */
  mirror: LoadCount;
  /** The upstream registry's access log for the phase (what the mirror asked). */
  upstream: LoadCount;
  wallMs: number;
  /** CPU per host process (user + system), ms. */
  cpuPerHostMs: number;
  runs: HostRun[];
}

export interface FleetScenario {
  reg: FleetRegistry;
  keys: FleetKeys;
  hosts: FleetHost[];
  /** Release manifest digests and their blobs' digests. */
  releases: Record<string, { digest: string; blobs: string[] }>;
  phases: Record<string, PhaseReport>;
  /** Hosts (indexes) on each version after each phase. */
  onVersion: Record<string, Record<string, number[]>>;
  /** The hosts the formula puts under each share of v2 and v3. */
  expected: { v2at10: number[]; v2at50: number[]; v3at20: number[] };
  /** check-health's channel check on every host after the expired statement. */
  staleHealth: Array<{ host: number; status: string; stale: string[] }>;
  /** The takers of v3, as they ended. */
  badTakers: Array<{ host: number; current?: string; bad: string[]; reason?: string; rounds: number }>;
  log: (line: string) => void;
}

export interface ScenarioOptions {
  work: string;
  hosts: number;
  concurrency?: number;
  /** The seed the machine ids come from (default: a fixed one, the same fleet every run). */
  seed?: string;
  /** Who polls v3 at 100%: every host (the bench), or the hosts that took it at 20% (the e2e test, for time). */
  bad100?: 'all' | 'takers';
  log?: (line: string) => void;
}

function currentVersion(h: FleetHost): string | undefined {
  const link = join(h.root, 'current');
  return existsSync(link) ? readlinkSync(link).replace(/^releases\//, '').replace(/@\d+$/, '') : undefined;
}

function badVersions(h: FleetHost): Array<{ version: string; reason: string }> {
  const path = join(h.root, 'state', 'bad.json');
  return existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as { versions: Array<{ version: string; reason: string }> }).versions : [];
}

/** Hosts by the version current names. */
export function byVersion(hosts: readonly FleetHost[]): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const h of hosts) (out[currentVersion(h) ?? 'none'] ??= []).push(h.index);
  return out;
}

async function manifestOf(reg: FleetRegistry, ref: string): Promise<{ digest: string; bytes: Uint8Array; doc: { layers: Array<{ digest: string }> } }> {
  const r = await fetch(`http://${reg.mirror.address}/v2/${reg.repository}/manifests/${ref}`, { headers: { accept: MEDIA_TYPE_IMAGE_MANIFEST } });
  if (r.status !== 200) throw new Error(`${ref}: ${r.status}`);
  const bytes = new Uint8Array(await r.arrayBuffer());
  return { digest: r.headers.get('docker-content-digest') as string, bytes, doc: JSON.parse(new TextDecoder().decode(bytes)) };
}

export async function runFleetScenario(options: ScenarioOptions): Promise<FleetScenario> {
  const log = options.log ?? (() => undefined);
  const concurrency = options.concurrency ?? 40;
  const reg = await fleetRegistry('fleet');
  const keys = fleetKeys(join(options.work, 'keys'));
  const dist = join(options.work, 'dist');
  await publishRelease(reg, keys, dist, 'v1.0.0');
  await publishRelease(reg, keys, dist, 'v2.0.0');
  await publishRelease(reg, keys, dist, 'v3.0.0', FAILING_PROBE_TREE);
  const releases: FleetScenario['releases'] = {};
  for (const v of ['v1.0.0', 'v2.0.0', 'v3.0.0']) {
    const m = await manifestOf(reg, v);
    releases[v] = { digest: m.digest, blobs: m.doc.layers.map((l) => l.digest) };
  }
  const hosts = makeHosts(join(options.work, 'hosts'), options.hosts, options.seed);
  const s: FleetScenario = {
    reg,
    keys,
    hosts,
    releases,
    phases: {},
    onVersion: {},
    expected: {
      v2at10: hosts.filter((h) => hostBucket(h.machineId, 'v2.0.0') < 0.1).map((h) => h.index),
      v2at50: hosts.filter((h) => hostBucket(h.machineId, 'v2.0.0') < 0.5).map((h) => h.index),
      v3at20: hosts.filter((h) => hostBucket(h.machineId, 'v3.0.0') < 0.2).map((h) => h.index),
    },
    staleHealth: [],
    badTakers: [],
    log,
  };

  const statement = async (args: string[]) => {
    const r = await rollout(reg, keys, args);
    if (r.code !== 0) throw new Error(`rollout ${args.join(' ')} failed:\n${r.stderr}`);
    return JSON.parse(r.stdout) as { digest: string; sequence: number };
  };

  /** One update on every host (or the ones given), reported. */
  const poll = async (name: string, gate: string[] = ['--no-gate'], only: readonly FleetHost[] = hosts): Promise<PhaseReport> => {
    const mirrorMark = accessLog(reg.mirror).length;
    const upstreamMark = accessLog(reg.mirror.upstream).length;
    const started = performance.now();
    const runs = await onEveryHost(only, (h) => updateArgs(reg, keys, h, gate), concurrency);
    const wallMs = performance.now() - started;
    // The registries write their log line after the response: wait until the mirror's holds every request the hosts made.
    const asked = runs.reduce((n, r) => n + Number(r.json?.requests ?? 0), 0);
    await waitFor('the mirror to log the phase', () => accessSince(reg.mirror, mirrorMark).filter((e) => e.path.startsWith(`/v2/${reg.repository}/`)).length >= asked, 10_000);
    // The next phase meets what a later host would: a warm mirror.
    await settleMirror(reg, mirrorMark);
    const requests = runs.map((r) => Number(r.json?.requests ?? 0));
    const decisions: Record<string, number> = {};
    for (const r of runs) decisions[String(r.json?.decision ?? 'none')] = (decisions[String(r.json?.decision ?? 'none')] ?? 0) + 1;
    const report: PhaseReport = {
      name,
      installs: runs.filter((r) => r.json?.decision === 'install').length,
      decisions,
      failures: runs.filter((r) => r.code !== 0).map((r) => ({ host: r.host.index, code: r.code, stderr: r.stderr.trim().split('\n').slice(-2).join(' | ') })),
      requestsPerHost: { min: Math.min(...requests), max: Math.max(...requests), mean: requests.reduce((a, b) => a + b, 0) / requests.length },
      mirror: countLoad(accessSince(reg.mirror, mirrorMark), reg.repository),
      upstream: countLoad(accessSince(reg.mirror.upstream, upstreamMark), reg.repository),
      wallMs,
      cpuPerHostMs: runs.reduce((n, r) => n + r.cpuMs, 0) / runs.length,
      runs,
    };
    s.phases[name] = report;
    s.onVersion[name] = byVersion(hosts);
    log(`${name.padEnd(10)} ${String(report.installs).padStart(4)} installs  ${JSON.stringify(decisions)}  ${(wallMs / 1000).toFixed(1)} s (${report.cpuPerHostMs.toFixed(0)} ms CPU/host)  mirror ${report.mirror.requests} req  upstream ${report.upstream.requests} req (${report.upstream.blobGets} blob GETs)`);
    return report;
  };

  await statement(['--version', 'v1.0.0', '--channel', 'stable', '--ramp', '100%@0h']);
  await poll('base');

  const start = hoursAgo(0);
  await statement(['--version', 'v2.0.0', '--channel', 'stable', '--ramp', RAMP, '--start', start]);
  await poll('ramp10');
  await poll('unchanged');
  await statement(['--version', 'v2.0.0', '--channel', 'stable', '--ramp', RAMP, '--start', start]);
  await poll('again10');

  const at50 = await statement(['--version', 'v2.0.0', '--channel', 'stable', '--ramp', RAMP, '--start', hoursAgo(7)]);
  const fifty = await manifestOf(reg, 'stable');
  if (fifty.digest !== at50.digest) throw new Error('the channel does not name the statement just made');
  await poll('ramp50');

  await statement(['--version', 'v2.0.0', '--channel', 'stable', '--halt']);
  await poll('halt');

  await statement(['--version', 'v2.0.0', '--channel', 'stable', '--ramp', '100%@0h', '--start', hoursAgo(8 * 24), '--expires', '7d']);
  await poll('expired');
  const healthStarted = performance.now();
  const health = await onEveryHost(hosts, (h) => healthArgs(keys, h), concurrency);
  s.staleHealth = health.map((r) => {
    const check = (JSON.parse(r.stdout) as { checks: Array<{ id: string; status: string; details?: { stale?: string[] } }> }).checks.find((c) => c.id === 'channel');
    return { host: r.host.index, status: check?.status ?? 'missing', stale: check?.details?.stale ?? [] };
  });
  log(`health     ${((performance.now() - healthStarted) / 1000).toFixed(1)} s, channel check: ${JSON.stringify(Object.fromEntries(['pass', 'warn', 'fail', 'skip', 'missing'].map((st) => [st, s.staleHealth.filter((h) => h.status === st).length])))}`);

  // A registry rolled back (or a mirror frozen in time) serves the ramp50 statement again.
  const pusher = new RegistryClient(parseRegistryReference(reg.upstreamTo), { credentials: { username: reg.mirror.upstream.username, password: reg.mirror.upstream.password, source: 'test' }, actions: 'pull,push' });
  await putManifest(pusher, 'stable', fifty.bytes, MEDIA_TYPE_IMAGE_MANIFEST);
  await poll('replay');

  await statement(['--version', 'v3.0.0', '--channel', 'stable', '--ramp', '20%@0h']);
  const bad = await poll('bad', BAD_GATE);
  const takers = bad.runs.filter((r) => r.json?.decision === 'install').map((r) => r.host);
  const rounds = new Map<number, number>();
  // check-health advances each trial (the health timer's job); update's own round settles it too. Bounded: no sleeping.
  for (let round = 1; round <= 4; round++) {
    const open = takers.filter((h) => !badVersions(h).some((b) => b.version === 'v3.0.0'));
    if (open.length === 0) break;
    await onEveryHost(open, (h) => healthArgs(keys, h), concurrency);
    await poll(`bad-round${round}`, BAD_GATE, open);
    for (const h of open) rounds.set(h.index, round);
  }
  s.badTakers = takers.map((h) => {
    const list = badVersions(h);
    return { host: h.index, current: currentVersion(h), bad: list.map((b) => b.version), reason: list.find((b) => b.version === 'v3.0.0')?.reason, rounds: rounds.get(h.index) ?? 0 };
  });

  await statement(['--version', 'v3.0.0', '--channel', 'stable', '--ramp', '100%@0h']);
  await poll('bad100', BAD_GATE, options.bad100 === 'takers' ? takers : hosts);
  return s;
}

// ---------------------------------------------------------------------------
// Binomial bounds

/** The central interval holding at least `coverage` of Binomial(n, p): [lo, hi], each tail at most (1 - coverage) / 2. */
export function binomialBounds(n: number, p: number, coverage = 0.999): { lo: number; hi: number } {
  const tail = (1 - coverage) / 2;
  const pmf: number[] = [];
  // log-space for large n: log C(n,k) + k log p + (n-k) log(1-p)
  let logC = 0;
  for (let k = 0; k <= n; k++) {
    if (k > 0) logC += Math.log((n - k + 1) / k);
    pmf.push(Math.exp(logC + k * Math.log(p) + (n - k) * Math.log1p(-p)));
  }
  let lo = 0;
  for (let cdf = 0; lo <= n; lo++) {
    if (cdf + pmf[lo]! > tail) break;
    cdf += pmf[lo]!;
  }
  let hi = n;
  for (let upper = 0; hi >= 0; hi--) {
    if (upper + pmf[hi]! > tail) break;
    upper += pmf[hi]!;
  }
  return { lo, hi };
}
