/**
 * Which public-good Sigstore trusted root this host uses, and where it came
 * from: the one compiled in (@sigstore/tuf's seeds: its TUF root.json and the
 * trusted_root.json target, embedded by `bun build`), or the newer one
 * `trust update` fetched and verified through TUF, kept under the state folder
 * as one file written atomically:
 *
 *   <state>/trust/public-good.json   chained from the compiled-in root.json
 *   <state>/trust/tuf-test-<id>.json chained from CONTAINAI_TUF_ROOT (tests only)
 *
 * Each file holds the TUF metadata the update ended with (root, timestamp,
 * snapshot, targets: the next update starts from them, so a repository that
 * serves older versions is refused), the verified trusted_root.json, and a
 * summary. Reading is synchronous and loads no TUF code: every offline
 * verification and every check-health asks.
 *
 * "Newest" (SPEC "trust update ... from then on, offline verification uses the
 * newest verified root"): the kept root when its TUF root version is above the
 * compiled-in one, or the same and it was verified after this binary was
 * built; else the compiled-in one (an agent self-updated to a newer build
 * carries a newer seed than an old update).
 *
 * CONTAINAI_TUF_URL (mirrors and tests) only moves where the bytes come from:
 * TUF checks them against the chain from the compiled-in root.json, so its
 * result is the public-good root wherever it was fetched. CONTAINAI_TUF_ROOT
 * (tests only) starts the chain from another root.json: that result is kept in
 * its own file, named by that root's digest, and used only by a run that names
 * the same root.json; a production run (no CONTAINAI_TUF_ROOT) never reads it.
 *
 * The kept file is checked by hand, not with zod: check-health's trust check
 * has 5 ms, and zod's first parse of a schema cost 2 to 8 ms here (measured:
 * reading the compiled-in root took 8.4 ms cold with a zod schema, 0.2 ms
 * without). Every field is still checked, and every problem named.
 */
import { lstatSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import seeds from '@sigstore/tuf/seeds.json' with { type: 'json' };
import { sha256Bytes } from '../digest.ts';
import { ContainaiError, describeCause } from '../errors.ts';
import { writeFileAtomic } from '../fs/atomic.ts';
import type { KeyKind } from './expiry.ts';
import { builtAt, compiledInFacts } from './tuf-compiled-in.ts' with { type: 'macro' };

export const PUBLIC_GOOD_TUF_URL = 'https://tuf-repo-cdn.sigstore.dev';
/** The TUF repository to update from: for mirrors and tests. Default: Sigstore's. */
export const TUF_URL_ENV = 'CONTAINAI_TUF_URL';
/** TESTS ONLY: a root.json to start the TUF chain from instead of the compiled-in one; needs CONTAINAI_TUF_URL. */
export const TUF_ROOT_ENV = 'CONTAINAI_TUF_ROOT';
export const STATE_DIR_ENV = 'CONTAINAI_STATE_DIR';
export const DEFAULT_STATE_DIR = '/var/lib/containai';
export const TRUSTED_ROOT_TARGET = 'trusted_root.json';

/** When this binary was built (and so the compiled-in root with it). */
export const BUILT_AT: string = builtAt();

type Env = Record<string, string | undefined>;

// ---------------------------------------------------------------------------
// The compiled-in root

export interface CompiledInRoot {
  /** The TUF root.json version the seed holds. */
  tufVersion: number;
  /** When that root.json expires (its signers vouch for it until then). */
  tufExpires: string;
  builtAt: string;
  /** The dated keys of its trusted_root.json (worked out at build time). */
  kinds: KeyKind[];
}

const COMPILED_IN: CompiledInRoot = { ...compiledInFacts(), builtAt: BUILT_AT };

export function compiledInRoot(): CompiledInRoot {
  return COMPILED_IN;
}

function seed(): { 'root.json': string; targets: Record<string, string> } {
  const entry = (seeds as Record<string, { 'root.json': string; targets: Record<string, string> }>)[PUBLIC_GOOD_TUF_URL];
  if (!entry?.['root.json'] || !entry.targets[TRUSTED_ROOT_TARGET]) throw new ContainaiError('INTERNAL', 'the compiled-in public-good trusted root is missing');
  return entry;
}

/** The compiled-in TUF root.json, where `trust update` starts the chain. */
export function compiledInRootJson(): Buffer {
  return Buffer.from(seed()['root.json'], 'base64');
}

let compiledText: string | undefined;

/** The compiled-in trusted_root.json, decoded on first use (verification needs it; status does not). */
export function compiledInTrustedRootText(): string {
  compiledText ??= Buffer.from(seed().targets[TRUSTED_ROOT_TARGET] as string, 'base64').toString('utf8');
  return compiledText;
}

/** version and expires of TUF metadata (root, timestamp, ...) from its JSON text; throws a plain Error naming what is missing. */
export function tufSummary(text: string): { version: number; expires: string } {
  const signed = (JSON.parse(text) as { signed?: { version?: unknown; expires?: unknown } } | null)?.signed;
  const version = signed?.version;
  const expires = signed?.expires;
  if (typeof version !== 'number' || !Number.isInteger(version) || version < 1) throw new Error('signed.version is not a positive integer');
  if (typeof expires !== 'string' || Number.isNaN(Date.parse(expires))) throw new Error('signed.expires is not a date');
  return { version, expires };
}

// ---------------------------------------------------------------------------
// Where, and from what

/** The state folder (CONTAINAI_STATE_DIR, default /var/lib/containai); undefined when it is not absolute. */
export function stateDir(env: Env = process.env): string | undefined {
  const dir = env[STATE_DIR_ENV] || DEFAULT_STATE_DIR;
  return isAbsolute(dir) ? dir : undefined;
}

export interface TufSettings {
  /** Base URL of the TUF repository (no trailing slash). */
  mirror: string;
  mirrorIsDefault: boolean;
  /** The root.json the chain starts from when it is not the compiled-in one (tests). */
  initialRoot?: { path: string; bytes: Buffer; sha256: string };
  /** The file the result is kept in, under <state>/trust/. */
  slotFile: string;
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|localhost|\[::1\])$/;

function tufUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ContainaiError('INPUT', `${TUF_URL_ENV} "${value}" is not a URL`, { hint: `unset it to use ${PUBLIC_GOOD_TUF_URL}` });
  }
  if (url.username || url.password || url.search || url.hash) {
    throw new ContainaiError('INPUT', `${TUF_URL_ENV} must be a plain base URL (no credentials, query or fragment)`, { hint: `unset it to use ${PUBLIC_GOOD_TUF_URL}` });
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && LOOPBACK.test(url.hostname))) {
    throw new ContainaiError('INPUT', `${TUF_URL_ENV} must be https:// (plain http only on a loopback address, for tests)`, { hint: `unset it to use ${PUBLIC_GOOD_TUF_URL}` });
  }
  return url.href.replace(/\/+$/, '');
}

