/**
 * Runs the compiled binaries in dist/ as a user would: argument arrays, a
 * clean environment, and what they print and exit with.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const REPO_ROOT = join(import.meta.dir, '..', '..');
export const DIST = join(REPO_ROOT, 'dist');
export const SHARED = join(REPO_ROOT, '..', 'shared');

export type BinaryName = 'containai-build' | 'containai-host';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  cwd?: string;
  env?: Record<string, string | undefined>;
  stdin?: string;
  /** Replace the environment entirely instead of adding to a minimal one. */
  rawEnv?: boolean;
}

export function binaryPath(name: BinaryName): string {
  const path = join(DIST, name);
  if (!existsSync(path)) throw new Error(`${path} is missing: build it first with "bun scripts/build.ts" (test/run.sh does)`);
  return path;
}

/** A minimal environment: no secrets or DOCKER_HOST leak in from the developer's shell. */
/**
 * Verification stamps (lib/release/stamp.ts) go to /var/lib/containai unless told otherwise: the
 * binaries under test keep theirs in a folder of this test run, removed at the end (preload.ts).
 */
export const TEST_STATE_DIR = join(tmpdir(), `cai-state-${process.pid}`);

export function baseEnv(): Record<string, string> {
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', NO_COLOR: '1', TMPDIR: tmpdir(), CONTAINAI_STATE_DIR: TEST_STATE_DIR };
}

export async function run(name: BinaryName, args: string[], options: RunOptions = {}): Promise<RunResult> {
  const env = options.rawEnv ? options.env : { ...baseEnv(), ...options.env };
  const proc = Bun.spawn([binaryPath(name), ...args], {
    cwd: options.cwd ?? REPO_ROOT,
    env: Object.fromEntries(Object.entries(env ?? {}).filter(([, v]) => v !== undefined)) as Record<string, string>,
    stdin: options.stdin !== undefined ? new TextEncoder().encode(options.stdin) : 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
  });
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  return { code, stdout, stderr };
}

export const build = (args: string[], options?: RunOptions) => run('containai-build', args, options);
export const host = (args: string[], options?: RunOptions) => run('containai-host', args, options);

/** A temp folder removed after the test file (call in the test body; returns the path). */
export function tempDir(prefix = 'cai-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/**
 * A temp folder outside /tmp, /var/tmp and every home: for what a systemd unit names, which its sandbox
 * (PrivateTmp=, ProtectHome=) would otherwise hide. Under /var/lib/containai-tests (the suite runs as root).
 */
export function systemTempDir(prefix = 'cai-test-'): string {
  const parent = '/var/lib/containai-tests';
  mkdirSync(parent, { recursive: true, mode: 0o755 });
  return mkdtempSync(join(parent, prefix));
}

export function removeDir(path: string): void {
  rmSync(path, { recursive: true, force: true });
}

/** Nothing printed may look like a JS stack trace or leak bundled source paths. */
export function expectNoStack(text: string): void {
  if (/\n\s+at .+\(.*:\d+:\d+\)|\/\$bunfs\//.test(text)) throw new Error(`output contains a stack trace:\n${text}`);
}
