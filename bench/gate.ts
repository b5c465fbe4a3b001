/**
 * The health gate's speed (issue 13, "Speed"), through the compiled binary:
 *
 * - a `check-health --offline` run that advances a trial (one round: the
 *   release's exec probe, the health checks' results taken from the report,
 *   the round written under the lock), on a host installed with
 *   `containai-host install --gate 1h` against a real dockerd. Target: at most
 *   150 ms plus the probes' own time (the exec probe, timed alone). The same
 *   run on a copy of the host whose trial is decided (nothing to advance)
 *   shows what advancing adds to a report.
 * - `containai-host gate status` on that host: median < 50 ms. The floor is the
 *   binary's own start (`--version`).
 * - a check-health run that decides a failed trial and rolls back (verifying
 *   the release it goes back to), for information.
 *
 * Median wall time of 20 runs each, after one warm-up run.
 *
 *   bun scripts/build.ts && bun bench/gate.ts
 */
import { availableParallelism } from 'node:os';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { loadProbes } from '../lib/gate/load.ts';
import { execProbe } from '../lib/gate/probes/exec.ts';
import { systemctlShow } from '../lib/gate/systemctl.ts';
import { createHealthContext } from '../lib/health/context.ts';
import { baseEnv, binaryPath, host } from '../test/helpers/cli.ts';
import { checkHealthArgs, copyRoot, EXEC_PROBE, gateJson, type GateHost, gateRelease, install, makeGateHost, setProbeExit } from '../test/helpers/gate-host.ts';
import { startDockerd, stopAllServices } from '../test/helpers/services.ts';

const RUNS = 20;
const STATUS_TARGET_MS = 50;
const ADVANCE_TARGET_MS = 150;

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
};

async function timeCommand(argv: string[], env: Record<string, string>, okCodes = [0, 1], runs = RUNS): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < runs + 1; i++) {
    const started = performance.now();
    const proc = Bun.spawn(argv, { stdout: 'pipe', stderr: 'pipe', env: { ...baseEnv(), ...env } });
    const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    if (!okCodes.includes(code)) throw new Error(`${argv.join(' ')} exited ${code}: ${out}${err}`);
    if (i > 0) times.push(performance.now() - started); // the first warms the page cache
  }
  return times;
}

async function timeAsync(n: number, work: () => Promise<unknown>): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < n + 1; i++) {
    const started = performance.now();
    await work();
    if (i > 0) times.push(performance.now() - started);
  }
  return times;
}

const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
const sha = ['sha_ni', 'sha1', 'sha2'].filter((f) => new RegExp(`\\b${f}\\b`).test(cpuinfo));
const line = (name: string, xs: number[], target?: number, value = median(xs)) =>
  `${name.padEnd(46)} median ${value.toFixed(1).padStart(6)} ms (min ${Math.min(...xs).toFixed(1)}, max ${Math.max(...xs).toFixed(1)})${target ? `  target < ${target} ms: ${(value / target).toFixed(2)}x ${value < target ? 'OK' : 'OVER'}` : ''}`;

let h: GateHost | undefined;
try {
  console.log(`${availableParallelism()} cores; SHA extensions: ${sha.length ? sha.join(', ') : 'none'}; ${RUNS} runs each, real dockerd, the compiled containai-host`);
  const { dockerHost } = await startDockerd();
  h = makeGateHost({ DOCKER_HOST: dockerHost });
  gateRelease(h, 'v1.0.0');
  gateRelease(h, 'v2.0.0', { probes: { 'probe.json': EXEC_PROBE('30s') } });
  for (const [version, args] of [['v1.0.0', ['--no-gate']], ['v2.0.0', ['--gate', '1h']]] as const) {
    const r = await install(h, version, [...args]);
    if (r.code !== 0) throw new Error(`install ${version}: ${r.stderr}`);
  }
  // A copy whose trial is decided: check-health has nothing to advance there.
  const decided = copyRoot(h, join(h.dir, 'decided'));
  if ((await host(['gate', 'pass', '--allow-nonroot', '--install-root', decided.root])).code !== 0) throw new Error('gate pass failed');

  const bin = binaryPath('containai-host');
  const advancing = await timeCommand([bin, ...checkHealthArgs(h)], h.env);
  const rounds = gateJson(h).rounds;
  const plain = await timeCommand([bin, ...checkHealthArgs(decided)], decided.env);
  // The probe's own time: the exec probe of the release on trial, run alone in this process.
  const releaseDir = join(h.root, 'releases', 'v2.0.0');
  const [probe] = await loadProbes(releaseDir, undefined, 60 * 60_000);
  const ctx = { installRoot: h.root, releaseDir, health: createHealthContext({ installRoot: h.root }), systemctl: systemctlShow, checks: new Map() };
  const probeOnly = await timeAsync(RUNS, () => execProbe.run(probe as never, ctx));
  const beyond = advancing.map((ms, i) => ms - (probeOnly[i] ?? median(probeOnly)));
  console.log(line('check-health advancing a trial (1 exec probe)', advancing));
  console.log(line('  the exec probe alone', probeOnly));
  console.log(line('  the run beyond its probes', beyond, ADVANCE_TARGET_MS));
  console.log(line('check-health with nothing to advance', plain));
  console.log(`  advancing adds ${(median(advancing) - median(plain)).toFixed(1)} ms to a report (${rounds} rounds written)`);

  const status = await timeCommand([bin, 'gate', 'status', '--install-root', h.root], {}, [0]);
  const start = await timeCommand([bin, '--version'], {}, [0]);
  console.log(line('containai-host gate status', status, STATUS_TARGET_MS));
  console.log(line('containai-host --version (the floor)', start));
  console.log(`gate status over the floor: ${(median(status) - median(start)).toFixed(1)} ms`);

  // A check-health run that fails the trial and rolls back (the release gone back to is verified first).
  const failing: number[] = [];
  for (let i = 0; i < 5; i++) {
    const f = copyRoot(h, join(h.dir, `fail-${i}`));
    setProbeExit(f, 1);
    await timeCommand([bin, ...checkHealthArgs(f)], f.env, [0, 1], 0);
    // Its grace is 30 s: the failure's start is moved back instead of waiting it out.
    const state = gateJson(f);
    for (const p of state.probes) if (p.failingSince) p.failingSince = new Date(Date.parse(p.failingSince) - 31_000).toISOString();
    await Bun.write(join(f.root, 'state', 'gate.json'), `${JSON.stringify(state, null, 2)}\n`);
    const started = performance.now();
    const r = Bun.spawnSync([bin, ...checkHealthArgs(f)], { env: { ...baseEnv(), ...f.env } });
    failing.push(performance.now() - started);
    if (gateJson(f).decision?.outcome !== 'fail') throw new Error(`the trial was not failed: ${r.stdout}`);
  }
  console.log(line('check-health failing a trial and rolling back', failing));
} finally {
  await stopAllServices();
  if (h) rmSync(h.dir, { recursive: true, force: true });
}