/** The repository and the starting root this run uses; refuses a bad environment rather than guessing. */
export function tufSettings(env: Env = process.env): TufSettings {
  const given = env[TUF_URL_ENV];
  const mirror = given ? tufUrl(given) : PUBLIC_GOOD_TUF_URL;
  const rootPath = env[TUF_ROOT_ENV];
  if (!rootPath) return { mirror, mirrorIsDefault: mirror === PUBLIC_GOOD_TUF_URL, slotFile: 'public-good.json' };
  if (!given) {
    throw new ContainaiError('INPUT', `${TUF_ROOT_ENV} is for tests against their own TUF repository: it needs ${TUF_URL_ENV} too`, {
      hint: `unset ${TUF_ROOT_ENV}: a host starts the chain from the root.json compiled into it`,
    });
  }
  let bytes: Buffer;
  try {
    bytes = readFileSync(rootPath);
  } catch (err) {
    throw new ContainaiError('INPUT', `${TUF_ROOT_ENV}: cannot read ${rootPath}: ${describeCause(err)}`, { hint: `unset ${TUF_ROOT_ENV} (it is for tests only)` });
  }
  const sha256 = sha256Bytes(bytes);
  return { mirror, mirrorIsDefault: false, initialRoot: { path: rootPath, bytes, sha256 }, slotFile: `tuf-test-${sha256.slice(0, 16)}.json` };
}

// ---------------------------------------------------------------------------
// What an update keeps

export interface RoleSummary {
  version: number;
  expires: string;
}

export interface StoredUpdate {
  format: 1;
  /** Where the metadata was fetched from (printable: checked to carry no credentials). */
  mirror: string;
  /** "compiled-in", or the sha256 of the CONTAINAI_TUF_ROOT file the chain started from. */
  startedFrom: string;
  /** When this run verified the chain and the target. */
  verifiedAt: string;
  root: RoleSummary;
  timestamp: RoleSummary;
  snapshot: RoleSummary;
  targets: RoleSummary;
  trustedRootSha256: string;
  /** The metadata files as the repository served them (the next update starts from them). */
  metadata: { root: string; timestamp: string; snapshot: string; targets: string };
  trustedRoot: string;
}

/** Every problem of a kept file, as "field: what is wrong"; none means it has the StoredUpdate shape. */
function storedUpdateProblems(value: unknown): string[] {
  const problems: string[] = [];
  const doc = (typeof value === 'object' && value !== null ? value : {}) as Record<string, unknown>;
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  const isDate = (v: unknown) => typeof v === 'string' && !Number.isNaN(Date.parse(v));
  if (doc.format !== 1) problems.push('format: must be 1');
  for (const key of ['mirror', 'startedFrom', 'trustedRoot']) if (typeof doc[key] !== 'string') problems.push(`${key}: must be a string`);
  if (!isDate(doc.verifiedAt)) problems.push('verifiedAt: must be a date');
  if (typeof doc.trustedRootSha256 !== 'string' || !/^[0-9a-f]{64}$/.test(doc.trustedRootSha256)) problems.push('trustedRootSha256: must be a sha256');
  for (const role of ['root', 'timestamp', 'snapshot', 'targets']) {
    const summary = doc[role];
    if (!isObject(summary) || typeof summary.version !== 'number' || !Number.isInteger(summary.version) || summary.version < 1 || !isDate(summary.expires)) {
      problems.push(`${role}: must be {version, expires}`);
    }
    if (!isObject(doc.metadata) || typeof doc.metadata[role] !== 'string') problems.push(`metadata.${role}: must be a string`);
  }
  return problems;
}

