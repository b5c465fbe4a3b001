/**
 * Issue 15: `self-update` from a local release folder takes under 2 s for a
 * 114 MB agent on 2 cores. Two agents are built by scripts/build.ts (v1.0.0
 * and v1.1.0, from a temp root); the release's containai-host.SHA256SUMS is
 * signed with a test key. Each of 5 runs starts from v1.0.0 in place. The
 * floor beside it: `cp` of the agent into the same folder plus `sha256sum`
 * of it, the copy-and-hash no self-update can skip (ours does both in one
 * pass, then fsyncs and runs the new agent once).
 *
 *   bun bench/self-update.ts
 */
import { copyFileSync, mkdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { AGENT_SUMS_FILE, AGENT_SUMS_SIG_FILE, AGENT_SUMS_SIGSTORE_FILE, agentAssetName } from '../lib/bundle/layout.ts';
import { sha256File } from '../lib/digest.ts';
import { loadSigningKey } from '../lib/trust/keys.ts';
import { signBlob } from '../lib/trust/sign.ts';
import { REPO_ROOT, tempDir } from '../test/helpers/cli.ts';
import { makeKeyPair, writeKeyPair } from '../test/helpers/signing.ts';

const RUNS = 5;
const TARGET_MS = 2_000;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

function cpuFlags(): string {
  const flags = /^(flags|Features)\s*:(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[2]?.split(/\s+/) ?? [];
  const sha = flags.filter((f) => /^(sha_ni|sha1|sha2|sha256|sha512)$/.test(f));
  return sha.length ? sha.join(' ') : 'none';
}

function buildAgent(work: string, version: string): string {
  const root = join(work, `build-${version}`);
  mkdirSync(join(root, 'scripts'), { recursive: true });
  copyFileSync(join(REPO_ROOT, 'scripts', 'build.ts'), join(root, 'scripts', 'build.ts'));
  for (const entry of ['cmd', 'lib', 'node_modules', 'package.json', 'tsconfig.json']) symlinkSync(join(REPO_ROOT, entry), join(root, entry));
  const r = Bun.spawnSync([process.execPath, join(root, 'scripts', 'build.ts'), 'containai-host'], { cwd: root, env: { ...process.env, CONTAINAI_BUILD_VERSION: version }, stderr: 'pipe' });
  if (r.exitCode !== 0) throw new Error(r.stderr.toString());
  return join(root, 'dist', 'containai-host');
}

function timed(argv: string[], env?: Record<string, string>): { ms: number; stdout: string } {
  const started = performance.now();
  const r = Bun.spawnSync(argv, { env, stdout: 'pipe', stderr: 'pipe' });
  const ms = performance.now() - started;
  if (r.exitCode !== 0) throw new Error(`${argv.join(' ')} exited ${r.exitCode}: ${r.stderr.toString()}`);
  return { ms, stdout: r.stdout.toString() };
}

const work = tempDir('cai-bench-self-update-');
try {
  const oldAgent = buildAgent(work, 'v1.0.0');
  const newAgent = buildAgent(work, 'v1.1.0');
  const keys = join(work, 'keys');
  mkdirSync(keys);
  const key = writeKeyPair(keys, 'release', makeKeyPair());
  const rel = join(work, 'v1.1.0');
  mkdirSync(rel);
  copyFileSync(newAgent, join(rel, agentAssetName('x64')));
  const sums = `${await sha256File(join(rel, agentAssetName('x64')))}  ${agentAssetName('x64')}\n`;
  writeFileSync(join(rel, AGENT_SUMS_FILE), sums);
  const signed = await signBlob(join(rel, AGENT_SUMS_FILE), await loadSigningKey(key.key));
  writeFileSync(join(rel, AGENT_SUMS_SIGSTORE_FILE), JSON.stringify(signed.bundle));
  writeFileSync(join(rel, AGENT_SUMS_SIG_FILE), signed.signatureBase64);

  const binDir = join(work, 'sbin');
  mkdirSync(binDir, { mode: 0o755 });
  const bin = join(binDir, 'containai-host');
  const env = { PATH: '/usr/bin:/bin', NO_COLOR: '1', HOME: work, CONTAINAI_STATE_DIR: join(work, 'state') };
  const times: number[] = [];
  const floors: number[] = [];
  const steps = new Map<string, number[]>();
  for (let i = 0; i < RUNS + 1; i++) {
    copyFileSync(oldAgent, `${bin}.reset`);
    Bun.spawnSync(['mv', '-f', `${bin}.reset`, bin]);
    rmSync(`${bin}.previous`, { force: true });
    const run = timed([bin, 'self-update', '--asset-dir', rel, '--key', key.pub, '--trust-dir', keys, '--json'], env);
    const floor = timed(['sh', '-c', 'cp "$1" "$2" && sha256sum "$2" >/dev/null && rm -f "$2"', 'sh', join(rel, agentAssetName('x64')), join(binDir, 'floor-copy')]);
    if (i === 0) continue; // warms the page cache
    times.push(run.ms);
    floors.push(floor.ms);
    for (const s of (JSON.parse(run.stdout) as { steps: Array<{ name: string; ms: number }> }).steps) steps.set(s.name, [...(steps.get(s.name) ?? []), s.ms]);
  }
  const t = median(times);
  const f = median(floors);
  console.log(`${availableParallelism()} cores; SHA extensions: ${cpuFlags()}; agent ${(statSync(newAgent).size / 1e6).toFixed(1)} MB`);
  console.log(`self-update --asset-dir   median ${t.toFixed(0)} ms of ${RUNS} (min ${Math.min(...times).toFixed(0)}, max ${Math.max(...times).toFixed(0)})  target < ${TARGET_MS} ms  ${t < TARGET_MS ? 'OK' : 'OVER'}`);
  console.log(`  floor cp + sha256sum    median ${f.toFixed(0)} ms: self-update is ${(t / f).toFixed(2)}× it`);
  console.log(`  steps (median ms): ${[...steps].map(([name, xs]) => `${name} ${median(xs)}`).join(', ')}`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
