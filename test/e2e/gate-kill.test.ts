/**
 * SIGKILL at random moments of a trial and its decision, through the compiled
 * binaries (issue 13, "Crash safety"): `install --gate 1s --wait` killed
 * anywhere from its first step to its verdict, and a `check-health` that
 * decides the trial (and rolls back) killed anywhere in its run. After each
 * kill, the next check-health decides, and:
 *
 * - the trial is decided exactly once: one gate event per trial, and a
 *   decision seen on disk right after the kill is the one that stands;
 * - current is a verified release (check-health's release check passes on it),
 *   never a version recorded as bad;
 * - the decision matches the probe: a failing probe rolls back to v1 and puts
 *   v2 on the bad list, a passing one keeps v2; a trial whose release never
 *   became current ends undecided.
 *
 * "The next check-health decides" literally, with one exception the gate's
 * rule makes: a failing probe fails the gate only once it has failed for its
 * grace, so when the kill came before any round saw it fail, the first run
 * sees the failure and the one after its grace decides.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test';
import { existsSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { baseEnv, binaryPath, removeDir } from '../helpers/cli.ts';
import {
  badVersions,
  checkHealthArgs,
  copyRoot,
  currentOf,
  EXEC_PROBE,
  gateEventsOf,
  gateJson,
  type GateHost,
  gateRelease,
  install,
  installArgs,
  makeGateHost,
  runAt,
  setProbeExit,
} from '../helpers/gate-host.ts';
import { startDockerd, waitFor } from '../helpers/services.ts';

const KILLS = 50;
const MAX_RUNS = 140;
const GATE = ['--gate', '1s'];

let template: GateHost;
const made: string[] = [];
afterAll(() => made.forEach(removeDir));

beforeAll(async () => {
  const { dockerHost } = await startDockerd();
  template = makeGateHost({ DOCKER_HOST: dockerHost });
  made.push(template.dir);
  gateRelease(template, 'v1.0.0');
  gateRelease(template, 'v2.0.0', { probes: { 'probe.json': EXEC_PROBE('500ms') } });
  expect((await install(template, 'v1.0.0', ['--no-gate'])).code).toBe(0);
});

let copies = 0;
function freshHost(failing: boolean): GateHost {
  const h = copyRoot(template, join(template.dir, `r${copies++}`));
  setProbeExit(h, failing ? 3 : 0);
  return h;
}

/** Runs the binary and SIGKILLs it after delayMs, unless it ended first. */
async function runAndKill(args: string[], env: Record<string, string>, delayMs: number): Promise<{ killed: boolean; ms: number }> {
  const started = performance.now();
  const proc = Bun.spawn([binaryPath('containai-host'), ...args], { env: { ...baseEnv(), ...env }, stdin: 'ignore', stdout: 'ignore', stderr: 'ignore' });
  const timer = setTimeout(() => proc.kill('SIGKILL'), delayMs);
  await proc.exited;
  clearTimeout(timer);
  return { killed: proc.signalCode === 'SIGKILL', ms: performance.now() - started };
}

/** The moment of the trial a kill left it in, from the disk. */
function phaseOf(h: GateHost): string {
  const state = gateJson(h);
  if (!state) return existsSync(join(h.root, 'releases', 'v2.0.0')) ? 'placed, no trial' : 'before the trial';
  if (state.decision) return state.decision.complete ? `decided (${state.decision.outcome})` : `deciding (${state.decision.outcome})`;
  return currentOf(h) === state.dir ? 'on trial' : 'trial written, not switched';
}

/** When the trial's decision is due at the earliest: its deadline, or a failing probe's grace running out. */
function dueAt(state: any): number {
  const failing = state.probes.filter((p: any) => p.status === 'fail' && p.failingSince).map((p: any) => Date.parse(p.failingSince) + p.graceMs);
  return Math.max(Date.parse(state.deadline), ...(failing.length ? [Math.min(...failing)] : []));
}

async function checkHealthJson(h: GateHost): Promise<any> {
  const r = await runAt(binaryPath('containai-host'), checkHealthArgs(h, ['--json']), h.env);
  return JSON.parse(r.stdout);
}

interface Recovery {
  runs: number;
  report: any;
}

/** check-health, once the decision is due, until the trial is decided (at most 2 runs, see the module comment). */
async function recover(h: GateHost): Promise<Recovery> {
  let runs = 0;
  let report: any;
  for (;;) {
    const state = gateJson(h);
    if (state && !state.decision) {
      const due = dueAt(state);
      await waitFor('the decision to be due', () => Date.now() > due + 50, 10_000);
    }
    report = await checkHealthJson(h);
    runs += 1;
    const after = gateJson(h);
    if (!after || after.decision?.complete || runs >= 3) return { runs, report };
  }
}

