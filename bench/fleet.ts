/**
 * A fleet of 200 hosts following a rollout (issue 16): each host the compiled
 * containai-host, with its own install root, state folder and machine id, run
 * as separate processes 40 at a time, through a real pull-through mirror
 * (Debian's docker-registry, proxy mode) in front of a real token registry.
 * Time moves only by statements whose start lies in the past.
 *
 * 1. The scenario of test/e2e/fleet.test.ts (test/helpers/fleet-scenario.ts)
 *    with 200 hosts: each phase's installs, decisions, time and CPU per host,
 *    what the hosts asked the mirror and what the mirror asked upstream; then
 *    the issue's checks: the shares at 10% and 50% against the binomial 99.9%
 *    bounds for the fleet, halt and expiry 0 installs, the channel stale on
 *    every host, a replay refused everywhere, a bad release rolled back by
 *    every taker and never taken again at 100%, one request per unmoved poll.
 * 2. Upstream load as the fleet grows, 50 → 100 → 200 hosts, each on a fresh
 *    repository (a cold mirror): one release rolled out to everyone at once
 *    (100% from the start) and one ramped (10%, then 100%: the first step's
 *    hosts warm the mirror); then one unmoved poll. Requests and bytes per
 *    host at the mirror, and upstream requests, blob GETs (total, per blob)
 *    and bytes.
 *
 *   bun bench/fleet.ts [--hosts 200] [--concurrency 40] [--sizes 50,100,200] [--seed S]
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { removeDir, tempDir } from '../test/helpers/cli.ts';
import { accessLog, countLoad, fleetKeys, fleetRegistry, makeHosts, onEveryHost, publishRelease, rollout, settleMirror, updateArgs, type LoadCount } from '../test/helpers/fleet.ts';
import { binomialBounds, runFleetScenario, type FleetScenario } from '../test/helpers/fleet-scenario.ts';
import { accessSince } from '../test/helpers/registry.ts';
import { stopAllServices, waitFor } from '../test/helpers/services.ts';

const { values } = parseArgs({
  options: {
    hosts: { type: 'string', default: '200' },
    concurrency: { type: 'string', default: '40' },
    sizes: { type: 'string', default: '50,100,200' },
    seed: { type: 'string' },
  },
});
const HOSTS = Number(values.hosts);
const CONCURRENCY = Number(values.concurrency);
const SIZES = String(values.sizes).split(',').map(Number);
const SEED = values.seed ?? randomBytes(6).toString('hex');

const cpu = (() => {
  try {
    const text = readFileSync('/proc/cpuinfo', 'utf8');
    const flags = /^flags\s*:(.*)$/m.exec(text)?.[1] ?? /^Features\s*:(.*)$/m.exec(text)?.[1] ?? '';
    return { model: /^model name\s*:\s*(.*)$/m.exec(text)?.[1] ?? 'unknown', sha: /\b(sha_ni|sha2)\b/.test(flags) ? 'yes' : 'no' };
  } catch {
    return { model: 'unknown', sha: 'unknown' };
  }
})();
console.log(`machine: ${availableParallelism()} cores, ${cpu.model}, SHA extensions: ${cpu.sha}; load average ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);
console.log(`fleet: ${HOSTS} hosts, ${CONCURRENCY} processes at a time, machine-id seed ${SEED}\n`);

const work: string[] = [];
const scratch = (p: string) => {
  const d = tempDir(p);
  work.push(d);
  return d;
};
const kb = (bytes: number) => `${(bytes / 1024).toFixed(1)} KB`;
const mark = (ok: boolean) => (ok ? 'ok' : 'FAILED');
let failures = 0;
function check(what: string, ok: boolean, detail: string): void {
  if (!ok) failures++;
  console.log(`  ${mark(ok).padEnd(6)} ${what}: ${detail}`);
}

// ---------------------------------------------------------------------------
// 1. The scenario at full size

const started = performance.now();
const s: FleetScenario = await runFleetScenario({ work: scratch('cai-bench-fleet-'), hosts: HOSTS, concurrency: CONCURRENCY, seed: SEED, bad100: 'all', log: (line) => console.log(`  ${line}`) });
console.log(`  scenario: ${((performance.now() - started) / 1000).toFixed(1)} s\n`);

const n = HOSTS;
const on = (phase: string, v: string) => s.onVersion[phase]?.[v] ?? [];
const b10 = binomialBounds(n, 0.1);
const b50 = binomialBounds(n, 0.5);
const at10 = on('ramp10', 'v2.0.0');
const at50 = on('ramp50', 'v2.0.0');
const same = (a: readonly number[], b: readonly number[]) => a.length === b.length && [...a].sort().join() === [...b].sort().join();
console.log('checks');
check('ramp 10%', at10.length >= b10.lo && at10.length <= b10.hi && same(at10, s.expected.v2at10), `${at10.length} of ${n} installed (${((100 * at10.length) / n).toFixed(1)}%), binomial 99.9% bounds [${b10.lo}, ${b10.hi}]; exactly the hosts sha256(machine-id + version) puts under 10%: ${same(at10, s.expected.v2at10)}`);
check('same hosts on every run', same(on('unchanged', 'v2.0.0'), at10) && same(on('again10', 'v2.0.0'), at10), `the tag polled again and a new statement of the same ramp: ${on('again10', 'v2.0.0').length} hosts, the same ones`);
check('ramp 50%', at50.length >= b50.lo && at50.length <= b50.hi && at10.every((h) => at50.includes(h)) && same(at50, s.expected.v2at50), `${at50.length} of ${n} (bounds [${b50.lo}, ${b50.hi}]); every host of the 10% step kept; ${at50.length - at10.length} added`);
check('halt', s.phases.halt!.installs === 0, `${s.phases.halt!.installs} new installs on the next poll of every host (${JSON.stringify(s.phases.halt!.decisions)})`);
const stale = s.staleHealth.filter((h) => h.status === 'warn' && h.stale.includes('stable')).length;
check('expiry', s.phases.expired!.installs === 0 && stale === n, `${s.phases.expired!.installs} installs; check-health reports the channel stale on ${stale} of ${n} hosts`);
check('replay', s.phases.replay!.decisions.refused === n && s.phases.replay!.installs === 0, `the older statement served again: refused by ${s.phases.replay!.decisions.refused ?? 0} of ${n} hosts`);
const takers = s.badTakers;
const rolledBack = takers.filter((t) => t.current !== 'v3.0.0' && t.bad.includes('v3.0.0')).length;
const retook = s.phases.bad100!.runs.filter((r) => takers.some((t) => t.host === r.host.index) && r.json?.decision === 'install').length;
check('bad release', takers.length > 0 && rolledBack === takers.length && retook === 0, `${takers.length} hosts took it at 20%; ${rolledBack} rolled themselves back and marked it bad (decided within ${Math.max(...takers.map((t) => t.rounds))} rounds); at 100% ${retook} of them took it again, ${s.phases.bad100!.installs} other hosts took it`);
const unchanged = s.phases.unchanged!;
check('unmoved poll', unchanged.requestsPerHost.max === 1 && unchanged.mirror.requests === n, `${unchanged.requestsPerHost.max} request per host (the mirror logged ${unchanged.mirror.requests} for ${n} hosts: ${unchanged.mirror.manifestHeads} HEADs, ${unchanged.mirror.bytes} bytes of bodies)`);
const base = s.phases.base!;
console.log(`\nper host: an install poll ${(base.mirror.requests / base.installs).toFixed(1)} requests, ${kb(base.mirror.bytes / base.installs)}, ${base.cpuPerHostMs.toFixed(0)} ms CPU; an unmoved poll 1 request, ${unchanged.cpuPerHostMs.toFixed(0)} ms CPU (mostly the process starting)`);

// ---------------------------------------------------------------------------
// 2. Upstream load as the fleet grows

interface LoadRun {
  hosts: number;
  mode: 'at once' | 'ramped';
  mirror: LoadCount;
  upstream: LoadCount;
  unmovedUpstream: LoadCount;
  seconds: number;
}

async function loadRun(size: number, mode: LoadRun['mode']): Promise<LoadRun> {
  const dir = scratch('cai-bench-load-');
  const reg = await fleetRegistry(`load${size}`);
  const keys = fleetKeys(join(dir, 'keys'));
  await publishRelease(reg, keys, join(dir, 'dist'), 'v1.0.0');
  const hosts = makeHosts(join(dir, 'hosts'), size, `${SEED}/${size}`);
  const m0 = accessLog(reg.mirror).length;
  const u0 = accessLog(reg.mirror.upstream).length;
  const t0 = performance.now();
  const poll = () => onEveryHost(hosts, (h) => updateArgs(reg, keys, h), CONCURRENCY);
  const state = async (args: string[]) => {
    const r = await rollout(reg, keys, ['--version', 'v1.0.0', '--channel', 'stable', ...args]);
    if (r.code !== 0) throw new Error(r.stderr);
  };
  if (mode === 'ramped') {
    await state(['--ramp', '10%@0h']);
    await poll();
    // The canaries' blobs are stored in the mirror before the rest come.
    await settleMirror(reg, m0);
    await state(['--ramp', '100%@0h']);
  } else {
    await state(['--ramp', '100%@0h']);
  }
  const runs = await poll();
  if (runs.some((r) => r.code !== 0)) throw new Error(`a host failed: ${runs.find((r) => r.code !== 0)?.stderr}`);
  const seconds = (performance.now() - t0) / 1000;
  await settleMirror(reg, m0);
  const m1 = accessLog(reg.mirror).length;
  const u1 = accessLog(reg.mirror.upstream).length;
  await poll();
  await waitFor('the mirror to log the unmoved poll', () => accessSince(reg.mirror, m1).length >= size, 10_000);
  const unmovedUpstream = countLoad(accessSince(reg.mirror.upstream, u1), reg.repository);
  return { hosts: size, mode, mirror: countLoad(accessLog(reg.mirror).slice(m0, m1), reg.repository), upstream: countLoad(accessLog(reg.mirror.upstream).slice(u0, u1), reg.repository), unmovedUpstream, seconds };
}

console.log(`\nupstream load as the fleet grows (a fresh repository each: a cold mirror), ${CONCURRENCY} hosts at a time`);
console.log('  hosts  rollout   mirror req/host  KB/host | upstream req  manifest HEADs  blob GETs  per blob max  upstream KB | unmoved poll: upstream req');
const runsBySize: LoadRun[] = [];
for (const mode of ['at once', 'ramped'] as const) {
  for (const size of SIZES) {
    const r = await loadRun(size, mode);
    runsBySize.push(r);
    const perBlob = [...r.upstream.perBlob.values()];
    console.log(
      `  ${String(size).padStart(5)}  ${mode.padEnd(8)}  ${(r.mirror.requests / size).toFixed(1).padStart(15)}  ${(r.mirror.bytes / size / 1024).toFixed(1).padStart(7)} | ${String(r.upstream.requests).padStart(12)}  ${String(r.upstream.manifestHeads).padStart(14)}  ${String(r.upstream.blobGets).padStart(9)}  ${String(Math.max(0, ...perBlob)).padStart(12)}  ${(r.upstream.bytes / 1024).toFixed(0).padStart(11)} | ${r.unmovedUpstream.requests} (${r.unmovedUpstream.blobGets} blob GETs)`,
    );
  }
}
const grow = (mode: LoadRun['mode'], pick: (r: LoadRun) => number) => {
  const rs = runsBySize.filter((r) => r.mode === mode);
  return rs.map((r) => `${r.hosts}: ${pick(r)}`).join(', ');
};
console.log(`\n  upstream blob GETs, at once: ${grow('at once', (r) => r.upstream.blobGets)}; ramped: ${grow('ramped', (r) => r.upstream.blobGets)}`);
console.log(`  upstream manifest HEADs (the mirror asks upstream whether the tag moved, once per host poll): ${grow('ramped', (r) => r.upstream.manifestHeads)}`);
console.log("  distribution 2.8's proxy fetches a blob it lacks twice (to stream it and to store it) and once more for each request that comes while it fetches (no coalescing): blob GETs count the hosts that miss a blob at the same moment (more in a bigger cold wave), and stop once the mirror has stored it; a ramp's first step warms the mirror for the rest, and the timers' delay spreads the misses.");

for (const d of work) removeDir(d);
await stopAllServices();
console.log(`\n${failures === 0 ? 'all checks passed' : `${failures} checks FAILED`}`);
process.exit(failures === 0 ? 0 : 1);
