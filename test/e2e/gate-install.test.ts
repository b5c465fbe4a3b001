/**
 * The health gate wired into the product (issue 13, stage 2), through the
 * compiled binary: `install --gate SPAN --wait`, the bad list refused until
 * --force, check-health deciding a trial, probe files refused before
 * activation, --no-gate. Real parts: signed releases crafted byte by byte
 * with host/health.d/*.json (test/helpers/gate-host.ts), a real dockerd for
 * the engine every trial probes (health:engine).
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { baseEnv, binaryPath, expectNoStack, host, removeDir } from '../helpers/cli.ts';
import {
  badVersions,
  checkHealth,
  currentOf,
  EXEC_PROBE,
  gateEventsOf,
  gateJson,
  type GateHost,
  gateRelease,
  install,
  installArgs,
  makeGateHost,
  probeFile,
  setProbeExit,
  snapshot,
} from '../helpers/gate-host.ts';
import { requireService, startDockerd, waitFor } from '../helpers/services.ts';

const made: string[] = [];
afterAll(() => made.forEach(removeDir));
let dockerHost: string;

beforeAll(async () => {
  dockerHost = (await startDockerd()).dockerHost;
});

/** v1 installed without a gate, current; v2 crafted with the probes given. */
async function hostWithV1(v2: Parameters<typeof gateRelease>[2] = { probes: { 'probe.json': EXEC_PROBE() } }): Promise<GateHost> {
  const h = makeGateHost({ DOCKER_HOST: dockerHost });
  made.push(h.dir);
  gateRelease(h, 'v1.0.0');
  gateRelease(h, 'v2.0.0', v2);
  const r = await install(h, 'v1.0.0', ['--no-gate']);
  expect(r).toMatchObject({ code: 0 });
  expect(currentOf(h)).toBe('v1.0.0');
  return h;
}

