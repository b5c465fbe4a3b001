/**
 * Loading a release's probes: its own, host/health.d/*.json (signed with the
 * release: each file must be listed in its SHA256SUMS with the same bytes),
 * and the operator's, /etc/containai/health.d/*.json (pinned like the trust
 * folder: when running as root, the folder and every file must be root's and
 * writable by no one else, and no file may be a link). Every problem of every
 * file is collected and refused at once, each naming its file and field, as
 * sigstore-js's assertBundle does: an install shows them before it activates
 * anything.
 */
import { lstat, readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { SUMS_FILE } from '../bundle/layout.ts';
import { parseSumsMap, sha256Bytes } from '../digest.ts';
import { ContainaiError, isContainaiError } from '../errors.ts';
import { printableName } from '../text.ts';
import { probeKind, PROBE_KINDS } from './probes/index.ts';
import { formatSpan, parseSpanMs } from './span.ts';
import type { FieldProblem, FileProbe, ProbeCommon } from './types.ts';

/** The release's probes, relative to the release folder. */
export const RELEASE_PROBE_DIR = 'host/health.d';
/** The operator's probes; `--probe-dir` moves it. */
export const DEFAULT_OPERATOR_PROBE_DIR = '/etc/containai/health.d';
export const DEFAULT_PROBE_TIMEOUT_MS = 10_000;
export const DEFAULT_PROBE_GRACE_MS = 30_000;
const MAX_FILES = 64;
const MAX_FILE_BYTES = 64 * 1024;

interface ProbeFile {
  /** As refusals name it: host/health.d/x.json, or the operator file's absolute path. */
  shown: string;
  bytes: Uint8Array;
}

interface Collected {
  files: ProbeFile[];
  problems: string[];
  /** A problem of ownership or mode: the refusal is PERMISSION, as the trust folder's is. */
  permission: boolean;
}

const isJsonName = (name: string) => name.endsWith('.json') && !name.startsWith('.');

async function jsonNames(dir: string, shown: string, out: Collected): Promise<string[]> {
  const names = (await readdir(dir)).filter(isJsonName).sort();
  if (names.length > MAX_FILES) {
    out.problems.push(`${shown}: ${names.length} probe files (at most ${MAX_FILES})`);
    return [];
  }
  return names;
}

async function releaseFiles(releaseDir: string, out: Collected): Promise<void> {
  const dir = join(releaseDir, RELEASE_PROBE_DIR);
  const info = await lstat(dir).catch(() => undefined);
  if (!info) return;
  if (!info.isDirectory()) {
    out.problems.push(`${RELEASE_PROBE_DIR}: ${info.isSymbolicLink() ? 'is a symlink' : 'is not a folder'}`);
    return;
  }
  const names = await jsonNames(dir, RELEASE_PROBE_DIR, out);
  if (names.length === 0) return;
  let sums: Map<string, string> | undefined;
  try {
    sums = parseSumsMap(await readFile(join(releaseDir, SUMS_FILE), 'utf8'));
  } catch (err) {
    out.problems.push(`${SUMS_FILE}: ${isContainaiError(err) ? err.message : 'missing or unreadable'} (the probes are checked against it)`);
    return;
  }
  for (const name of names) {
    const rel = `${RELEASE_PROBE_DIR}/${name}`;
    const shown = printableName(rel);
    const file = await lstat(join(dir, name));
    if (!file.isFile()) {
      out.problems.push(`${shown}: ${file.isSymbolicLink() ? 'is a symlink' : 'is not a regular file'}`);
      continue;
    }
    if (file.size > MAX_FILE_BYTES) {
      out.problems.push(`${shown}: ${file.size} bytes (at most ${MAX_FILE_BYTES})`);
      continue;
    }
    const bytes = await readFile(join(dir, name));
    const listed = sums.get(rel);
    if (!listed) out.problems.push(`${shown}: not listed in the release's ${SUMS_FILE} (a release's probes are signed with it)`);
    else if (listed !== sha256Bytes(bytes)) out.problems.push(`${shown}: does not match the release's ${SUMS_FILE} (changed after install)`);
    else out.files.push({ shown, bytes });
  }
}

function unpinned(path: string, info: { uid: number; mode: number }): string | undefined {
  if (info.uid !== 0) return `${path}: owned by uid ${info.uid}, not root (chown root:root ${path})`;
  if ((info.mode & 0o022) !== 0) return `${path}: writable by group or others (chmod go-w ${path})`;
  return undefined;
}

async function operatorFiles(operatorDir: string, out: Collected): Promise<void> {
  const info = await stat(operatorDir).catch(() => undefined);
  if (!info) return;
  const asRoot = process.getuid?.() === 0;
  const shownDir = printableName(operatorDir);
  if (!info.isDirectory()) {
    out.problems.push(`${shownDir}: is not a folder`);
    return;
  }
  const dirProblem = asRoot ? unpinned(shownDir, info) : undefined;
  if (dirProblem) {
    out.problems.push(`${dirProblem}; refusing to run probes from it`);
    out.permission = true;
    return;
  }
  for (const name of await jsonNames(operatorDir, shownDir, out)) {
    const path = join(operatorDir, name);
    const shown = printableName(path);
    const file = await lstat(path);
    if (!file.isFile()) {
      out.problems.push(`${shown}: ${file.isSymbolicLink() ? 'is a symlink' : 'is not a regular file'}`);
      continue;
    }
    const problem = asRoot ? unpinned(shown, file) : undefined;
    if (problem) {
      out.problems.push(problem);
      out.permission = true;
      continue;
    }
    if (file.size > MAX_FILE_BYTES) {
      out.problems.push(`${shown}: ${file.size} bytes (at most ${MAX_FILE_BYTES})`);
      continue;
    }
    out.files.push({ shown, bytes: await readFile(path) });
  }
}

const KIND_NAMES = PROBE_KINDS.map((k) => k.kind).join(', ');

function fieldOf(path: readonly PropertyKey[]): string {
  return path.reduce<string>((s, p) => (typeof p === 'number' ? `${s}[${p}]` : s ? `${s}.${String(p)}` : String(p)), '') || '(the object)';
}

/** One file into a probe, or every problem with it. */
export async function parseProbeFile(bytes: Uint8Array, releaseDir: string, gateMs: number, file: string): Promise<FileProbe | FieldProblem[]> {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    // The parser's message quotes the text: never echoed.
    return [{ field: '(file)', message: 'is not valid JSON (one object, UTF-8)' }];
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return [{ field: '(file)', message: 'must hold one JSON object' }];
  const fields = json as Record<string, unknown>;
  if (fields.kind === undefined) return [{ field: 'kind', message: `is missing (one of ${KIND_NAMES})` }];
  const kind = typeof fields.kind === 'string' ? probeKind(fields.kind) : undefined;
  if (!kind) {
    const said = typeof fields.kind === 'string' ? `"${printableName(fields.kind.slice(0, 40))}"` : `a ${typeof fields.kind}`;
    return [{ field: 'kind', message: `unknown kind ${said} (one of ${KIND_NAMES})` }];
  }
  const parsed = kind.schema.safeParse(fields);
  if (!parsed.success) {
    return parsed.error.issues.flatMap((issue): FieldProblem[] =>
      issue.code === 'unrecognized_keys'
        ? issue.keys.map((key) => ({
            field: printableName(key.slice(0, 40)),
            message: `unknown field for kind ${kind.kind} (it takes ${Object.keys(kind.schema.shape).join(', ')})`,
          }))
        : [{ field: fieldOf(issue.path), message: issue.message }],
    );
  }
  const valid = parsed.data as Record<string, unknown> & { name: string; timeout?: string; grace?: string };
  const timeoutMs = valid.timeout ? (parseSpanMs(valid.timeout) as number) : Math.min(DEFAULT_PROBE_TIMEOUT_MS, gateMs);
  if (timeoutMs > gateMs) return [{ field: 'timeout', message: `${valid.timeout} is longer than the gate (${formatSpan(gateMs)})` }];
  const graceMs = Math.min(valid.grace ? (parseSpanMs(valid.grace) as number) : DEFAULT_PROBE_GRACE_MS, gateMs);
  const common: ProbeCommon = { name: valid.name, source: file, timeoutMs, graceMs };
  return kind.prepare(valid, common, { releaseDir, file });
}

/**
 * The release's and the operator's probes, validated; throws one ContainaiError
 * naming every bad file and field. gateMs is the trial's length: no timeout may
 * be longer, and no grace counts beyond it.
 */
export async function loadProbes(releaseDir: string, operatorDir: string | undefined, gateMs: number): Promise<FileProbe[]> {
  const collected: Collected = { files: [], problems: [], permission: false };
  await releaseFiles(releaseDir, collected);
  if (operatorDir) await operatorFiles(operatorDir, collected);
  const probes: FileProbe[] = [];
  const names = new Map<string, string>();
  for (const file of collected.files) {
    const probe = await parseProbeFile(file.bytes, releaseDir, gateMs, file.shown);
    if (Array.isArray(probe)) {
      for (const p of probe) collected.problems.push(`${file.shown}: ${p.field}: ${p.message}`);
      continue;
    }
    const other = names.get(probe.name);
    if (other) {
      collected.problems.push(`${file.shown}: name: "${printableName(probe.name)}" is also the name of the probe in ${other}`);
      continue;
    }
    names.set(probe.name, file.shown);
    probes.push(probe);
  }
  if (collected.problems.length > 0) {
    const n = collected.problems.length;
    throw new ContainaiError(collected.permission ? 'PERMISSION' : 'INPUT', `refusing the health probes (${n} problem${n === 1 ? '' : 's'}): ${collected.problems.join('; ')}`, {
      hint: collected.permission
        ? 'the operator probe folder must be root-owned and writable by no one else, like the trust folder'
        : 'fix the probe files (SPEC "The health gate" gives the format)',
      details: { problems: collected.problems },
    });
  }
  return probes;
}
