/**
 * Issue 15's trust budgets:
 *  - `containai-host trust status --json` (the compiled binary, a trust dir of two
 *    pinned roots and two keys, a kept TUF update): median of 20 runs < 50 ms; the
 *    baseline is the process start (`containai-host --version`), the floor nothing can beat.
 *  - check-health's trust check in-process (what it adds to a report): the first run
 *    (cold: modules already loaded, files not yet read) and the median of 200, < 5 ms.
 *
 *   bun scripts/build.ts && bun bench/trust.ts
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { createHealthContext } from '../lib/health/context.ts';
import { runCheck } from '../lib/health/runner.ts';
import { trustCheck } from '../lib/health/trust.ts';
import { sha256Bytes } from '../lib/digest.ts';
import { binaryPath, tempDir } from '../test/helpers/cli.ts';
import { makeKeyPair, makeTestCA } from '../test/helpers/signing.ts';

const RUNS = 20;
const TARGET_STATUS_MS = 50;
const TARGET_CHECK_MS = 5;

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
};

function cpuFlags(): string {
  const info = readFileSync('/proc/cpuinfo', 'utf8');
  const flags = /^(flags|Features)\s*:(.*)$/m.exec(info)?.[2]?.split(/\s+/) ?? [];
  const sha = flags.filter((f) => /^(sha_ni|sha1|sha2|sha256|sha512)$/.test(f));
  return sha.length ? sha.join(' ') : 'none';
}

async function timeRuns(argv: string[], env: Record<string, string>): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < RUNS + 1; i++) {
    const started = performance.now();
    const proc = Bun.spawn(argv, { env, stdout: 'pipe', stderr: 'pipe' });
    const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    const ms = performance.now() - started;
    if (code !== 0) throw new Error(`${argv.join(' ')} exited ${code}:\n${out}${err}`);
    if (i > 0) times.push(ms); // the first run warms the page cache
  }
  return times;
}

const work = tempDir('cai-bench-trust-');
try {
  const trust = join(work, 'trust');
  mkdirSync(trust, { mode: 0o755 });
  for (const name of ['corp-2026.json', 'corp-2027.json']) writeFileSync(join(trust, name), JSON.stringify(makeTestCA().trustedRoot), { mode: 0o644 });
  for (const name of ['release-old.pub', 'release-new.pub']) writeFileSync(join(trust, name), makeKeyPair().publicPem, { mode: 0o644 });
  // A kept TUF update, so status reads and judges both public-good roots.
  const state = join(work, 'state');
  mkdirSync(join(state, 'trust'), { recursive: true, mode: 0o755 });
  const trustedRoot = JSON.stringify(makeTestCA().trustedRoot);
  const summary = { version: 999, expires: new Date(Date.now() + 200 * 86_400_000).toISOString() };
  writeFileSync(
    join(state, 'trust', 'public-good.json'),
    JSON.stringify({ format: 1, mirror: 'https://tuf-repo-cdn.sigstore.dev', startedFrom: 'compiled-in', verifiedAt: new Date().toISOString(), root: summary, timestamp: summary, snapshot: summary, targets: summary, trustedRootSha256: sha256Bytes(trustedRoot), metadata: { root: '{}', timestamp: '{}', snapshot: '{}', targets: '{}' }, trustedRoot }),
    { mode: 0o644 },
  );
  const env = { PATH: '/usr/bin:/bin', NO_COLOR: '1', HOME: work, CONTAINAI_STATE_DIR: state };
  const bin = binaryPath('containai-host');

  const status = await timeRuns([bin, 'trust', 'status', '--json', '--trust-dir', trust], env);
  const start = await timeRuns([bin, '--version'], env);

  const ctx = createHealthContext({ installRoot: join(work, 'root'), offline: true, env, trustDir: trust });
  const checkTimes: number[] = [];
  for (let i = 0; i < 201; i++) {
    const started = performance.now();
    const result = await runCheck(trustCheck, ctx);
    checkTimes.push(performance.now() - started);
    if (i === 0 && result.status === 'fail') throw new Error(`the trust check failed: ${result.message}`);
  }
  const cold = checkTimes.shift() as number;

  const s = median(status);
  const v = median(start);
  const c = median(checkTimes);
  console.log(`${availableParallelism()} cores; SHA extensions: ${cpuFlags()}`);
  console.log(`trust status --json     median ${s.toFixed(1)} ms (min ${Math.min(...status).toFixed(1)}, max ${Math.max(...status).toFixed(1)})  target < ${TARGET_STATUS_MS} ms  ${s < TARGET_STATUS_MS ? 'OK' : 'OVER'}`);
  console.log(`  baseline --version    median ${v.toFixed(1)} ms (process start, the floor): status is ${(s / v).toFixed(2)}× it, ${(s - v).toFixed(1)} ms of work`);
  console.log(`trust check (in-process) first ${cold.toFixed(2)} ms, median ${c.toFixed(3)} ms of 200  target < ${TARGET_CHECK_MS} ms  ${Math.max(cold, c) < TARGET_CHECK_MS ? 'OK' : 'OVER'}`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
