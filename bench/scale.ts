/**
 * How package, install and install --verify-only grow with a release's total
 * size and with its file count (issue 12): the bench tree at 1x, 4x and 10x its
 * bytes (200 MB, 800 MB, 2 GB in 5,000 files) and at 4x and 10x its files
 * (20,000 and 50,000 files in 200 MB), and the 2 GB / 50,000-file tree whose
 * peak memory must stay under 200 MB. Each row: wall time and peak RSS of each
 * command, and the time as a multiple of the 1x row's. Linear growth shows as
 * time multiples near the size multiples; memory should not grow at all.
 *
 *   bun bench/scale.ts [--dir /tmp/x] [--only 1x,10x-files,...]
 * Needs about 8 GB of free disk for the largest row.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { machine } from './machine.ts';
import { makeTree } from './make-tree.ts';

const { values } = parseArgs({ options: { dir: { type: 'string' }, only: { type: 'string' } } });
const root = join(import.meta.dir, '..');
const host = join(root, 'dist', 'containai-host');
const build = join(root, 'dist', 'containai-build');
const work = values.dir ?? mkdtempSync(join(tmpdir(), 'cai-bench-scale-'));

const ROWS = [
  { name: '1x', bytes: 200e6, files: 5_000 },
  { name: '4x-size', bytes: 800e6, files: 5_000 },
  { name: '10x-size', bytes: 2e9, files: 5_000 },
  { name: '4x-files', bytes: 200e6, files: 20_000 },
  { name: '10x-files', bytes: 200e6, files: 50_000 },
  { name: '2GB-50k', bytes: 2e9, files: 50_000 },
].filter((r) => !values.only || values.only.split(',').includes(r.name));

function timed(cmd: string[]): { s: number; mb: number } {
  const started = performance.now();
  const r = spawnSync('/usr/bin/time', ['-f', '%M', ...cmd], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1', CONTAINAI_STATE_DIR: join(work, 'state') } });
  if (r.status !== 0) throw new Error(`${cmd.join(' ')} failed:\n${r.stderr}`);
  return { s: (performance.now() - started) / 1000, mb: Number(r.stderr.trim().split('\n').at(-1)) / 1024 };
}

console.log(`machine: ${machine()}`);
const results: Array<{ name: string; pkg: { s: number; mb: number }; inst: { s: number; mb: number }; ver: { s: number; mb: number } }> = [];
for (const row of ROWS) {
  const dir = join(work, row.name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  await makeTree(join(dir, 'src', 'host'), { bytes: row.bytes, files: row.files });
  spawnSync('sync');
  const pkg = timed([build, 'package', '--version', 'v1.0.0', '--out', join(dir, 'dist'), '--skip-sbom', '--host-dir', join(dir, 'src', 'host')]);
  rmSync(join(dir, 'src'), { recursive: true, force: true });
  spawnSync('sync');
  const inst = timed([host, 'install', '--version', 'v1.0.0', '--asset-dir', join(dir, 'dist', 'v1.0.0'), '--install-root', join(dir, 'root'), '--allow-unsigned', '--allow-nonroot', '--no-gate']);
  spawnSync('sync');
  const ver = timed([host, 'install', '--verify-only', '--install-root', join(dir, 'root'), '--allow-unsigned']);
  results.push({ name: row.name, pkg, inst, ver });
  rmSync(dir, { recursive: true, force: true });
  const base = results[0] as (typeof results)[number];
  const x = (a: number, b: number) => `${(a / b).toFixed(1)}x`;
  console.log(
    `${row.name.padEnd(10)} ${String(row.files).padStart(6)} files ${(row.bytes / 1e6).toFixed(0).padStart(5)} MB | ` +
      `package ${pkg.s.toFixed(1)} s (${x(pkg.s, base.pkg.s)}) ${pkg.mb.toFixed(0)} MB | ` +
      `install ${inst.s.toFixed(1)} s (${x(inst.s, base.inst.s)}) ${inst.mb.toFixed(0)} MB | ` +
      `verify-only ${ver.s.toFixed(1)} s (${x(ver.s, base.ver.s)}) ${ver.mb.toFixed(0)} MB`,
  );
}
const peak = Math.max(...results.flatMap((r) => [r.pkg.mb, r.inst.mb, r.ver.mb]));
console.log(`peak RSS over every row: ${peak.toFixed(0)} MB (target < 200 MB)`);
if (!values.dir) rmSync(work, { recursive: true, force: true });
