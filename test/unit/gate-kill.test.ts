/**
 * Crash safety of the gate's decision (issue 13): a decision is run in a child
 * process (test/helpers/gate-child.ts) and killed with SIGKILL at a random
 * moment of it, at least 50 times. After each kill the next advance, in this
 * process, must decide (or complete) the trial, and the invariants must hold:
 * current names a complete release and never a bad version, the trial has
 * exactly one event, a failed version that was rolled back is on the bad list.
 *
 * The random moments are drawn over the length of an uninterrupted decision,
 * measured first on the same kind of root, so the kills fall inside it.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { readBadList } from '../../lib/gate/bad.ts';
import { readGateState } from '../../lib/gate/state.ts';
import { advanceTrial, type GateDeps } from '../../lib/gate/trial.ts';
import { installLayout } from '../../lib/release/layout.ts';
import { REPO_ROOT, removeDir, tempDir } from '../helpers/cli.ts';
import { brokenInvariants, currentDir, gateEvents, makeGateRoot, putOnTrial, type GateRoot } from '../helpers/gate.ts';

const KILLS = 50;
const made: string[] = [];
afterAll(() => made.forEach(removeDir));

type Mode = 'advance-fail' | 'advance-pass' | 'fail-by-hand';

/**
 * A root whose decision is due now: the trial began 10 s ago and ended 5 s
 * ago; for a failure the probe has failed since the start (grace 2 s).
 */
async function template(mode: Mode): Promise<GateRoot> {
  const g = await makeGateRoot();
  made.push(g.root);
  const start = Date.now() - 10_000;
  const deps: GateDeps = { by: 'setup', healthChecks: [], operatorDir: g.operatorDir, now: () => start };
  await putOnTrial(g, 5_000, deps);
  g.setProbeExit(mode === 'advance-fail' ? 1 : 0);
  await advanceTrial(g.layout, deps);
  return g;
}

function copyRoot(g: GateRoot): GateRoot {
  const root = join(tempDir('cai-gate-kill-'), 'root');
  made.push(join(root, '..'));
  const r = Bun.spawnSync(['cp', '-a', g.root, root]);
  if (r.exitCode !== 0) throw new Error(`cp failed: ${r.stderr.toString()}`);
  return { ...g, root, layout: installLayout(root) };
}

interface ChildRun {
  killed: boolean;
  ms: number;
}

/** Runs the decision in a child; kills it after delayMs from "go" (never, when undefined). */
async function runChild(g: GateRoot, mode: Mode, delayMs?: number): Promise<ChildRun> {
  const proc = Bun.spawn([process.execPath, join(REPO_ROOT, 'test/helpers/gate-child.ts'), g.root, mode === 'fail-by-hand' ? 'fail-by-hand' : 'advance', g.operatorDir], {
    stdin: 'pipe',
    stdout: 'pipe',
    stderr: 'pipe',
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', NO_COLOR: '1' },
  });
  const reader = proc.stdout.getReader();
  let seen = '';
  while (!seen.includes('ready\n')) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`the child ended before it was ready: ${await new Response(proc.stderr).text()}`);
    seen += new TextDecoder().decode(value);
  }
  const started = performance.now();
  proc.stdin.write('go\n');
  proc.stdin.flush();
  if (delayMs !== undefined) {
    // A random moment, not a wait for a condition: the point is to land anywhere.
    await Bun.sleep(delayMs);
    proc.kill('SIGKILL');
  }
  const code = await proc.exited;
  reader.releaseLock();
  const killed = proc.signalCode === 'SIGKILL';
  if (!killed && code !== 0) throw new Error(`the child failed (${code}): ${await new Response(proc.stderr).text()}`);
  return { killed, ms: performance.now() - started };
}

/** Where in the decision a kill left the root, for the report of where the kills fell. */
async function phaseOf(g: GateRoot): Promise<string> {
  const state = await readGateState(g.layout);
  const d = state?.decision;
  if (!d) return 'before the decision';
  if (d.complete) return 'after completion';
  if (gateEvents(g.root).length > 0) return 'event logged';
  if ((await readBadList(g.layout)).length > 0) return 'on the bad list';
  if (currentDir(g.root) !== 'v2') return existsSync(join(g.root, 'previous')) ? 'current switched' : 'previous removed';
  return 'decision recorded';
}

describe('SIGKILL at random moments of a decision', () => {
  test(`${KILLS}+ kills: the next advance decides, once, and the invariants hold`, async () => {
    const modes: Mode[] = ['advance-fail', 'advance-pass', 'fail-by-hand'];
    const templates = new Map<Mode, GateRoot>();
    const spans = new Map<Mode, number>();
    for (const mode of modes) {
      templates.set(mode, await template(mode));
      // Uninterrupted decisions (the first warms the page cache; the median of the others): how long the kills have to land in.
      await runChild(copyRoot(templates.get(mode)!), mode);
      const ms: number[] = [];
      for (let n = 0; n < 3; n++) ms.push((await runChild(copyRoot(templates.get(mode)!), mode)).ms);
      spans.set(mode, ms.sort((a, b) => a - b)[1]!);
    }
    const phases = new Map<string, number>();
    let kills = 0;
    for (let i = 0; kills < KILLS; i++) {
      expect(i).toBeLessThan(KILLS * 4); // a run that keeps finishing before its kill would be a broken test
      const mode = modes[i % modes.length]!;
      const g = copyRoot(templates.get(mode)!);
      // Most of the early part is the probe round; the kills lean towards the steps after it.
      const run = await runChild(g, mode, (0.15 + Math.random() * 0.95) * spans.get(mode)!);
      if (!run.killed) continue;
      kills += 1;
      const phase = `${mode}: ${await phaseOf(g)}`;
      phases.set(phase, (phases.get(phase) ?? 0) + 1);

      const next = await advanceTrial(g.layout, { by: 'next check-health', healthChecks: [], operatorDir: g.operatorDir });
      // A hand decision killed before it was written never happened: the probes (passing) decide.
      const passes = mode === 'advance-pass' || (mode === 'fail-by-hand' && phase.endsWith('before the decision'));
      expect({ phase, status: next.status }).toEqual({ phase, status: passes ? 'passed' : 'failed' });
      const state = await readGateState(g.layout);
      expect(state?.decision?.complete).toBe(true);
      expect(currentDir(g.root)).toBe(passes ? 'v2' : 'v1');
      expect((await readBadList(g.layout)).map((b) => b.version)).toEqual(passes ? [] : ['v2']);
      expect(gateEvents(g.root).filter((e) => e.trialId === state?.trialId)).toHaveLength(1);
      expect({ phase, broken: await brokenInvariants(g) }).toEqual({ phase, broken: [] });
      removeDir(join(g.root, '..'));
    }
    console.log(`decision lengths (ms): ${[...spans].map(([m, ms]) => `${m} ${ms.toFixed(0)}`).join(', ')}`);
    console.log(`${kills} kills, where they left the root:\n${[...phases].sort().map(([p, n]) => `  ${String(n).padStart(3)}  ${p}`).join('\n')}`);
    expect(kills).toBeGreaterThanOrEqual(KILLS);
  });
});
