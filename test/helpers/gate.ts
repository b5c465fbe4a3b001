/**
 * Install roots for the gate's tests, built with the real parts: two releases
 * installed by hand (test/helpers/installed-release.ts: payload tree,
 * SHA256SUMS, release.json, .containai/install.json), v1 current, then v2 put on trial
 * with lib/gate's startTrial and made current with lib/release/activate.ts,
 * in the order install does it.
 *
 * v2 carries an exec probe, host/health.d/probe.json, running
 * host/bin/probe.sh, which exits with the number in <root>/.control/exit (a
 * file outside the release, so a test flips it without touching the release).
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { activateRelease } from '../../lib/release/activate.ts';
import { installLayout, type InstallLayout } from '../../lib/release/layout.ts';
import { startTrial, type GateDeps } from '../../lib/gate/trial.ts';
import { readBadList } from '../../lib/gate/bad.ts';
import { readGateState } from '../../lib/gate/state.ts';
import { versionOfDir } from '../../lib/release/layout.ts';
import type { GateState } from '../../lib/gate/state.ts';
import { tempDir } from './cli.ts';
import { type HandFile, handInstall } from './installed-release.ts';

export interface GateRoot {
  root: string;
  layout: InstallLayout;
  /** The folder outside the releases that the probe script reads. */
  control: string;
  /** An operator probe folder of the test's own (empty unless a test writes into it). */
  operatorDir: string;
  setProbeExit(code: number): void;
}

export function probeScript(control: string): string {
  return `#!/bin/sh\nread code < ${control}/exit\n[ "$code" = 0 ] || echo "probe says no ($code)" >&2\nexit "$code"\n`;
}

export interface GateRootOptions {
  /** Probe files of v2, name → JSON text (default: the one exec probe). */
  probes?: Record<string, string>;
  /** More files of v2's payload. */
  files?: Record<string, HandFile>;
  grace?: string;
  profile?: string;
  /** More releases installed beside (not current), e.g. ['v3'] for a new install during a trial. */
  alsoInstall?: string[];
}

/** v1 current and verified-installable, v2 installed beside it (not yet current, not on trial). */
export async function makeGateRoot(options: GateRootOptions = {}): Promise<GateRoot> {
  const root = tempDir('cai-gate-');
  chmodSync(root, 0o755);
  const layout = installLayout(root);
  const control = join(root, '.control');
  mkdirSync(control);
  writeFileSync(join(control, 'exit'), '0\n');
  const operatorDir = join(root, '.operator-health.d');
  mkdirSync(operatorDir);
  handInstall(root, { version: 'v1', profile: options.profile });
  rmSync(join(root, 'current'));
  const probes = options.probes ?? {
    'probe.json': JSON.stringify({ name: 'probe script', kind: 'exec', argv: ['host/bin/probe.sh'], timeout: '5s', grace: options.grace ?? '2s' }),
  };
  handInstall(root, {
    version: 'v2',
    profile: options.profile,
    files: {
      'host/bin/probe.sh': { content: probeScript(control), mode: 0o755 },
      ...Object.fromEntries(Object.entries(probes).map(([name, text]) => [`host/health.d/${name}`, text])),
      ...options.files,
    },
  });
  rmSync(join(root, 'current'));
  for (const version of options.alsoInstall ?? []) {
    handInstall(root, { version, profile: options.profile });
    rmSync(join(root, 'current'));
  }
  // v1 is what was current before: activate it the way install does.
  await activateRelease(layout, 'v1');
  return { root, layout, control, operatorDir, setProbeExit: (code) => writeFileSync(join(control, 'exit'), `${code}\n`) };
}

/** The order install follows: the trial written, then the switch. */
export async function putOnTrial(g: GateRoot, spanMs: number, deps: GateDeps): Promise<GateState> {
  const state = await startTrial(g.layout, { version: 'v2', dirName: 'v2', spanMs }, deps);
  await activateRelease(g.layout, 'v2');
  return state;
}

/** The gate's lines of state/events.jsonl. */
export function gateEvents(root: string): Array<Record<string, unknown>> {
  const path = join(root, 'state', 'events.jsonl');
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((e) => e.action === 'gate');
}

/** Where current points (the folder name), or undefined. */
export function currentDir(root: string): string | undefined {
  try {
    return readlinkSync(join(root, 'current')).replace(/^releases\//, '');
  } catch {
    return undefined;
  }
}

/**
 * The gate's invariants (issue 13, "Crash safety"), as a list of what is broken:
 * current names a complete release folder and never a version on the bad
 * list; each trial has at most one event; a completed decision has its event.
 */
export async function brokenInvariants(g: GateRoot): Promise<string[]> {
  const broken: string[] = [];
  const current = currentDir(g.root);
  if (!current) broken.push('no current link');
  else if (!existsSync(join(g.root, 'releases', current, '.containai', 'install.json'))) broken.push(`current names ${current}, not a complete release`);
  const bad = await readBadList(g.layout);
  if (current && bad.some((b) => b.version === versionOfDir(current))) broken.push(`current ${current} is on the bad list`);
  const events = gateEvents(g.root);
  const perTrial = new Map<unknown, number>();
  for (const e of events) perTrial.set(e.trialId, (perTrial.get(e.trialId) ?? 0) + 1);
  for (const [id, n] of perTrial) if (n > 1) broken.push(`trial ${String(id)} has ${n} events`);
  const state = await readGateState(g.layout);
  if (state?.decision?.complete && !perTrial.has(state.trialId)) broken.push('a completed decision has no event');
  if (state?.decision?.outcome === 'fail' && state.decision.complete && state.decision.rolledBackTo && !bad.some((b) => b.version === state.version)) broken.push('a failed, rolled-back version is not on the bad list');
  return broken;
}