/** The file an update is kept in, or undefined when there is no usable state folder. */
export function storedUpdatePath(settings: TufSettings, env: Env = process.env): string | undefined {
  const dir = stateDir(env);
  return dir ? join(dir, 'trust', settings.slotFile) : undefined;
}

/**
 * Root trusts what it reads here for every verification: a file (or folder) another user
 * could have written is refused, as in the trust dir.
 */
function ownershipProblem(path: string): string | undefined {
  if (process.getuid?.() !== 0) return undefined;
  for (const p of [join(path, '..'), path]) {
    const st = lstatSync(p);
    if (st.isSymbolicLink()) return `${p} is a symlink`;
    if (st.uid !== 0 || (st.mode & 0o022) !== 0) return `${p} is not owned by root or is writable by others`;
  }
  return undefined;
}

export interface StoredRead {
  update?: StoredUpdate;
  /** Why a file that is there is not used. */
  problem?: string;
}

/** Reads a kept update; a missing file is no update, a damaged or unsafe one is a problem (and not used). */
export function readStoredUpdate(path: string | undefined): StoredRead {
  if (!path) return {};
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    return { problem: `cannot read ${path}: ${describeCause(err)}` };
  }
  try {
    const unsafe = ownershipProblem(path);
    if (unsafe) return { problem: `${unsafe}; not used` };
  } catch (err) {
    return { problem: `cannot check ${path}: ${describeCause(err)}` };
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { problem: `${path} is not JSON; not used` };
  }
  const problems = storedUpdateProblems(json);
  if (problems.length > 0) return { problem: `${path} is damaged (${problems.slice(0, 3).join('; ')}); not used` };
  const update = json as StoredUpdate;
  if (sha256Bytes(update.trustedRoot) !== update.trustedRootSha256) return { problem: `${path}: its trusted root does not match its recorded digest; not used` };
  return { update };
}

export async function writeStoredUpdate(path: string, update: StoredUpdate): Promise<void> {
  await mkdir(join(path, '..'), { recursive: true, mode: 0o755 });
  await writeFileAtomic(path, `${JSON.stringify(update, null, 1)}\n`, 0o644);
}

// ---------------------------------------------------------------------------
// The choice

export interface PublicGoodChoice {
  inUse: 'compiled-in' | 'tuf-updated';
  compiled: CompiledInRoot;
  settings: TufSettings;
  storedPath?: string;
  stored?: StoredUpdate;
  storedProblem?: string;
  /** Why the one in use was chosen, for status. */
  reason: string;
  /** The trusted_root.json text of the one in use (the compiled-in one is decoded only when asked). */
  trustedRootText(): string;
}

/** Which public-good root verification uses now (see the module header for the rule). */
export function choosePublicGood(env: Env = process.env): PublicGoodChoice {
  const settings = tufSettings(env);
  const compiledRoot = compiledInRoot();
  const storedPath = storedUpdatePath(settings, env);
  const { update, problem } = readStoredUpdate(storedPath);
  const base = { compiled: compiledRoot, settings, storedPath, stored: update, storedProblem: problem };
  const useCompiled = (reason: string): PublicGoodChoice => ({ ...base, inUse: 'compiled-in', reason, trustedRootText: compiledInTrustedRootText });
  const useStored = (stored: StoredUpdate, reason: string): PublicGoodChoice => ({ ...base, inUse: 'tuf-updated', reason, trustedRootText: () => stored.trustedRoot });
  if (!update) return useCompiled(problem ? 'the kept TUF update is not usable' : 'no TUF update kept');
  if (settings.initialRoot) {
    if (update.startedFrom !== settings.initialRoot.sha256) return useCompiled(`the kept TUF update did not start from ${TUF_ROOT_ENV}`);
    return useStored(update, `TESTING: chained from ${TUF_ROOT_ENV}`);
  }
  if (update.startedFrom !== 'compiled-in') return useCompiled('the kept TUF update did not start from the compiled-in root');
  if (update.root.version > compiledRoot.tufVersion) return useStored(update, `TUF root v${update.root.version} is newer than the compiled-in v${compiledRoot.tufVersion}`);
  if (update.root.version === compiledRoot.tufVersion && update.verifiedAt >= compiledRoot.builtAt) {
    return useStored(update, `verified ${update.verifiedAt}, after this binary was built`);
  }
  return useCompiled(`this binary (built ${compiledRoot.builtAt}, TUF root v${compiledRoot.tufVersion}) is newer than the kept update`);
}
