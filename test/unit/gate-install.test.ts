/**
 * The gate's hooks in the install pipeline (lib/gate/install-hooks.ts, called
 * by lib/release/install.ts) and check-health's advance from its report
 * (lib/gate/advance-report.ts), in process: the order of what is written
 * (the trial before the switch), what a refusal leaves (nothing), and what an
 * advance that cannot take the lock says.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { setVerbosity } from '../../lib/cli/output.ts';
import { advanceFromReport } from '../../lib/gate/advance-report.ts';
import { gateInstallHooks, gateOptionsFromFlags } from '../../lib/gate/install-hooks.ts';
import { readBadList, writeBadList } from '../../lib/gate/state.ts';
import { gateCheck } from '../../lib/health/gate.ts';
import { createHealthContext } from '../../lib/health/context.ts';
import { runHealthChecks } from '../../lib/health/runner.ts';
import { type InstallHooks, installRelease } from '../../lib/release/install.ts';
import { installLayout } from '../../lib/release/layout.ts';
import { acquireLock } from '../../lib/release/lock.ts';
import { bundleFileSource } from '../../lib/release/source.ts';
import type { TrustPolicy } from '../../lib/trust/policy.ts';
import { removeDir, tempDir } from '../helpers/cli.ts';
import { craftRelease, SMALL_TREE } from '../helpers/craft.ts';
import { makeKeyPair, writeKeyPair } from '../helpers/signing.ts';

const made: string[] = [];
afterAll(() => made.forEach(removeDir));
// The install steps' progress lines are not what these tests look at.
setVerbosity('quiet');

function setup() {
  const dir = tempDir('cai-gate-hooks-');
  made.push(dir);
  chmodSync(dir, 0o755);
  const key = makeKeyPair();
  const { pub } = writeKeyPair(dir, 'k', key);
  const operatorDir = join(dir, 'health.d');
  mkdirSync(operatorDir);
  const probe = `${JSON.stringify({ name: 'probe', kind: 'exec', argv: ['/bin/true'] })}\n`;
  for (const version of ['v1.0.0', 'v2.0.0']) craftRelease(join(dir, 'dist'), { version, key, tree: { ...SMALL_TREE, 'host/health.d/probe.json': probe } });
  const policy: TrustPolicy = { certOidcIssuer: 'x', predicateType: 'x', trustedRootFiles: [], keyFiles: [pub], publicGood: false, allowUnsigned: false, trustDir: join(dir, 'trust') };
  const root = join(dir, 'root');
  const layout = installLayout(root);
  const run = (version: string, hooks: InstallHooks, force = false) =>
    installRelease({ installRoot: root, version, source: bundleFileSource(join(dir, 'dist', `containai-${version}.tar.gz`), version), policy, force, allowDowngrade: false, lockWaitMs: 1000, hooks });
  return { dir, root, layout, operatorDir, policy, run };
}

const gateJson = (root: string) => JSON.parse(readFileSync(join(root, 'state', 'gate.json'), 'utf8'));

describe('the hooks in the install pipeline', () => {
  test('the trial is on disk before current moves, and names the release placed', async () => {
    const s = setup();
    const gate = gateInstallHooks({ spanMs: 60_000, operatorDir: s.operatorDir, by: 'install' });
    await s.run('v1.0.0', gateInstallHooks({ by: 'install', operatorDir: s.operatorDir }));
    const seen: Array<{ current: string; trial: string }> = [];
    const hooks: InstallHooks = {
      ...gate,
      async beforeSwitch(layout, version, dirName) {
        await gate.beforeSwitch?.(layout, version, dirName);
        seen.push({ current: readlinkSync(join(s.root, 'current')), trial: gateJson(s.root).dir });
      },
    };
    const result = await s.run('v2.0.0', hooks);
    expect(seen).toEqual([{ current: 'releases/v1.0.0', trial: 'v2.0.0' }]);
    expect(result.dirName).toBe('v2.0.0');
    expect(gateJson(s.root)).toMatchObject({ version: 'v2.0.0', dir: 'v2.0.0', previous: { version: 'v1.0.0', dir: 'v1.0.0' }, operatorDir: s.operatorDir, spanMs: 60_000 });
    expect(gateJson(s.root).probes.map((p: { name: string }) => p.name)).toEqual(['health:engine', 'health:release', 'health:profile', 'probe']);
  });

  test('a beforeSwitch that refuses leaves releases/ and current as they were', async () => {
    const s = setup();
    await s.run('v1.0.0', gateInstallHooks({ by: 'install', operatorDir: s.operatorDir }));
    const refused = s.run('v2.0.0', {
      beforeSwitch: async () => {
        throw new Error('no room for the trial');
      },
    });
    await expect(refused).rejects.toThrow('no room for the trial');
    expect(readdirSync(join(s.root, 'releases'))).toEqual(['v1.0.0']);
    expect(readlinkSync(join(s.root, 'current'))).toBe('releases/v1.0.0');
  });

  test('--no-gate: an undecided trial ends undecided, a forced bad version is taken off the list, no trial is written', async () => {
    const s = setup();
    await s.run('v1.0.0', gateInstallHooks({ spanMs: 60_000, by: 'install', operatorDir: s.operatorDir }));
    const trialId = gateJson(s.root).trialId;
    await writeBadList(s.layout, [{ version: 'v2.0.0', at: '2026-11-30T00:00:00.000Z', reason: 'earlier' }]);
    const noGate = gateInstallHooks({ by: 'install', operatorDir: s.operatorDir });
    await expect(s.run('v2.0.0', noGate)).rejects.toThrow('refusing v2.0.0: v2.0.0 failed its health gate at 2026-11-30T00:00:00.000Z: earlier');
    await s.run('v2.0.0', noGate, true);
    expect(await readBadList(s.layout)).toEqual([]);
    expect(gateJson(s.root)).toMatchObject({ trialId, version: 'v1.0.0', decision: { outcome: 'superseded', complete: true } });
  });

  test('flags: --gate and --no-gate together, or a span out of range, are usage errors', () => {
    expect(() => gateOptionsFromFlags({ gate: '5s', noGate: true }, 'install')).toThrow('give --gate SPAN or --no-gate, not both');
    expect(() => gateOptionsFromFlags({ gate: '25h' }, 'install')).toThrow('--gate "25h" must be a time span from 1s to 24h');
    expect(gateOptionsFromFlags({}, 'update')).toMatchObject({ spanMs: 600_000, by: 'update' });
    expect(gateOptionsFromFlags({ noGate: true }, 'update').spanMs).toBeUndefined();
  });
});

describe("check-health's advance", () => {
  test('with the lock held past its wait: the gate check warns and says why, nothing is written', async () => {
    const s = setup();
    await s.run('v1.0.0', gateInstallHooks({ spanMs: 60_000, by: 'install', operatorDir: s.operatorDir }));
    const before = readFileSync(join(s.root, 'state', 'gate.json'), 'utf8');
    const ctx = createHealthContext({ installRoot: s.root, offline: true, policy: s.policy, env: { DOCKER_HOST: `unix://${join(s.dir, 'none.sock')}` } });
    const report = await runHealthChecks([gateCheck], ctx);
    const lock = await acquireLock(s.layout, 'a long install', 0);
    try {
      const { report: out, problem } = await advanceFromReport(report, { context: ctx, lockWaitMs: 200, rerun: () => runHealthChecks([gateCheck], ctx) });
      expect(problem).toContain('a long install');
      const gate = out.checks.find((c) => c.id === 'gate');
      expect(gate).toMatchObject({ status: 'warn', details: { advanced: false } });
      expect(gate?.message).toContain('this run could not advance the trial: ');
      expect(gate?.fix).toContain('the next check-health tries again');
    } finally {
      lock.release();
    }
    expect(readFileSync(join(s.root, 'state', 'gate.json'), 'utf8')).toBe(before);
  });

  test('with no trial, nothing is advanced and the report is the same object', async () => {
    const s = setup();
    await s.run('v1.0.0', gateInstallHooks({ by: 'install', operatorDir: s.operatorDir }));
    const ctx = createHealthContext({ installRoot: s.root, offline: true });
    const report = await runHealthChecks([gateCheck], ctx);
    const out = await advanceFromReport(report, { context: ctx, rerun: async () => report });
    expect(out.report).toBe(report);
    expect(out.advance).toBeUndefined();
    expect(existsSync(join(s.root, 'state', 'gate.json'))).toBe(false);
  });
});