/** What must hold after a kill and the recovery; returns what does not. */
function broken(h: GateHost, failing: boolean, atKill: any, recovery: Recovery): string[] {
  const out: string[] = [];
  const state = gateJson(h);
  const current = currentOf(h);
  const bad = badVersions(h);
  const events = gateEventsOf(h);
  const release = recovery.report.checks.find((c: { id: string }) => c.id === 'release');
  if (!current) out.push('no current');
  if (release?.status !== 'pass') out.push(`current ${current} does not verify: ${release?.message}`);
  if (current && bad.includes(current.split('@')[0] as string)) out.push(`current ${current} is on the bad list`);
  const perTrial = new Map<string, number>();
  for (const e of events) perTrial.set(e.trialId, (perTrial.get(e.trialId) ?? 0) + 1);
  for (const [id, n] of perTrial) if (n !== 1) out.push(`trial ${id} has ${n} events`);
  if (!state) {
    if (current !== 'v1.0.0') out.push(`no trial, yet current is ${current}`);
    return out;
  }
  if (!state.decision?.complete) out.push(`the trial is not decided after ${recovery.runs} check-health runs (${phaseOf(h)})`);
  if (perTrial.get(state.trialId) !== 1) out.push('the decided trial has no event');
  if (atKill?.decision && (atKill.decision.outcome !== state.decision?.outcome || atKill.decision.at !== state.decision?.at)) {
    out.push(`decided twice: ${atKill.decision.outcome} at ${atKill.decision.at}, then ${state.decision?.outcome} at ${state.decision?.at}`);
  }
  switch (state.decision?.outcome) {
    case 'fail':
      if (!failing) out.push('a passing probe failed the gate');
      if (current !== 'v1.0.0' || !bad.includes('v2.0.0')) out.push(`failed, yet current is ${current} and bad is [${bad}]: ${JSON.stringify(state.decision)}; at the kill ${JSON.stringify(atKill)}`);
      if (existsSync(join(h.root, 'previous')) && readlinkSync(join(h.root, 'previous')).includes('v2.0.0')) out.push('previous names the failed release');
      break;
    case 'pass':
      if (failing) out.push('a failing probe passed the gate');
      if (current !== state.dir || bad.includes('v2.0.0')) out.push(`passed, yet current is ${current} and bad is [${bad}]`);
      break;
    case 'superseded':
      if (current !== 'v1.0.0' || bad.includes('v2.0.0')) out.push(`ended undecided, yet current is ${current} and bad is [${bad}]`);
      break;
  }
  // One run decides, unless no round had seen the failing probe fail before the kill.
  const sawFailure = atKill?.probes?.some((p: any) => p.name === 'probe script' && p.status === 'fail');
  const limit = failing && atKill && !atKill.decision && !sawFailure ? 2 : 1;
  if (recovery.runs > limit) out.push(`${recovery.runs} check-health runs to decide (at most ${limit})`);
  return out;
}

test(
  `${KILLS}+ SIGKILLs of install --wait and check-health at random moments: the next check-health decides, once, and the invariants hold`,
  async () => {
    // How long each run takes unkilled, to spread the kills over its whole length.
    const calibInstall = freshHost(false);
    let started = performance.now();
    expect((await install(calibInstall, 'v2.0.0', GATE)).code).toBe(0);
    const installMs = performance.now() - started;
    const calib = freshHost(false);
    started = performance.now();
    expect((await install(calib, 'v2.0.0', [...GATE, '--wait'])).code).toBe(0);
    const installWaitMs = performance.now() - started;
    const calibFail = freshHost(true);
    expect((await install(calibFail, 'v2.0.0', GATE)).code).toBe(0);
    await checkHealthJson(calibFail);
    await waitFor('the grace', () => Date.now() > dueAt(gateJson(calibFail)) + 50, 10_000);
    started = performance.now();
    await checkHealthJson(calibFail);
    const decideMs = performance.now() - started;
    expect(gateJson(calibFail).decision).toMatchObject({ outcome: 'fail', complete: true });

    const phases = new Map<string, number>();
    const failures: string[] = [];
    let kills = 0;
    let runs = 0;
    while (kills < KILLS && runs < MAX_RUNS) {
      runs += 1;
      const failing = runs % 2 === 1;
      const h = freshHost(failing);
      const viaInstall = runs % 4 < 2;
      let killed: boolean;
      if (viaInstall) {
        // Half the kills within the install itself (fetch to switch), half anywhere up to the verdict.
        const span = runs % 8 < 2 ? installMs : installWaitMs * 1.1;
        ({ killed } = await runAndKill(installArgs(h, 'v2.0.0', [...GATE, '--wait']), h.env, Math.random() * span));
      } else {
        // The trial is on and its decision due; the check-health that decides it is killed.
        expect((await install(h, 'v2.0.0', GATE)).code).toBe(0);
        if (failing) await checkHealthJson(h);
        await waitFor('the decision to be due', () => Date.now() > dueAt(gateJson(h)) + 50, 10_000);
        // The report comes first and the advance last: the kills lean towards the end, where the decision is.
        ({ killed } = await runAndKill(checkHealthArgs(h), h.env, decideMs * (0.6 + Math.random() * 0.45)));
      }
      if (!killed) continue;
      kills += 1;
      const atKill = gateJson(h);
      const phase = `${viaInstall ? 'install --wait' : 'check-health'}: ${phaseOf(h)}`;
      phases.set(phase, (phases.get(phase) ?? 0) + 1);
      const recovery = await recover(h);
      for (const problem of broken(h, failing, atKill, recovery)) failures.push(`kill ${kills} (${phase}, probe ${failing ? 'failing' : 'passing'}): ${problem}`);
      if (failures.length === 0) removeDir(h.root);
    }
    console.log(`${kills} kills in ${runs} runs (install ${Math.round(installMs)} ms, install --wait ${Math.round(installWaitMs)} ms, a deciding check-health ${Math.round(decideMs)} ms unkilled); where they landed:\n${[...phases].sort().map(([p, n]) => `  ${p}: ${n}`).join('\n')}`);
    expect(failures).toEqual([]);
    expect(kills).toBeGreaterThanOrEqual(KILLS);
    // The kills reached both the trial and its decision.
    expect([...phases.keys()].some((p) => p.includes('on trial'))).toBe(true);
    expect([...phases.keys()].some((p) => /: decid/.test(p))).toBe(true);
  },
  900_000,
);
