/**
 * Start-up of every command of both binaries (issue 12: <= 30 ms each), as
 * whole processes: `--version`, each command's `--help` (the command's own
 * module loaded, nothing run), and `verify` of the real GitHub attestation in
 * ../shared/fixtures (issue 12: <= 50 ms as a whole process, the Sigstore
 * verifier loaded and run). Median and minimum of N runs each.
 *
 *   bun bench/startup.ts [--runs 15]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { machine } from './machine.ts';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '15' } } });
const runs = Number(values.runs);
const root = join(import.meta.dir, '..');
const dist = join(root, 'dist');
const fixtures = join(root, '..', 'shared', 'fixtures', 'sigstore');
const emptyTrust = mkdtempSync(join(tmpdir(), 'cai-bench-trust-'));

function commands(binary: string): string[][] {
  const help = spawnSync(join(dist, binary), ['--help'], { encoding: 'utf8' }).stdout;
  const names = [...help.matchAll(/^\s{2,}`?([a-z][a-z-]*)`?\s{2,}/gm)].map((m) => m[1] as string);
  return [['--version'], ...[...new Set(names)].map((n) => [n, '--help'])];
}

function time(cmd: string[]): { median: number; min: number } {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    spawnSync(cmd[0] as string, cmd.slice(1), { stdio: 'ignore', env: { ...process.env, NO_COLOR: '1' } });
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  return { median: times[Math.floor(times.length / 2)] as number, min: times[0] as number };
}

console.log(`machine: ${machine()}; ${runs} runs each (median / min)`);
let worst = 0;
for (const binary of ['containai-host', 'containai-build']) {
  for (const args of commands(binary)) {
    const t = time([join(dist, binary), ...args]);
    worst = Math.max(worst, t.median);
    console.log(`${`${binary} ${args.join(' ')}`.padEnd(44)} ${t.median.toFixed(0).padStart(4)} ms / ${t.min.toFixed(0)} ms`);
  }
}
console.log(`slowest start-up (median): ${worst.toFixed(0)} ms (target <= 30 ms)`);
const verify = time([
  join(dist, 'containai-host'), 'verify',
  '--artifact', join(fixtures, 'custom-issuer-artifact'),
  '--attestation', join(fixtures, 'custom-issuer.sigstore.json'),
  '--repo', 'too-legit/attest',
  '--cert-oidc-issuer', 'https://token.actions.githubusercontent.com/hammer-time',
  '--trust-dir', emptyTrust,
]);
console.log(`verify of the real attestation, whole process: ${verify.median.toFixed(0)} ms median, ${verify.min.toFixed(0)} ms min (target <= 50 ms)`);
