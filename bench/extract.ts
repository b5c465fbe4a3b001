/**
 * extractTarGz against `tar -xzf` on the same payload: bench/make-tree.ts's
 * 200 MB / 5,000-file tree packed by the real payload writer under "payload/".
 * Rounds alternate (ours, tar) after a sync, so page-cache writeback and other
 * load hit both alike; min and median wall times are printed.
 *
 *   bun bench/extract.ts [--dir /tmp/x] [--rounds 5] [--bytes 200000000] [--files 5000]
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { extractTarGz } from '../lib/archive/extract.ts';
import { writeTarGz, type ArchiveEntry } from '../lib/archive/write.ts';
import { makeTree } from './make-tree.ts';

const { values } = parseArgs({
  options: {
    dir: { type: 'string' },
    rounds: { type: 'string', default: '5' },
    bytes: { type: 'string', default: '200000000' },
    files: { type: 'string', default: '5000' },
  },
});
const work = values.dir ?? mkdtempSync(join(tmpdir(), 'cai-bench-extract-'));
const rounds = Number(values.rounds);

function listEntries(root: string, rel = 'payload'): ArchiveEntry[] {
  const abs = join(root, rel);
  const entries: ArchiveEntry[] = [{ path: rel, type: 'directory', mode: 0o755 }];
  for (const name of readdirSync(abs)) {
    const st = statSync(join(abs, name));
    if (st.isDirectory()) entries.push(...listEntries(root, `${rel}/${name}`));
    else entries.push({ path: `${rel}/${name}`, type: 'file', source: join(abs, name), mode: st.mode & 0o777 });
  }
  return entries;
}

const treeRoot = join(work, 'tree');
rmSync(treeRoot, { recursive: true, force: true });
mkdirSync(treeRoot, { recursive: true });
const summary = await makeTree(join(treeRoot, 'payload'), { bytes: Number(values.bytes), files: Number(values.files) });
const archive = join(work, 'payload.tar.gz');
await writeTarGz(listEntries(treeRoot), archive, { mtime: 315_532_800 });
console.error(`tree: ${summary.files} files, ${summary.bytes} bytes; archive ${statSync(archive).size} bytes`);

const ours: number[] = [];
const tar: number[] = [];
const oursCpu: number[] = [];
const tarCpu: number[] = [];
const ourDest = join(work, 'ours');
const tarDest = join(work, 'tar');
for (let i = 0; i < rounds; i++) {
  rmSync(ourDest, { recursive: true, force: true });
  spawnSync('sync');
  let t = performance.now();
  const cpu = process.cpuUsage();
  await extractTarGz(archive, ourDest, { topFolder: 'payload' });
  ours.push(performance.now() - t);
  const used = process.cpuUsage(cpu);
  oursCpu.push((used.user + used.system) / 1000);
  rmSync(ourDest, { recursive: true, force: true });

  rmSync(tarDest, { recursive: true, force: true });
  mkdirSync(tarDest);
  spawnSync('sync');
  t = performance.now();
  // /usr/bin/time reports tar's CPU including its gzip child.
  const proc = spawnSync('/usr/bin/time', ['-f', '%U %S', 'tar', '-xzf', archive, '-C', tarDest], { encoding: 'utf8' });
  tar.push(performance.now() - t);
  if (proc.status !== 0) throw new Error(`tar failed: ${proc.stderr}`);
  const [user, sys] = proc.stderr.trim().split('\n').pop()?.split(' ').map(Number) ?? [0, 0];
  tarCpu.push(((user ?? 0) + (sys ?? 0)) * 1000);
  rmSync(tarDest, { recursive: true, force: true });
}

const stat = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return { min: Math.round(s[0] as number), median: Math.round(s[Math.floor(s.length / 2)] as number) };
};
const a = stat(ours);
const b = stat(tar);
const ac = stat(oursCpu);
const bc = stat(tarCpu);
console.log(`extractTarGz  wall min ${a.min} ms  median ${a.median} ms   cpu median ${ac.median} ms (extracting, hashing every file)`);
console.log(`tar -xzf      wall min ${b.min} ms  median ${b.median} ms   cpu median ${bc.median} ms (tar + gzip)`);
console.log(`ratio (median) ${(a.median / b.median).toFixed(2)}`);
if (!values.dir) rmSync(work, { recursive: true, force: true });
