/**
 * A host for the gate's end-to-end tests: an install root, a signing key the
 * host pins (--key), an empty trust folder and operator probe folder of its
 * own, and releases crafted byte by byte (test/helpers/craft.ts) whose host
 * tree carries host/health.d/*.json. Everything runs through the compiled
 * binary, as an operator runs it.
 *
 * The exec probe script of a release, host/bin/probe.sh, exits with the number
 * in <root>/.control/exit (found from $CONTAINAI_RELEASE_DIR, so a copy of the
 * whole root keeps working): a test flips it without touching the release.
 * host/bin/flaky.sh fails on its first run only (a count in .control/).
 */
import { chmodSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { baseEnv, host, type RunResult, tempDir } from './cli.ts';
import { craftRelease, type CraftSpec, SMALL_TREE } from './craft.ts';
import { makeKeyPair, type TestKeyPair, writeKeyPair } from './signing.ts';

export const PROBE_SCRIPT = '#!/bin/sh\nread code < "$CONTAINAI_RELEASE_DIR/../../.control/exit"\n[ "$code" = 0 ] || echo "probe says no ($code)" >&2\nexit "$code"\n';
export const FLAKY_SCRIPT =
  '#!/bin/sh\nf="$CONTAINAI_RELEASE_DIR/../../.control/flaky"\nn=$(cat "$f" 2>/dev/null || echo 0)\necho $((n + 1)) > "$f"\n[ "$n" -ge 1 ] && exit 0\necho "not ready yet (run $((n + 1)))" >&2\nexit 1\n';

export const probeFile = (fields: Record<string, unknown>) => `${JSON.stringify(fields)}\n`;
export const EXEC_PROBE = (grace = '1s') => probeFile({ name: 'probe script', kind: 'exec', argv: ['host/bin/probe.sh'], timeout: '1s', grace });

export interface GateHost {
  /** The temp folder holding everything below (removed by the test). */
  dir: string;
  root: string;
  key: TestKeyPair;
  pub: string;
  trustDir: string;
  operatorDir: string;
  dist: string;
  /** Extra environment for every run (DOCKER_HOST). */
  env: Record<string, string>;
}

export function makeGateHost(env: Record<string, string> = {}): GateHost {
  const dir = tempDir('cai-gate-host-');
  chmodSync(dir, 0o755);
  const root = join(dir, 'root');
  mkdirSync(join(root, '.control'), { recursive: true, mode: 0o755 });
  writeFileSync(join(root, '.control', 'exit'), '0\n');
  const key = makeKeyPair();
  const { pub } = writeKeyPair(dir, 'release', key);
  for (const d of ['trust', 'health.d', 'dist']) mkdirSync(join(dir, d), { mode: 0o755 });
  return { dir, root, key, pub, trustDir: join(dir, 'trust'), operatorDir: join(dir, 'health.d'), dist: join(dir, 'dist'), env };
}

/** A copy of a host's install root (and its .control), for a test that needs the same starting point many times. */
export function copyRoot(h: GateHost, to: string): GateHost {
  cpSync(h.root, to, { recursive: true, verbatimSymlinks: true });
  return { ...h, root: to };
}

export interface GateReleaseOptions {
  /** host/health.d/<name> → text. */
  probes?: Record<string, string>;
  /** host/profile.env (default: SMALL_TREE's dev profile). */
  profile?: string;
  /** More files of the tree. */
  files?: CraftSpec;
}

/** Crafts and signs containai-<version>.tar.gz in h.dist; returns its path. */
export function gateRelease(h: GateHost, version: string, options: GateReleaseOptions = {}): string {
  const tree: CraftSpec = {
    ...SMALL_TREE,
    ...(options.profile ? { 'host/profile.env': options.profile } : {}),
    'host/bin/probe.sh': { content: PROBE_SCRIPT, mode: 0o755 },
    'host/bin/flaky.sh': { content: FLAKY_SCRIPT, mode: 0o755 },
    ...Object.fromEntries(Object.entries(options.probes ?? {}).map(([name, text]) => [`host/health.d/${name}`, text])),
    ...options.files,
  };
  const crafted = craftRelease(h.dist, { version, tree, key: h.key });
  chmodSync(crafted.bundle, 0o644);
  return crafted.bundle;
}

/** The flags every command of these tests shares. */
export const common = (h: GateHost) => ['--key', h.pub, '--trust-dir', h.trustDir, '--install-root', h.root];

export function installArgs(h: GateHost, version: string, extra: string[] = []): string[] {
  return ['install', '--version', version, '--bundle', join(h.dist, `containai-${version}.tar.gz`), ...common(h), '--probe-dir', h.operatorDir, '--allow-nonroot', ...extra];
}

export const install = (h: GateHost, version: string, extra: string[] = [], binary?: string): Promise<RunResult> =>
  binary ? runAt(binary, installArgs(h, version, extra), h.env) : host(installArgs(h, version, extra), { env: h.env });

export const checkHealthArgs = (h: GateHost, extra: string[] = []) => ['check-health', '--offline', ...common(h), ...extra];

export const checkHealth = (h: GateHost, extra: string[] = [], binary?: string): Promise<RunResult> =>
  binary ? runAt(binary, checkHealthArgs(h, extra), h.env) : host(checkHealthArgs(h, extra), { env: h.env });

/** Runs another build of containai-host (a test build) the way cli.ts runs dist/'s. */
export async function runAt(binary: string, args: string[], env: Record<string, string>): Promise<RunResult> {
  const proc = Bun.spawn([binary, ...args], { env: { ...baseEnv(), ...env }, stdin: 'ignore', stdout: 'pipe', stderr: 'pipe' });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, stdout, stderr };
}

export function setProbeExit(h: GateHost, code: number): void {
  writeFileSync(join(h.root, '.control', 'exit'), `${code}\n`);
}

/** Where current points (the folder under releases/), or undefined. */
export function currentOf(h: GateHost): string | undefined {
  try {
    return readlinkSync(join(h.root, 'current')).replace(/^releases\//, '');
  } catch {
    return undefined;
  }
}

export function stateFile(h: GateHost, name: string): string | undefined {
  const path = join(h.root, 'state', name);
  return existsSync(path) ? readFileSync(path, 'utf8') : undefined;
}

export function gateJson(h: GateHost): any {
  const text = stateFile(h, 'gate.json');
  return text === undefined ? undefined : JSON.parse(text);
}

export function badVersions(h: GateHost): string[] {
  const text = stateFile(h, 'bad.json');
  return text === undefined ? [] : (JSON.parse(text).versions as Array<{ version: string }>).map((v) => v.version);
}

export function gateEventsOf(h: GateHost): Array<Record<string, any>> {
  const text = stateFile(h, 'events.jsonl') ?? '';
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, any>)
    .filter((e) => e.action === 'gate');
}

/** Everything under state/ and the links, to compare before and after a refusal. */
export function snapshot(h: GateHost): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = { current: currentOf(h), previous: existsSync(join(h.root, 'previous')) ? readlinkSync(join(h.root, 'previous')) : undefined };
  for (const name of ['gate.json', 'bad.json', 'floor.json']) out[name] = stateFile(h, name);
  out.releases = existsSync(join(h.root, 'releases')) ? readdirSync(join(h.root, 'releases')).sort().join(',') : undefined;
  return out;
}
