/**
 * The health gate's speed (issue 13, "Speed"):
 *
 * - `containai-host gate status` on a root with a release on trial, as an
 *   operator runs it: median wall time of 20 runs; target < 50 ms. The floor
 *   is the binary's own start (`--version`).
 * - one advance of a trial (what check-health and install --wait call), in
 *   process: a round of one exec probe (/bin/true) plus the state written
 *   under the lock; the probe's own time is measured apart and taken off.
 *   Target: at most 150 ms plus the probes' own time.
 * - a fail decision with its rollback (verifying previous), for information.
 *
 *   bun scripts/build.ts && bun bench/gate.ts
 */
import { availableParallelism } from 'node:os';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { execProbe } from '../lib/gate/probes/exec.ts';
import { advanceTrial, endTrialByHand, type GateDeps } from '../lib/gate/trial.ts';
import { createHealthContext } from '../lib/health/context.ts';
import { systemctlShow } from '../lib/gate/systemctl.ts';
import { binaryPath } from '../test/helpers/cli.ts';
import { makeGateRoot, putOnTrial } from '../test/helpers/gate.ts';

const RUNS = 20;
const STATUS_TARGET_MS = 50;
const ADVANCE_TARGET_MS = 150;

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
};

async function timeCommand(argv: string[]): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < RUNS + 1; i++) {
    const started = performance.now();
    const proc = Bun.spawn(argv, { stdout: 'pipe', stderr: 'pipe', env: { PATH: '/usr/bin:/bin', NO_COLOR: '1' } });
    const [out, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
    if (code !== 0) throw new Error(`${argv.join(' ')} exited ${code}: ${out}`);
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
const line = (name: string, xs: number[], target?: number) =>
  `${name.padEnd(40)} median ${median(xs).toFixed(1).padStart(6)} ms (min ${Math.min(...xs).toFixed(1)}, max ${Math.max(...xs).toFixed(1)})${target ? `  target < ${target} ms: ${(median(xs) / target).toFixed(2)}x ${median(xs) < target ? 'OK' : 'OVER'}` : ''}`;

const roots: string[] = [];
try {
  console.log(`${availableParallelism()} cores; SHA extensions: ${sha.length ? sha.join(', ') : 'none'}; ${RUNS} runs each`);

  // gate status, on a root with a trial and a round of results.
  const g = await makeGateRoot();
  roots.push(g.root);
  const deps: GateDeps = { by: 'bench', healthChecks: [], operatorDir: g.operatorDir };
  await putOnTrial(g, 60 * 60_000, deps);
  await advanceTrial(g.layout, deps);
  const host = binaryPath('containai-host');
  const status = await timeCommand([host, 'gate', 'status', '--install-root', g.root]);
  const start = await timeCommand([host, '--version']);
  console.log(line('containai-host gate status', status, STATUS_TARGET_MS));
  console.log(line('containai-host --version (the floor)', start));
  console.log(`gate status over the floor: ${(median(status) - median(start)).toFixed(1)} ms`);

  // One advance: its cost beyond the probe's own time.
  const probe = (await import('../lib/gate/load.ts')).loadProbes(join(g.root, 'releases', 'v2'), undefined, 60 * 60_000);
  const exec = (await probe)[0]!;
  const ctx = { installRoot: g.root, releaseDir: join(g.root, 'releases', 'v2'), health: createHealthContext({ installRoot: g.root }), systemctl: systemctlShow, checks: new Map() };
  const probeOnly = await timeAsync(RUNS, () => execProbe.run(exec as never, ctx));
  const advance = await timeAsync(RUNS, () => advanceTrial(g.layout, deps));
  const overhead = advance.map((ms, i) => ms - (probeOnly[i] ?? median(probeOnly)));
  console.log(line('advanceTrial (one exec probe)', advance));
  console.log(line('  the probe alone', probeOnly));
  console.log(line('  advance beyond the probe', overhead, ADVANCE_TARGET_MS));

  // A fail decision: the previous release verified, then the switch (informative).
  const failing: number[] = [];
  for (let i = 0; i < 5; i++) {
    const f = await makeGateRoot();
    roots.push(f.root);
    await putOnTrial(f, 60 * 60_000, { ...deps, operatorDir: f.operatorDir });
    const started = performance.now();
    await endTrialByHand(f.layout, 'fail', 'bench', { ...deps, operatorDir: f.operatorDir });
    failing.push(performance.now() - started);
  }
  console.log(line('gate fail (verify previous, switch, record)', failing));
} finally {
  for (const root of roots) rmSync(root, { recursive: true, force: true });
}
