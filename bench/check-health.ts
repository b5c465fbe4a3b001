/**
 * check-health --offline against a real dockerd and a release of the host tree
 * installed under a temp root, run as the timer runs it (the installed
 * current/tools/containai-host), beside `containai-host --version` (process
 * start). Median wall time of 20 runs each. Targets: report < 150 ms, start < 30 ms.
 *
 *   bun scripts/build.ts && bun bench/check-health.ts
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { binaryPath, tempDir } from '../test/helpers/cli.ts';
import { handInstall } from '../test/helpers/installed-release.ts';
import { requireService, startDockerd, stopAllServices } from '../test/helpers/services.ts';

const RUNS = 20;
const TARGET_REPORT_MS = 150;
const TARGET_START_MS = 30;

/** Per-check durations from the --json reports, to show where the time goes. */
const perCheck = new Map<string, number[]>();

async function timeRuns(argv: string[], env: Record<string, string>, okCodes: number[]): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < RUNS + 1; i++) {
    const started = performance.now();
    const proc = Bun.spawn(argv, { env, stdout: 'pipe', stderr: 'pipe' });
    const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    const ms = performance.now() - started;
    if (!okCodes.includes(code)) throw new Error(`${argv.join(' ')} exited ${code}:\n${out}${err}`);
    if (i === 0) continue; // the first run warms the page cache
    times.push(ms);
    if (argv.includes('--json')) {
      for (const c of (JSON.parse(out) as { checks: Array<{ id: string; durationMs: number }> }).checks) perCheck.set(c.id, [...(perCheck.get(c.id) ?? []), c.durationMs]);
    }
  }
  return times;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
};

const root = tempDir('cai-bench-health-');
// The verification stamp goes to a folder of the bench, not /var/lib/containai.
const stateDir = tempDir('cai-bench-state-');
try {
  const dockerd = await startDockerd();
  handInstall(root, { hostBinary: binaryPath('containai-host') });
  const tool = join(root, 'current', 'tools', 'containai-host');
  // A PATH with the real docker CLI only, as on a server without podman.
  const pathDir = join(root, '.bin');
  Bun.spawnSync(['mkdir', '-p', pathDir]);
  Bun.spawnSync(['ln', '-s', requireService('docker', 'docker.io'), join(pathDir, 'docker')]);
  const env = { DOCKER_HOST: dockerd.dockerHost, PATH: pathDir, NO_COLOR: '1', HOME: root, CONTAINAI_STATE_DIR: stateDir };

  const report = await timeRuns([tool, 'check-health', '--offline', '--json', '--install-root', root], env, [0]);
  const start = await timeRuns([tool, '--version'], env, [0]);
  const r = median(report);
  const s = median(start);
  const line = (name: string, ms: number, target: number) =>
    `${name.padEnd(34)} median ${ms.toFixed(1).padStart(6)} ms  (min ${Math.min(...(name.includes('check') ? report : start)).toFixed(1)}, max ${Math.max(...(name.includes('check') ? report : start)).toFixed(1)})  target < ${target} ms  ${ms < target ? 'OK' : 'OVER'}`;
  console.log(`${RUNS} runs each, real dockerd, installed release of the host tree`);
  console.log(line('check-health --offline --json', r, TARGET_REPORT_MS));
  console.log(line('--version', s, TARGET_START_MS));
  console.log(`per check (median ms): ${[...perCheck].map(([id, xs]) => `${id} ${median(xs)}`).join(', ')}`);
} finally {
  await stopAllServices();
  rmSync(root, { recursive: true, force: true });
  rmSync(stateDir, { recursive: true, force: true });
}
