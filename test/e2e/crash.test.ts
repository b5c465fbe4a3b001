/**
 * kill -9 at random moments: an install killed anywhere leaves current on a
 * complete, verified release, and the next install succeeds (cleaning what the
 * killed one staged). The loop runs until 50 kills have interrupted an install.
 * The kill delays come from a seeded PRNG, as fractions of how long an install
 * takes on this machine, so a failure can be replayed: CRASH_SEED=<n>.
 */
import { afterAll, expect, test } from 'bun:test';
import { randomBytes } from 'node:crypto';
import { readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { baseEnv, binaryPath, removeDir, tempDir } from '../helpers/cli.ts';
import { expectIntact, makeTestBundle } from '../helpers/release-server.ts';

const RUNS = 50;
const MAX_RUNS = 200;
const SEED = Number(process.env.CRASH_SEED ?? 20261127);
const work = tempDir('cai-crash-');
afterAll(() => removeDir(work));

/** mulberry32: small, seedable, good enough to spread kill moments. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const VERSIONS = ['v1.0.0', 'v1.1.0'];
const assets = join(work, 'assets');
const root = join(work, 'opt');
// Enough files that extraction and hashing take a while, so kills land in every step.
const files: Record<string, Uint8Array> = {};
for (let i = 0; i < 60; i++) files[`host/data/f${i}.bin`] = randomBytes(16 * 1024);
for (const v of VERSIONS) makeTestBundle(assets, v, { files });

function spawnInstall(version: string) {
  return Bun.spawn(
    [binaryPath('containai-host'), 'install', '--version', version, '--asset-dir', assets, '--install-root', root,
      '--allow-unsigned', '--allow-nonroot', '--allow-downgrade', '--force'],
    { env: baseEnv(), stdout: 'ignore', stderr: 'pipe' },
  );
}

function currentVersion(): string {
  return JSON.parse(readFileSync(join(root, readlinkSync(join(root, 'current')), 'install.json'), 'utf8')).version;
}

test(`${RUNS} installs killed with SIGKILL at random moments leave current complete and verified`, async () => {
  // Kill moments are spread over how long an install takes now: the median of the uninterrupted
  // installs so far, so a machine that speeds up or slows down mid-test still gets kills mid-install.
  const durations: number[] = [await timedInstall('v1.0.0')];
  const random = prng(SEED);
  let killedMidway = 0;
  let run = 0;
  // At least RUNS kills that interrupted an install; a kill that lands after the install ended
  // does not count, and MAX_RUNS bounds the loop so a machine where no kill lands still fails.
  for (; killedMidway < RUNS && run < MAX_RUNS; run++) {
    const version = VERSIONS[run % 2] as string;
    const victim = spawnInstall(version);
    const delay = random() * median(durations);
    // Subprocess.kill, not process.kill(pid): a no-op once the child has exited, never another process.
    const timer = setTimeout(() => victim.kill('SIGKILL'), delay);
    const code = await victim.exited;
    clearTimeout(timer);
    if (victim.signalCode === 'SIGKILL') killedMidway++;
    else expect(code, `run ${run} (seed ${SEED}) ended without the kill: ${await new Response(victim.stderr).text()}`).toBe(0);
    // Whatever moment it died at, current is a complete release that matches its SHA256SUMS.
    const live = currentVersion();
    expect(VERSIONS).toContain(live);
    expectLiveIntact(live);
    // And the next install succeeds, cleaning up what the killed one staged.
    const nextVersion = VERSIONS[(run + 1) % 2] as string;
    durations.push(await timedInstall(nextVersion, `after run ${run} (seed ${SEED}, delay ${delay.toFixed(0)} ms)`));
    expectIntact(root, nextVersion);
  }
  expect(killedMidway, `only ${killedMidway} of ${run} kills interrupted an install (seed ${SEED})`).toBe(RUNS);
}, 300_000);

/** Runs one install to the end and returns how long it took; it must succeed. */
async function timedInstall(version: string, context = 'first install'): Promise<number> {
  const started = performance.now();
  const child = spawnInstall(version);
  const stderr = await new Response(child.stderr).text();
  expect(await child.exited, `${context}: ${stderr}`).toBe(0);
  return performance.now() - started;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

/** Like expectIntact, but leftovers of the killed run are allowed until the next run cleans them. */
function expectLiveIntact(version: string): void {
  const dir = join(root, readlinkSync(join(root, 'current')));
  for (const line of readFileSync(join(dir, 'SHA256SUMS'), 'utf8').trim().split('\n')) {
    const [hash, path] = line.split(/ {2}/) as [string, string];
    expect(new Bun.CryptoHasher('sha256').update(readFileSync(join(dir, path))).digest('hex'), `${version}: ${path}`).toBe(hash);
  }
  expect(JSON.parse(readFileSync(join(dir, 'install.json'), 'utf8')).version).toBe(version);
}
