/**
 * Install roots for the gate's tests, built with the real parts: two releases
 * installed by hand (test/helpers/installed-release.ts: payload tree,
 * SHA256SUMS, kept bundle, install.json), v1 current, then v2 put on trial
 * with lib/gate's startTrial and made current with lib/release/activate.ts,
 * in the order install does it.
 *
 * v2 carries an exec probe, host/health.d/probe.json, running
 * host/bin/probe.sh, which exits with the number in <root>/.control/exit (a
 * file outside the release, so a test flips it without touching the release).
 */
import { chmodSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { activateRelease } from '../../lib/release/activate.ts';
import { installLayout, type InstallLayout } from '../../lib/release/layout.ts';
import { startTrial, type GateDeps } from '../../lib/gate/trial.ts';
import type { GateState } from '../../lib/gate/state.ts';
import { tempDir } from './cli.ts';
import { handInstall } from './installed-release.ts';

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
  files?: Record<string, string>;
  grace?: string;
  profile?: string;
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
      'host/bin/probe.sh': probeScript(control),
      ...Object.fromEntries(Object.entries(probes).map(([name, text]) => [`host/health.d/${name}`, text])),
      ...options.files,
    },
  });
  chmodSync(join(root, 'releases', 'v2', 'host', 'bin', 'probe.sh'), 0o755);
  rmSync(join(root, 'current'));
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
