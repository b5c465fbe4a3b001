/**
 * containai-host install and install --verify-only on the bench tree (issue 12),
 * side by side in one run with:
 *   - the seed-flow baseline (bench/baseline-install.sh: tar -xzf, sha256sum -c, ln -sfn);
 *   - the floor: `tar -xzf payload.tar.gz` into a fresh folder, then `sync`;
 *   - `sha256sum -c SHA256SUMS` over the installed tree, for --verify-only;
 * and the disk an installed release takes against the payload's unpacked size.
 * Rounds alternate after a sync, so writeback hits every side alike; medians
 * are reported, with every round. Peak RSS of containai-host from /usr/bin/time.
 *
 *   bun bench/install.ts [--dir /tmp/x] [--rounds 3] [--bytes 200000000] [--files 5000]
 * Targets (issue 12): install <= 0.5x the baseline and <= 1.3x the floor;
 * verify-only <= 0.5x sha256sum -c; disk <= 1.02x; peak RSS < 200 MB.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { machine } from './machine.ts';
import { makeTree } from './make-tree.ts';

const { values } = parseArgs({
  options: {
    dir: { type: 'string' },
    rounds: { type: 'string', default: '3' },
    bytes: { type: 'string', default: '200000000' },
    files: { type: 'string', default: '5000' },
  },
});
const root = join(import.meta.dir, '..');
const work = values.dir ?? mkdtempSync(join(tmpdir(), 'cai-bench-install-'));
const rounds = Number(values.rounds);
const host = join(root, 'dist', 'containai-host');
const build = join(root, 'dist', 'containai-build');
const VERSION = 'v9.9.9';

function run(cmd: string[], options: { cwd?: string } = {}): { ms: number; rssKb: number } {
  const started = performance.now();
  const r = spawnSync('/usr/bin/time', ['-f', '%M', ...cmd], { cwd: options.cwd, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1', CONTAINAI_STATE_DIR: join(work, 'state') } });
  const ms = performance.now() - started;
  if (r.status !== 0) throw new Error(`${cmd.join(' ')} failed:\n${r.stderr}`);
  return { ms, rssKb: Number(r.stderr.trim().split('\n').at(-1)) };
}

const sync = () => spawnSync('sync');
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const duBytes = (path: string) => Number(spawnSync('du', ['-sb', '--apparent-size', path], { encoding: 'utf8' }).stdout.split('\t')[0]);
const duBlocks = (path: string) => Number(spawnSync('du', ['-sB1', path], { encoding: 'utf8' }).stdout.split('\t')[0]);

for (const bin of [host, build]) if (!existsSync(bin)) throw new Error(`${bin} is missing: run "bun scripts/build.ts" first`);
const release = join(work, 'dist', VERSION);
const bundle = join(release, `containai-${VERSION}.tar.gz`);
if (!existsSync(bundle)) {
  // The real host tree, with the synthetic files beside it.
  const hostDir = join(work, 'src', 'host');
  mkdirSync(hostDir, { recursive: true });
  cpSync(join(root, 'host'), hostDir, { recursive: true, filter: (p) => !p.endsWith('profile.env') });
  const tree = await makeTree(join(hostDir, 'bench'), { bytes: Number(values.bytes), files: Number(values.files) });
  process.stderr.write(`tree: ${tree.files} files, ${tree.bytes} bytes, plus the real host/\n`);
  run([build, 'package', '--version', VERSION, '--out', join(work, 'dist'), '--skip-sbom', '--host-dir', hostDir]);
}

const sides = { ours: [] as number[], floor: [] as number[], base: [] as number[], verify: [] as number[], sums: [] as number[] };
let peakKb = 0;
let disk = { release: 0, unpacked: 0, releaseBlocks: 0, unpackedBlocks: 0 };
// The three installs of a round run in a rotating order, each after the same rm and sync: whichever
// runs first after the previous round's trees are deleted pays for the file system's cleanup.
const installs: Array<{ side: 'ours' | 'floor' | 'base'; run: () => { ms: number; rssKb: number } }> = [
  { side: 'ours', run: () => run([host, 'install', '--version', VERSION, '--bundle', bundle, '--install-root', join(work, 'ours'), '--allow-unsigned', '--allow-nonroot', '--no-gate']) },
  { side: 'floor', run: () => run(['sh', '-c', `mkdir "$1" && tar -xzf "$2" -C "$1" && sync`, 'floor', join(work, 'floor'), join(release, 'payload.tar.gz')]) },
  { side: 'base', run: () => run(['bash', join(import.meta.dir, 'baseline-install.sh'), bundle, join(work, 'base'), VERSION]) },
];
for (let i = 0; i < rounds; i++) {
  for (const d of ['ours', 'base', 'floor']) rmSync(join(work, d), { recursive: true, force: true });
  mkdirSync(join(work, 'base'));
  sync();
  for (let k = 0; k < installs.length; k++) {
    const { side, run: install } = installs[(i + k) % installs.length] as (typeof installs)[number];
    const r = install();
    sides[side].push(r.ms);
    if (side === 'ours') peakKb = Math.max(peakKb, r.rssKb);
    sync();
  }
  const v = run([host, 'install', '--verify-only', '--install-root', join(work, 'ours'), '--allow-unsigned']);
  sides.verify.push(v.ms);
  peakKb = Math.max(peakKb, v.rssKb);
  sides.sums.push(run(['sha256sum', '-c', '--quiet', 'SHA256SUMS'], { cwd: join(work, 'ours', 'current') }).ms);
  const installed = join(work, 'ours', 'releases', VERSION);
  const unpacked = join(work, 'floor', 'payload');
  disk = { release: duBytes(installed), unpacked: duBytes(unpacked), releaseBlocks: duBlocks(installed), unpackedBlocks: duBlocks(unpacked) };
}

const fmt = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const list = (xs: number[]) => `[${xs.map(fmt).join(', ')}]`;
const ratio = (a: number[], b: number[]) => (median(a) / median(b)).toFixed(2);
console.log(`machine:               ${machine()}`);
console.log(`bundle:                ${(readFileSync(bundle).length / 1e6).toFixed(1)} MB; payload unpacks to ${(disk.unpacked / 1e6).toFixed(1)} MB`);
console.log(`install (ours):        ${fmt(median(sides.ours))} ${list(sides.ours)}`);
console.log(`floor (tar -xzf; sync):${fmt(median(sides.floor)).padStart(7)} ${list(sides.floor)}`);
console.log(`seed-flow baseline:    ${fmt(median(sides.base))} ${list(sides.base)}`);
console.log(`  install / baseline:  ${ratio(sides.ours, sides.base)}x   (target <= 0.5x)`);
console.log(`  install / floor:     ${ratio(sides.ours, sides.floor)}x   (target <= 1.3x)`);
console.log(`verify-only:           ${fmt(median(sides.verify))} ${list(sides.verify)} vs sha256sum -c ${fmt(median(sides.sums))} ${list(sides.sums)}: ${ratio(sides.verify, sides.sums)}x (target <= 0.5x)`);
console.log(`disk per release:      ${(disk.release / disk.unpacked).toFixed(4)}x the unpacked payload (bytes; ${(disk.releaseBlocks / disk.unpackedBlocks).toFixed(4)}x in blocks)   (target <= 1.02x)`);
console.log(`peak RSS:              ${(peakKb / 1024).toFixed(0)} MB (target < 200 MB)`);
if (!values.dir) rmSync(work, { recursive: true, force: true });