describe('install --gate --wait', () => {
  test('a failing exec probe: v1 is current again, v2 is on the bad list, install exits 1 naming the probe; v2 is refused with the reason until --force', async () => {
    const h = await hostWithV1();
    setProbeExit(h, 7);
    const r = await install(h, 'v2.0.0', ['--gate', '5s', '--wait']);
    expect(r.code).toBe(1);
    expectNoStack(r.stderr);
    expect(r.stdout).toContain('v2.0.0 is current (releases/v2.0.0');
    expect(r.stdout).toMatch(/v2\.0\.0 is on trial until \S+Z \(4 probes, 1 from probe files\)\n/);
    expect(r.stderr).toMatch(/warning: probe "probe script" fails: exit 7: probe says no \(7\)/);
    expect(r.stderr).toMatch(/error: v2\.0\.0 failed its health gate at \S+Z: probe "probe script" failed for \d+s \(grace 1s\): exit 7: probe says no \(7\); v1\.0\.0 is current again and v2\.0\.0 is on the bad list\n/);
    expect(r.stderr).toContain('hint: install refuses v2.0.0 until --force');
    expect(currentOf(h)).toBe('v1.0.0');
    expect(existsSync(join(h.root, 'previous'))).toBe(false);
    expect(badVersions(h)).toEqual(['v2.0.0']);
    expect(gateEventsOf(h)).toEqual([expect.objectContaining({ version: 'v2.0.0', decision: 'fail', by: 'install --wait', probe: 'probe script', rolledBackTo: 'v1.0.0' })]);

    // Refused again, with when and why, and nothing changes.
    const before = snapshot(h);
    const again = await install(h, 'v2.0.0', ['--gate', '5s', '--wait']);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/error: refusing v2\.0\.0: v2\.0\.0 failed its health gate at \S+Z: probe "probe script" failed for \d+s \(grace 1s\): exit 7: probe says no \(7\)\n/);
    expect(again.stderr).toContain('--force');
    expectNoStack(again.stderr);
    expect(snapshot(h)).toEqual(before);

    // --force takes it again: off the bad list, on trial again; fixed, it passes.
    setProbeExit(h, 0);
    const forced = await install(h, 'v2.0.0', ['--gate', '2s', '--wait', '--force', '--json']);
    expect(forced.code).toBe(0);
    const doc = JSON.parse(forced.stdout);
    expect(doc).toMatchObject({ ok: true, outcome: 'installed', version: 'v2.0.0', gate: { status: 'passed', decision: { outcome: 'pass', by: 'install --wait' } } });
    expect(currentOf(h)).toMatch(/^v2\.0\.0/);
    expect(badVersions(h)).toEqual([]);
    expect(gateEventsOf(h).map((e) => e.decision)).toEqual(['fail', 'pass']);
  });

  test('passing probes: the gate passes at the end of the window, and gate status says so', async () => {
    const h = await hostWithV1();
    const started = Date.now();
    const r = await install(h, 'v2.0.0', ['--gate', '3s', '--wait']);
    expect({ code: r.code, stderr: r.stderr }).toMatchObject({ code: 0 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(3000);
    expect(r.stdout).toMatch(/\nv2\.0\.0 passed its health gate at \S+Z: 4 probes passed through the 3s window\n$/);
    // Not a terminal: no status line redrawn.
    expect(r.stderr).not.toContain('\r');
    const state = gateJson(h);
    expect(Date.parse(state.decision.at)).toBeGreaterThanOrEqual(Date.parse(state.deadline));
    expect(state.probes.map((p: { name: string; status: string; failures: number }) => [p.name, p.status, p.failures])).toEqual([
      ['health:engine', 'pass', 0],
      ['health:release', 'pass', 0],
      ['health:profile', 'pass', 0],
      ['probe script', 'pass', 0],
    ]);
    expect(currentOf(h)).toBe('v2.0.0');
    const status = await host(['gate', 'status', '--install-root', h.root]);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(/^gate: v2\.0\.0 passed its health gate at \S+Z: 4 probes passed through the 3s window\n/);
    expect(status.stdout).toContain('  ok    probe script    exit 0\n');
  });

  test('a probe that fails once and passes within its grace: the gate passes, no rollback', async () => {
    const h = await hostWithV1({ probes: { 'flaky.json': probeFile({ name: 'warming up', kind: 'exec', argv: ['host/bin/flaky.sh'], grace: '3s' }) } });
    const r = await install(h, 'v2.0.0', ['--gate', '3s', '--wait']);
    expect({ code: r.code, stderr: r.stderr }).toMatchObject({ code: 0 });
    expect(r.stderr).toContain('warning: probe "warming up" fails: exit 1: not ready yet (run 1)');
    expect(r.stderr).toContain('probe "warming up" passes again');
    const flaky = gateJson(h).probes.find((p: { name: string }) => p.name === 'warming up');
    expect(flaky).toMatchObject({ status: 'pass', failures: 1 });
    expect(flaky.firstFailureAt).toBeString();
    expect(gateJson(h).decision).toMatchObject({ outcome: 'pass' });
    expect(currentOf(h)).toBe('v2.0.0');
    expect(existsSync(join(h.root, 'previous'))).toBe(true);
    expect(badVersions(h)).toEqual([]);
  });

  test('without --wait, check-health (the timer) advances and decides the trial, and says so', async () => {
    const h = await hostWithV1();
    const r = await install(h, 'v2.0.0', ['--gate', '2s']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(': check-health decides it, or containai-host gate pass|fail\n');
    const deadline = Date.parse(gateJson(h).deadline);
    setProbeExit(h, 3);
    const first = await checkHealth(h, ['--json']);
    const gate = (doc: string) => JSON.parse(doc).checks.find((c: { id: string }) => c.id === 'gate');
    expect(gate(first.stdout)).toMatchObject({ status: 'warn', details: { state: 'on-trial', advanced: true, decidedNow: false } });
    expect(gate(first.stdout).message).toContain('1 failing: "probe script"');
    // The probe recovers; past the deadline, the next run passes the gate.
    setProbeExit(h, 0);
    await waitFor('the trial deadline', () => Date.now() > deadline);
    const second = await checkHealth(h, ['--json']);
    expect(gate(second.stdout)).toMatchObject({ status: 'pass', details: { state: 'passed', decidedNow: true } });
    expect(gate(second.stdout).message).toStartWith('decided by this run: v2.0.0 passed its health gate at ');
    expect(gateEventsOf(h)).toEqual([expect.objectContaining({ decision: 'pass', by: 'check-health' })]);
    // Decided once: the run after changes nothing.
    const before = snapshot(h);
    const third = await checkHealth(h, ['--json']);
    expect(gate(third.stdout).details).toMatchObject({ state: 'passed' });
    expect(gate(third.stdout).details.decidedNow).toBeUndefined();
    expect(snapshot(h)).toEqual(before);
    expect(gateEventsOf(h)).toHaveLength(1);
  });

  test('check-health rolls a failing release back, and its report is of the release now current', async () => {
    const h = await hostWithV1();
    expect((await install(h, 'v2.0.0', ['--gate', '10s'])).code).toBe(0);
    setProbeExit(h, 9);
    await checkHealth(h);
    const since = Date.parse(gateJson(h).probes.find((p: { name: string }) => p.name === 'probe script').failingSince);
    await waitFor('the probe grace to run out', () => Date.now() > since + 1000);
    const r = await checkHealth(h, ['--json']);
    const doc = JSON.parse(r.stdout);
    expect(doc.checks.find((c: { id: string }) => c.id === 'gate')).toMatchObject({ status: 'warn', details: { state: 'failed' } });
    expect(doc.checks.find((c: { id: string }) => c.id === 'release').message).toContain('v1.0.0');
    expect(currentOf(h)).toBe('v1.0.0');
    expect(badVersions(h)).toEqual(['v2.0.0']);
  });
});

test('on a terminal, --wait redraws one status line while the trial runs', async () => {
  const h = await hostWithV1();
  const quoted = [binaryPath('containai-host'), ...installArgs(h, 'v2.0.0', ['--gate', '2s', '--wait'])].map((a) => `'${a}'`).join(' ');
  // script(1) gives the binary a terminal for stderr, as a person's shell would.
  const r = Bun.spawnSync([requireService('script', 'bsdutils'), '-qec', quoted, '/dev/null'], { env: { ...baseEnv(), ...h.env, TERM: 'dumb', COLUMNS: '200' }, stdout: 'pipe', stderr: 'pipe' });
  const out = r.stdout.toString();
  expect(r.exitCode).toBe(0);
  expect(out).toMatch(/\r\u001b\[Kgate: v2\.0\.0 on trial, \d+(ms|s) left; 4 of 4 probes passing/);
  expect(out).toContain('v2.0.0 passed its health gate at ');
});

describe('probe files are refused before activation, the file and field named, nothing changed', () => {
  const cases: Array<[string, Record<string, string>, RegExp]> = [
    ['a shell string where argv belongs', { 'proxy.json': probeFile({ name: 'p', kind: 'exec', argv: 'curl -fsS http://127.0.0.1/ || exit 1' }) }, /host\/health\.d\/proxy\.json: argv: must be a list of words, not a shell command line/],
    ['a relative argv[0] that leaves the release', { 'esc.json': probeFile({ name: 'p', kind: 'exec', argv: ['../../../../bin/sh', '-c', 'true'] }) }, /host\/health\.d\/esc\.json: argv\[0\]: "\.\.\/\.\.\/\.\.\/\.\.\/bin\/sh" leaves the release folder/],
    ['a timeout longer than the gate', { 'slow.json': probeFile({ name: 'p', kind: 'exec', argv: ['/bin/true'], timeout: '1h' }) }, /host\/health\.d\/slow\.json: timeout: 1h is longer than the gate \(5s\)/],
    ['an unknown kind', { 'k.json': probeFile({ name: 'p', kind: 'shell', argv: ['/bin/true'] }) }, /host\/health\.d\/k\.json: kind: unknown kind "shell" \(one of exec, http, systemd, containers\)/],
    ['an unknown field', { 'f.json': probeFile({ name: 'p', kind: 'exec', argv: ['/bin/true'], env: { LD_PRELOAD: '/tmp/x.so' } }) }, /host\/health\.d\/f\.json: env: unknown field for kind exec/],
    ['not JSON', { 'j.json': '{"name": "p", kind: exec}' }, /host\/health\.d\/j\.json: \(file\): is not valid JSON/],
  ];
  for (const [what, probes, expected] of cases) {
    test(what, async () => {
      const h = await hostWithV1({ probes });
      const before = snapshot(h);
      const r = await install(h, 'v2.0.0', ['--gate', '5s', '--wait']);
      expect(r.code).toBe(1);
      expectNoStack(r.stderr);
      expect(r.stderr).toMatch(/error: v2\.0\.0: refusing the health probes \(1 problem\): /);
      expect(r.stderr).toMatch(expected);
      expect(r.stderr).toContain('nothing was activated (current is unchanged)');
      expect(snapshot(h)).toEqual(before);
      expect(readdirSync(join(h.root, 'releases'))).toEqual(['v1.0.0']);
      // --no-gate reads no probe file: today's behaviour.
      const plain = await install(h, 'v2.0.0', ['--no-gate']);
      expect(plain.code).toBe(0);
      expect(currentOf(h)).toBe('v2.0.0');
      expect(existsSync(join(h.root, 'state', 'gate.json'))).toBe(false);
    });
  }

  test("a broken probe file of the operator's is refused the same way", async () => {
    const h = await hostWithV1();
    writeFileSync(join(h.operatorDir, 'mine.json'), probeFile({ name: 'mine', kind: 'http', url: 'http://127.0.0.1:1/', status: 700 }));
    const before = snapshot(h);
    const r = await install(h, 'v2.0.0', ['--gate', '5s']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${join(h.operatorDir, 'mine.json')}: status:`);
    expect(snapshot(h)).toEqual(before);
  });
});

describe('flags', () => {
  test('--no-gate keeps the old behaviour; bad gate flags are usage errors that change nothing', async () => {
    const h = await hostWithV1();
    const before = snapshot(h);
    for (const [args, message] of [
      [['--gate', '5s', '--no-gate'], 'give --gate SPAN or --no-gate, not both'],
      [['--no-gate', '--wait'], '--wait waits for the health gate, and --no-gate turns it off'],
      [['--gate', '0s'], '--gate "0s" must be a time span from 1s to 24h'],
      [['--gate', 'soon'], '--gate "soon" must be a time span from 1s to 24h'],
      [['--gate', '2d'], '--gate "2d" must be a time span from 1s to 24h'],
    ] as const) {
      const r = await install(h, 'v2.0.0', [...args]);
      expect({ args, code: r.code, error: r.stderr.split('\n').find((l) => l.startsWith('error:')) }).toEqual({ args, code: 2, error: `error: ${message}${message.startsWith('--gate "') ? ', such as 10min' : ''}` });
      expect(snapshot(h)).toEqual(before);
    }
    const r = await install(h, 'v2.0.0', ['--no-gate', '--json']);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, gate: { status: 'off' } });
    expect(existsSync(join(h.root, 'state', 'gate.json'))).toBe(false);
  });

  test('the default gate is 10 minutes; a second install supersedes the trial, and --wait on the current version waits on its trial', async () => {
    const h = await hostWithV1();
    gateRelease(h, 'v3.0.0', { probes: { 'probe.json': EXEC_PROBE() } });
    const r = await install(h, 'v2.0.0', ['--json']);
    const doc = JSON.parse(r.stdout);
    expect(doc.gate).toMatchObject({ status: 'on-trial' });
    const state = gateJson(h);
    expect(Date.parse(state.deadline) - Date.parse(state.start)).toBe(10 * 60_000);
    expect(state).toMatchObject({ version: 'v2.0.0', previous: { version: 'v1.0.0' }, operatorDir: h.operatorDir });
    // v3 during v2's trial: v2's trial ends undecided (neither passed nor bad), v3 rolls back to v2 if it fails.
    expect((await install(h, 'v3.0.0', ['--gate', '5min'])).code).toBe(0);
    expect(gateEventsOf(h)).toEqual([expect.objectContaining({ version: 'v2.0.0', decision: 'superseded', by: 'install' })]);
    expect(gateJson(h)).toMatchObject({ version: 'v3.0.0', previous: { version: 'v2.0.0' } });
    expect(badVersions(h)).toEqual([]);
    // Ended by hand while install --wait waits on it: the wait ends with the decision.
    const waiting = install(h, 'v3.0.0', ['--wait']);
    await waitFor('the waiting install to run a round', () => gateJson(h).rounds > 0);
    expect((await host(['gate', 'pass', '--reason', 'looked fine', '--allow-nonroot', '--install-root', h.root])).code).toBe(0);
    const waited = await waiting;
    expect(waited.code).toBe(0);
    expect(waited.stdout).toContain('v3.0.0 is already current');
    expect(waited.stdout).toMatch(/v3\.0\.0 passed its health gate at \S+Z: by hand: looked fine\n$/);
  });
});

describe('check-health --metrics-file after a decided gate', () => {
  test('promtool accepts the file, it carries the decision, and a reader never sees it half-written', async () => {
    const h = await hostWithV1();
    setProbeExit(h, 5);
    expect((await install(h, 'v2.0.0', ['--gate', '5s', '--wait'])).code).toBe(1);
    const path = join(h.dir, 'containai.prom');
    const r = await checkHealth(h, ['--metrics-file', path]);
    expectNoStack(r.stderr);
    const text = readFileSync(path, 'utf8');
    const { requireService } = await import('../helpers/services.ts');
    const lint = Bun.spawnSync([requireService('promtool', 'prometheus'), 'check', 'metrics'], { stdin: new TextEncoder().encode(text), stdout: 'pipe', stderr: 'pipe' });
    expect({ code: lint.exitCode, out: `${lint.stdout}${lint.stderr}` }).toEqual({ code: 0, out: '' });
    expect(text).toContain('containai_gate_state{state="failed"} 1\n');
    expect(text).toContain('containai_bad_version_info{version="v2.0.0"} 1\n');
    expect(text).toContain('containai_rollbacks_total 1\n');
    expect(text).toContain('containai_health_check_status{check="gate",status="warn"} 1\n');
    expect(text).toMatch(/\ncontainai_release_info\{version="v1\.0\.0",signer="[^"]+"\} 1\n/);

    // A reader in another process reads the file over and over while check-health rewrites it.
    const reader = Bun.spawn(
      [process.execPath, '-e', `const fs=require('node:fs');let n=0,bad=0;const end=Date.now()+60000;const p=process.argv[1];while(!fs.existsSync(p+'.stop')&&Date.now()<end){const t=fs.readFileSync(p,'utf8');n++;if(!t.startsWith('# HELP containai_healthy ')||!t.endsWith('\\n')||!t.includes('# TYPE containai_bad_version_info gauge'))bad++;}console.log(JSON.stringify({n,bad}))`, path],
      { stdout: 'pipe', stderr: 'pipe' },
    );
    for (let i = 0; i < 8; i++) await checkHealth(h, ['--metrics-file', path]);
    writeFileSync(`${path}.stop`, '');
    const seen = JSON.parse(await new Response(reader.stdout).text());
    expect(seen.n).toBeGreaterThan(8);
    expect(seen.bad).toBe(0);
    expect(readdirSync(h.dir).filter((n) => n.includes('.tmp'))).toEqual([]);
  });
});
