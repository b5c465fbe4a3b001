/**
 * The trial as a state machine, in-process, on install roots built with the
 * real parts (test/helpers/gate.ts): releases installed by hand, links moved
 * by lib/release/activate.ts, the previous release verified by the real
 * verifyInstalledRelease, a real probe script. The clock is passed in, so a
 * window of seconds is crossed without sleeping.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { existsSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ContainaiError } from '../../lib/errors.ts';
import { badReason, readBadList } from '../../lib/gate/bad.ts';
import { recordDecision } from '../../lib/gate/decide.ts';
import { gateReport } from '../../lib/gate/report.ts';
import { gatePath, readGateState, writeBadList } from '../../lib/gate/state.ts';
import { advanceTrial, endTrialByHand, settleTrial, startTrial, type GateDeps } from '../../lib/gate/trial.ts';
import { gateCheck } from '../../lib/health/gate.ts';
import { createHealthContext } from '../../lib/health/context.ts';
import type { HealthCheck } from '../../lib/health/types.ts';
import { activateRelease, pointLink, swapCurrentAndPrevious } from '../../lib/release/activate.ts';
import { acquireLock } from '../../lib/release/lock.ts';
import { removeDir } from '../helpers/cli.ts';
import { brokenInvariants, currentDir, gateEvents, makeGateRoot, putOnTrial, type GateRoot, type GateRootOptions } from '../helpers/gate.ts';
import { tamperWithSums } from '../helpers/installed-release.ts';
import { refusal } from '../helpers/refusal.ts';

const made: string[] = [];
afterAll(() => made.forEach(removeDir));

const SPAN = 5_000;

async function setup(options: GateRootOptions = {}): Promise<{ g: GateRoot; clock: { t: number }; deps: GateDeps }> {
  const g = await makeGateRoot(options);
  made.push(g.root);
  const clock = { t: Date.parse('2026-12-01T10:00:00Z') };
  return { g, clock, deps: { by: 'test', healthChecks: [], operatorDir: g.operatorDir, now: () => clock.t } };
}

describe('deciding a trial', () => {
  test('passing probes through the whole window pass the gate at its end, once', async () => {
    const { g, clock, deps } = await setup();
    const started = await putOnTrial(g, SPAN, deps);
    expect(started).toMatchObject({ version: 'v2', dir: 'v2', previous: { version: 'v1', dir: 'v1' }, start: '2026-12-01T10:00:00.000Z', deadline: '2026-12-01T10:00:05.000Z' });
    expect((await advanceTrial(g.layout, deps)).status).toBe('on-trial');
    clock.t += 2_000;
    expect((await advanceTrial(g.layout, deps)).status).toBe('on-trial');
    clock.t += 3_000;
    const r = await advanceTrial(g.layout, deps);
    expect(r).toMatchObject({ status: 'passed', decidedNow: true, message: 'v2 passed its health gate at 2026-12-01T10:00:05.000Z: 1 probe passed through the 5s window' });
    expect(currentDir(g.root)).toBe('v2');
    expect(readlinkSync(join(g.root, 'previous'))).toBe('releases/v1');
    const again = await advanceTrial(g.layout, deps);
    expect(again).toMatchObject({ status: 'passed', decidedNow: false });
    expect(gateEvents(g.root)).toEqual([expect.objectContaining({ action: 'gate', version: 'v2', outcome: 'ok', decision: 'pass', trialId: started.trialId, by: 'test' })]);
    expect(await readBadList(g.layout)).toEqual([]);
    expect((await gateReport(g.layout, clock.t)).state).toBe('passed');
    expect(await brokenInvariants(g)).toEqual([]);
  });

  test('a probe failing past its grace fails the gate: previous verified and current again, the version on the bad list, one event', async () => {
    const { g, clock, deps } = await setup();
    const started = await putOnTrial(g, SPAN, deps);
    g.setProbeExit(3);
    expect((await advanceTrial(g.layout, deps)).status).toBe('on-trial');
    clock.t += 1_000;
    expect((await advanceTrial(g.layout, deps)).status).toBe('on-trial');
    clock.t += 1_000;
    const r = await advanceTrial(g.layout, deps);
    expect(r.status).toBe('failed');
    expect(r.state?.decision).toMatchObject({ outcome: 'fail', probe: 'probe script', rolledBackTo: 'v1', complete: true, reason: 'probe "probe script" failed for 2s (grace 2s): exit 3: probe says no (3)' });
    expect(currentDir(g.root)).toBe('v1');
    expect(existsSync(join(g.root, 'previous'))).toBe(false); // nothing left to roll back to v2 with
    expect(await readBadList(g.layout)).toEqual([{ version: 'v2', at: '2026-12-01T10:00:02.000Z', reason: r.state!.decision!.reason, trialId: started.trialId }]);
    expect(await badReason(g.layout, 'v2')).toBe('v2 failed its health gate at 2026-12-01T10:00:02.000Z: probe "probe script" failed for 2s (grace 2s): exit 3: probe says no (3)');
    expect(await badReason(g.layout, 'v1')).toBeUndefined();
    expect(gateEvents(g.root)).toEqual([expect.objectContaining({ version: 'v2', outcome: 'failed', decision: 'fail', rolledBackTo: 'v1', probe: 'probe script' })]);
    const probe = r.state!.probes[0]!;
    expect(probe).toMatchObject({ status: 'fail', rounds: 3, failures: 3, firstFailureAt: '2026-12-01T10:00:00.000Z', failingSince: '2026-12-01T10:00:00.000Z' });
    expect((await advanceTrial(g.layout, deps)).decidedNow).toBe(false);
    expect(gateEvents(g.root)).toHaveLength(1);
    expect(await brokenInvariants(g)).toEqual([]);
  });

  test('a probe that fails once and passes again within its grace: the gate passes, no rollback', async () => {
    const { g, clock, deps } = await setup();
    await putOnTrial(g, SPAN, deps);
    g.setProbeExit(1);
    await advanceTrial(g.layout, deps);
    g.setProbeExit(0);
    clock.t += 1_500;
    const mid = await advanceTrial(g.layout, deps);
    expect(mid.state?.probes[0]).toMatchObject({ status: 'pass', failures: 1, firstFailureAt: '2026-12-01T10:00:00.000Z' });
    expect(mid.state?.probes[0]?.failingSince).toBeUndefined();
    clock.t += 3_500;
    expect((await advanceTrial(g.layout, deps)).status).toBe('passed');
    expect(currentDir(g.root)).toBe('v2');
    expect(await readBadList(g.layout)).toEqual([]);
  });

  test('a probe failing at the deadline within its grace holds the decision until it recovers or its grace ends', async () => {
    const { g, clock, deps } = await setup();
    await putOnTrial(g, SPAN, deps);
    clock.t += 4_500;
    g.setProbeExit(1);
    await advanceTrial(g.layout, deps);
    clock.t += 1_000; // past the deadline, 1 s into a 2 s grace
    const held = await advanceTrial(g.layout, deps);
    expect(held.status).toBe('on-trial');
    expect(held.message).toContain('past its deadline');
    expect(held.nextRoundInMs).toBe(1_000);
    g.setProbeExit(0);
    clock.t += 500;
    expect((await advanceTrial(g.layout, deps)).status).toBe('passed');
  });

  test('a systemd unit restarting during the trial fails the gate (systemctl show through the seam)', async () => {
    const { g, clock, deps } = await setup({ probes: { 'unit.json': JSON.stringify({ name: 'proxy unit', kind: 'systemd', unit: 'containai-proxy.service', grace: '1s' }) } });
    let restarts = 0;
    deps.systemctl = async (unit) => `LoadState=loaded\nActiveState=active\nSubState=running\nNRestarts=${unit === 'containai-proxy.service' ? restarts : 0}\n`;
    await putOnTrial(g, SPAN, deps);
    expect((await advanceTrial(g.layout, deps)).state?.probes[0]).toMatchObject({ status: 'pass', baseline: { NRestarts: 0 } });
    restarts = 2;
    clock.t += 1_000;
    expect((await advanceTrial(g.layout, deps)).status).toBe('on-trial');
    clock.t += 1_000;
    const r = await advanceTrial(g.layout, deps);
    expect(r.status).toBe('failed');
    expect(r.state?.decision?.reason).toContain('containai-proxy.service restarted 2 times during the trial (NRestarts 0 → 2)');
    expect(currentDir(g.root)).toBe('v1');
  });

  test('the health checks run as probes: a failing one fails the gate, a warning does not; results at hand are not run again', async () => {
    let runs = 0;
    let status: 'pass' | 'warn' | 'fail' = 'warn';
    const check: HealthCheck = { id: 'stub', title: 'stub', timeoutMs: 1_000, run: async () => ((runs += 1), { status, message: `it is ${status}` }) };
    const { g, clock, deps } = await setup();
    deps.healthChecks = [check];
    const started = await putOnTrial(g, SPAN, deps);
    expect(started.probes.map((p) => [p.name, p.source, p.graceMs])).toEqual([['health:stub', 'health check', SPAN], ['probe script', 'host/health.d/probe.json', 2_000]]);
    expect((await advanceTrial(g.layout, deps)).state?.probes[0]).toMatchObject({ name: 'health:stub', status: 'pass', message: 'warn: it is warn' });
    status = 'fail';
    clock.t += 5_000;
    const fromReport = { ...deps, healthResults: [{ id: 'stub', title: 'stub', status: 'fail' as const, message: 'from the report', durationMs: 1 }] };
    // Failing at the deadline, within its grace: held.
    expect((await advanceTrial(g.layout, fromReport)).status).toBe('on-trial');
    clock.t += 5_000;
    const r = await advanceTrial(g.layout, fromReport);
    expect(runs).toBe(1);
    expect(r.status).toBe('failed');
    expect(r.state?.decision?.reason).toBe('probe "health:stub" failed for 5s (grace 5s): fail: from the report');
  });
});

describe('starting and superseding trials', () => {
  test('a bad probe file in the release is refused before anything is written', async () => {
    const { g, deps } = await setup({ probes: { 'bad.json': JSON.stringify({ name: 'x', kind: 'exec', argv: 'curl -fsS http://127.0.0.1/' }) } });
    await writeBadList(g.layout, [{ version: 'v2', at: '2026-11-30T00:00:00.000Z', reason: 'earlier' }]);
    const before = readFileSync(join(g.root, 'state', 'bad.json'), 'utf8');
    const err = await refusal(startTrial(g.layout, { version: 'v2', dirName: 'v2', spanMs: SPAN }, deps));
    expect(err.code).toBe('INPUT');
    expect(err.message).toContain('host/health.d/bad.json: argv: must be a list of words, not a shell command line');
    expect(existsSync(gatePath(g.layout))).toBe(false);
    expect(readFileSync(join(g.root, 'state', 'bad.json'), 'utf8')).toBe(before);
    expect(currentDir(g.root)).toBe('v1');
  });

  test('an install forced over the bad list puts the version on trial again, off the list', async () => {
    const { g, deps } = await setup();
    await writeBadList(g.layout, [
      { version: 'v2', at: '2026-11-30T00:00:00.000Z', reason: 'earlier' },
      { version: 'v0', at: '2026-11-29T00:00:00.000Z', reason: 'older' },
    ]);
    await putOnTrial(g, SPAN, deps);
    expect((await readBadList(g.layout)).map((b) => b.version)).toEqual(['v0']);
    expect(await brokenInvariants(g)).toEqual([]);
  });

  test('a new install during a trial supersedes it: undecided, not bad, one event, the new trial rolls back to it', async () => {
    const { g, clock, deps } = await setup({ alsoInstall: ['v3'] });
    const first = await putOnTrial(g, SPAN, deps);
    await advanceTrial(g.layout, deps);
    clock.t += 1_000;
    const second = await startTrial(g.layout, { version: 'v3', dirName: 'v3', spanMs: SPAN }, { ...deps, by: 'install' });
    await activateRelease(g.layout, 'v3');
    expect(second).toMatchObject({ version: 'v3', previous: { version: 'v2', dir: 'v2' }, superseded: { trialId: first.trialId, version: 'v2' } });
    expect(gateEvents(g.root)).toEqual([expect.objectContaining({ version: 'v2', decision: 'superseded', trialId: first.trialId, by: 'install' })]);
    const r = await advanceTrial(g.layout, deps);
    expect(r.status).toBe('on-trial');
    expect(r.state?.superseded).toBeUndefined();
    expect(gateEvents(g.root)).toHaveLength(1);
    expect(await readBadList(g.layout)).toEqual([]);
  });

  test('an install killed between writing the trial and the switch: the next advance ends the trial undecided', async () => {
    const { g, deps } = await setup();
    await startTrial(g.layout, { version: 'v2', dirName: 'v2', spanMs: SPAN }, deps);
    const r = await advanceTrial(g.layout, deps);
    expect(r).toMatchObject({ status: 'superseded', decidedNow: true });
    expect(r.message).toContain('v1 is current, not v2');
    expect(currentDir(g.root)).toBe('v1');
    expect(await readBadList(g.layout)).toEqual([]);
    expect(await brokenInvariants(g)).toEqual([]);
  });

  test('current moved by hand during the trial (rollback): the trial ends undecided, nothing else moves', async () => {
    const { g, deps } = await setup();
    await putOnTrial(g, SPAN, deps);
    await swapCurrentAndPrevious(g.layout, 'v2', 'v1');
    const r = await advanceTrial(g.layout, deps);
    expect(r.status).toBe('superseded');
    expect(currentDir(g.root)).toBe('v1');
    expect(await readBadList(g.layout)).toEqual([]);
  });

  test('settleTrial (install --no-gate) ends an open trial before the switch', async () => {
    const { g, deps } = await setup();
    await putOnTrial(g, SPAN, deps);
    const settled = await settleTrial(g.layout, { ...deps, by: 'install' }, 'v3');
    expect(settled?.decision).toMatchObject({ outcome: 'superseded', complete: true, reason: 'v3 was installed before the trial was decided' });
  });
});

describe('a failure, and what it can roll back to', () => {
  async function failWith(prepare: (g: GateRoot) => Promise<void> | void) {
    const { g, clock, deps } = await setup();
    await putOnTrial(g, SPAN, deps);
    await prepare(g);
    g.setProbeExit(1);
    await advanceTrial(g.layout, deps);
    clock.t += 2_000;
    const r = await advanceTrial(g.layout, deps);
    return { g, r };
  }

  test('the previous link lost (a kill between the switch of current and of previous): the release current before the trial is the one rolled back to', async () => {
    const { g, r } = await failWith((g) => rmSync(join(g.root, 'previous')));
    expect(r.state?.decision).toMatchObject({ outcome: 'fail', complete: true, rolledBackTo: 'v1' });
    expect(currentDir(g.root)).toBe('v1');
    expect(existsSync(join(g.root, 'previous'))).toBe(false);
    expect((await readBadList(g.layout)).map((b) => b.version)).toEqual(['v2']);
    expect(await brokenInvariants(g)).toEqual([]);
  });

  test('no previous release: v2 stays current (the only verified release), off the bad list; check-health fails the gate check', async () => {
    const { g, r } = await failWith((g) => {
      rmSync(join(g.root, 'previous'));
      rmSync(join(g.root, 'releases', 'v1'), { recursive: true });
    });
    expect(r.status).toBe('failed');
    expect(r.state?.decision).toMatchObject({ outcome: 'fail', complete: true, rollbackProblem: 'there is no previous release to roll back to' });
    expect(r.message).toContain('it stays current, as it could not be rolled back');
    expect(currentDir(g.root)).toBe('v2');
    expect(await readBadList(g.layout)).toEqual([]);
    expect(gateEvents(g.root)).toEqual([expect.objectContaining({ decision: 'fail', rollbackProblem: 'there is no previous release to roll back to' })]);
    const check = await gateCheck.run(createHealthContext({ installRoot: g.root }));
    expect(check.status).toBe('fail');
    expect(check.message).toContain('could not be rolled back (there is no previous release to roll back to)');
    expect(await brokenInvariants(g)).toEqual([]);
  });

  test('a previous release that no longer verifies is never made current', async () => {
    const { g, r } = await failWith((g) => tamperWithSums(join(g.root, 'releases', 'v1'), 'host/README.md', 'changed\n'));
    expect(r.state?.decision?.rollbackProblem).toMatch(/^previous v1 does not verify: /);
    expect(currentDir(g.root)).toBe('v2');
    expect(await readBadList(g.layout)).toEqual([]);
  });

  test('a previous release on the bad list is never made current', async () => {
    const { g, r } = await failWith((g) => writeBadList(g.layout, [{ version: 'v1', at: '2026-11-30T00:00:00.000Z', reason: 'earlier' }]));
    expect(r.state?.decision?.rollbackProblem).toBe('previous v1 is itself on the bad list (failed its gate at 2026-11-30T00:00:00.000Z)');
    expect(currentDir(g.root)).toBe('v2');
  });
});

describe('resuming a decision a crash interrupted', () => {
  async function decidedFail() {
    const { g, clock, deps } = await setup();
    const state = await putOnTrial(g, SPAN, deps);
    const recorded = await recordDecision(g.layout, state, { outcome: 'fail', at: '2026-12-01T10:00:03.000Z', by: 'killed run', reason: 'probe "probe script" failed' });
    return { g, clock, deps, recorded };
  }

  test('recorded, nothing done: the next advance rolls back without probing again, and logs once', async () => {
    const { g, deps } = await decidedFail();
    g.setProbeExit(0); // the probe passes now: the decision stands all the same
    expect((await gateReport(g.layout)).state).toBe('deciding');
    const r = await advanceTrial(g.layout, deps);
    expect(r).toMatchObject({ status: 'failed', decidedNow: true });
    expect(r.state?.decision).toMatchObject({ by: 'killed run', rolledBackTo: 'v1', complete: true });
    expect(currentDir(g.root)).toBe('v1');
    expect(await brokenInvariants(g)).toEqual([]);
  });

  test('switched, previous not yet removed, not listed: completed from what the disk shows', async () => {
    const { g, deps } = await decidedFail();
    await pointLink(g.layout, 'current', 'v1'); // previous still names v1 too
    const r = await advanceTrial(g.layout, deps);
    expect(r.state?.decision).toMatchObject({ rolledBackTo: 'v1', complete: true });
    expect(existsSync(join(g.root, 'previous'))).toBe(false);
    expect((await readBadList(g.layout)).map((b) => b.version)).toEqual(['v2']);
    expect(await brokenInvariants(g)).toEqual([]);
  });

  test('everything done but the mark: no second event', async () => {
    const { g, deps } = await decidedFail();
    await advanceTrial(g.layout, deps);
    const done = (await readGateState(g.layout))!;
    writeFileSync(gatePath(g.layout), JSON.stringify({ ...done, decision: { ...done.decision, complete: false } }));
    await advanceTrial(g.layout, deps);
    expect(gateEvents(g.root)).toHaveLength(1);
    expect((await readGateState(g.layout))?.decision?.complete).toBe(true);
  });

  test('a new install completes the interrupted decision before it writes its trial', async () => {
    const { g, deps } = await decidedFail();
    const next = await startTrial(g.layout, { version: 'v2', dirName: 'v2', spanMs: SPAN }, { ...deps, by: 'install --force' });
    // The rollback was carried out first (v2 off current, listed), then v2 forced back on trial, off the list.
    expect(currentDir(g.root)).toBe('v1');
    expect(next.previous).toEqual({ version: 'v1', dir: 'v1' });
    expect(gateEvents(g.root)).toEqual([expect.objectContaining({ decision: 'fail', rolledBackTo: 'v1' })]);
    expect(await readBadList(g.layout)).toEqual([]);
  });
});

describe('by hand, and the lock', () => {
  test('gate pass ends the trial as passed; a second decision is refused', async () => {
    const { g, deps } = await setup();
    await putOnTrial(g, SPAN, deps);
    const r = await endTrialByHand(g.layout, 'pass', 'looked at it', { ...deps, by: 'gate pass' });
    expect(r.state?.decision).toMatchObject({ outcome: 'pass', by: 'gate pass', reason: 'by hand: looked at it', complete: true });
    const err = await refusal(endTrialByHand(g.layout, 'fail', undefined, { ...deps, by: 'gate fail' }));
    expect(err.code).toBe('STATE');
    expect(err.message).toContain('the trial of v2 is already decided (pass at');
    expect(currentDir(g.root)).toBe('v2');
    expect(gateEvents(g.root)).toHaveLength(1);
  });

  test('gate fail rolls back as a failed probe would', async () => {
    const { g, deps } = await setup();
    await putOnTrial(g, SPAN, deps);
    const r = await endTrialByHand(g.layout, 'fail', 'proxy drops connections', { ...deps, by: 'gate fail' });
    expect(r.state?.decision).toMatchObject({ outcome: 'fail', rolledBackTo: 'v1', reason: 'by hand: proxy drops connections' });
    expect(await badReason(g.layout, 'v2')).toContain('by hand: proxy drops connections');
    expect(await brokenInvariants(g)).toEqual([]);
  });

  test('with no trial, by hand is refused and nothing is written', async () => {
    const { g, deps } = await setup();
    const err = await refusal(endTrialByHand(g.layout, 'pass', undefined, deps));
    expect(err.message).toBe('no release is on trial (there is no state/gate.json)');
    expect(existsSync(gatePath(g.layout))).toBe(false);
    expect((await advanceTrial(g.layout, deps)).status).toBe('none');
  });

  test('a decision waits for the install lock, and says who holds it', async () => {
    const { g, clock, deps } = await setup();
    await putOnTrial(g, SPAN, deps);
    const before = readFileSync(gatePath(g.layout), 'utf8');
    const held = await acquireLock(g.layout, 'containai-host install v3', 1_000);
    try {
      clock.t += SPAN;
      const err = await refusal(advanceTrial(g.layout, { ...deps, lockWaitMs: 0 }));
      expect(err.code).toBe('LOCKED');
      expect(err.message).toContain('containai-host install v3');
      expect(readFileSync(gatePath(g.layout), 'utf8')).toBe(before);
    } finally {
      held.release();
    }
    expect((await advanceTrial(g.layout, deps)).status).toBe('passed');
  });
});

describe("check-health's gate check", () => {
  test('on trial: pass while probes pass, warn while one fails within its grace; failed and rolled back: warn', async () => {
    const { g, clock, deps } = await setup();
    const ctx = createHealthContext({ installRoot: g.root });
    expect((await gateCheck.run(ctx)).message).toBe('no release has been on trial here');
    await putOnTrial(g, SPAN, deps);
    await advanceTrial(g.layout, deps);
    expect((await gateCheck.run(ctx)).status).toBe('pass');
    g.setProbeExit(1);
    clock.t += 1_000;
    await advanceTrial(g.layout, deps);
    const warn = await gateCheck.run(ctx);
    expect(warn.status).toBe('warn');
    expect(warn.fix).toContain('probe "probe script" (exit 1: probe says no (1)) fails the gate after 2s');
    clock.t += 2_000;
    await advanceTrial(g.layout, deps);
    const failed = await gateCheck.run(ctx);
    expect(failed.status).toBe('warn');
    expect(failed.message).toMatch(/^v2 failed its health gate at \S+: probe "probe script" failed for 2s \(grace 2s\): exit 1: probe says no \(1\); v1 is current again and v2 is on the bad list$/);
  });

  test('a damaged gate.json fails the check and is never reset', async () => {
    const { g, deps } = await setup();
    await putOnTrial(g, SPAN, deps);
    writeFileSync(gatePath(g.layout), '{"format":1,');
    const check = await gateCheck.run(createHealthContext({ installRoot: g.root }));
    expect(check.status).toBe('fail');
    expect(check.message).toBe(`${gatePath(g.layout)} is not valid JSON`);
    expect((await refusal(advanceTrial(g.layout, deps))).code).toBe('STATE');
    expect(readFileSync(gatePath(g.layout), 'utf8')).toBe('{"format":1,');
  });
});
