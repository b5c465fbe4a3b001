/**
 * The tar code: measure, then decide (issue 12). Parses the same inflated
 * payload with node-tar's Parser and with lib/archive/tar.ts's TarParser, in
 * this process, from memory (no gunzip, no disk: the parsers alone), and
 * reports entries, body bytes and time, best of N. Also checks what names each
 * hands to its caller for a hostile name ("../x", "/abs"), since the
 * extraction policy must see names raw to refuse them.
 *
 *   bun bench/tar-parser.ts [--payload FILE] [--rounds 5]
 * Without --payload, a 200 MB / 5,000-file tree is made (bench/make-tree.ts) and packed with GNU tar.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { Parser } from 'tar';
import { readTarGz, TarParser } from '../lib/archive/tar.ts';
import { createReadStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { makeTree } from './make-tree.ts';

const { values } = parseArgs({ options: { payload: { type: 'string' }, rounds: { type: 'string', default: '5' } } });
const rounds = Number(values.rounds);
let payload = values.payload;
let work: string | undefined;
if (!payload) {
  work = mkdtempSync(join(tmpdir(), 'cai-bench-tar-'));
  await makeTree(join(work, 'payload', 'host'), { bytes: 200_000_000, files: 5000 });
  payload = join(work, 'payload.tar.gz');
  const r = spawnSync('tar', ['-czf', payload, '-C', work, 'payload']);
  if (r.status !== 0) throw new Error('tar failed');
}
const raw = gunzipSync(readFileSync(payload));
const CHUNK = 1 << 18;

function ours(): { entries: number; bytes: number } {
  let entries = 0;
  let bytes = 0;
  const parser = new TarParser({ entry() { entries++; return { write: (c) => void (bytes += c.length), end() {} }; } }, Number.MAX_SAFE_INTEGER, 'bench');
  for (let off = 0; off < raw.length; off += CHUNK) parser.feed(raw.subarray(off, off + CHUNK));
  parser.finish();
  return { entries, bytes };
}

async function nodeTar(): Promise<{ entries: number; bytes: number }> {
  let entries = 0;
  let bytes = 0;
  const parser = new Parser({ strict: true });
  parser.on('entry', (entry) => {
    entries++;
    entry.on('data', (c: Buffer) => void (bytes += c.length));
  });
  const done = new Promise<void>((resolve, reject) => {
    parser.on('end', () => resolve());
    parser.on('error', reject);
  });
  for (let off = 0; off < raw.length; off += CHUNK) parser.write(raw.subarray(off, off + CHUNK));
  parser.end();
  await done;
  return { entries, bytes };
}

async function best(run: () => unknown): Promise<{ ms: number; result: unknown }> {
  let ms = Infinity;
  let result: unknown;
  for (let i = 0; i < rounds; i++) {
    const t = performance.now();
    result = await run();
    ms = Math.min(ms, performance.now() - t);
  }
  return { ms, result };
}

/** The whole reader, from the file: gunzip and parse (ours: readTarGz; node-tar: its Parser, which inflates itself). */
async function oursFromFile(): Promise<{ entries: number; bytes: number }> {
  let entries = 0;
  let bytes = 0;
  await readTarGz(payload as string, { entry() { entries++; return { write: (c) => void (bytes += c.length), end() {} }; } }, { maxStreamBytes: Number.MAX_SAFE_INTEGER, label: 'bench' });
  return { entries, bytes };
}

async function nodeTarFromFile(): Promise<{ entries: number; bytes: number }> {
  let entries = 0;
  let bytes = 0;
  const parser = new Parser({ strict: true });
  parser.on('entry', (entry) => {
    entries++;
    entry.on('data', (c: Buffer) => void (bytes += c.length));
  });
  await pipeline(createReadStream(payload as string, { highWaterMark: 1 << 20 }), parser as unknown as NodeJS.WritableStream);
  return { entries, bytes };
}

/** The names each parser hands on for hostile entries (raw, so a policy can refuse them). */
async function namesSeen(): Promise<{ ours: string[]; nodeTar: string[] }> {
  const { buildTar } = await import('../test/helpers/archives.ts');
  const tarBytes = buildTar([{ name: '../escape', body: 'x' }, { name: '/abs/path', body: 'y' }]);
  const seenOurs: string[] = [];
  const p = new TarParser({ entry(h) { seenOurs.push(h.path); return undefined; } }, 1 << 20, 'names');
  p.feed(tarBytes);
  const seenNode: string[] = [];
  const np = new Parser({});
  np.on('entry', (e) => { seenNode.push(e.path); e.resume(); });
  await new Promise<void>((resolve) => { np.on('end', resolve); np.end(tarBytes); });
  return { ours: seenOurs, nodeTar: seenNode };
}

const sha = readFileSync('/proc/cpuinfo', 'utf8').includes(' sha_ni') ? 'with SHA extensions' : 'without SHA extensions';
console.log(`machine: ${availableParallelism()} cores, ${sha}; Bun ${Bun.version}; payload ${(raw.length / 1e6).toFixed(0)} MB inflated`);
const a = await best(ours);
const b = await best(nodeTar);
console.log(`lib/archive/tar.ts TarParser: ${a.ms.toFixed(0)} ms  ${JSON.stringify(a.result)}`);
console.log(`node-tar Parser:              ${b.ms.toFixed(0)} ms  ${JSON.stringify(b.result)}`);
console.log(`node-tar / ours:              ${(b.ms / a.ms).toFixed(2)}x  (parsers alone, from memory)`);
const c = await best(oursFromFile);
const d = await best(nodeTarFromFile);
console.log(`from the file (gunzip + parse): ours ${c.ms.toFixed(0)} ms, node-tar ${d.ms.toFixed(0)} ms: ${(d.ms / c.ms).toFixed(2)}x  (the issue's rule: use node-tar if within 1.10x)`);
console.log(`names handed on for "../escape" and "/abs/path": ours ${JSON.stringify((await namesSeen()).ours)}, node-tar ${JSON.stringify((await namesSeen()).nodeTar)}`);
if (work) rmSync(work, { recursive: true, force: true });
