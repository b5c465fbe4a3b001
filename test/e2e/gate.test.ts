/**
 * containai-host gate status|pass|fail and check-health --metrics-file, run
 * as a user would (the compiled binary, a clean environment) on install roots
 * whose trial was started with lib/gate as install will start it. The
 * install --gate --wait tests are in gate-install.test.ts.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { existsSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { advanceTrial, type GateDeps } from '../../lib/gate/trial.ts';
import { expectNoStack, host, removeDir, tempDir } from '../helpers/cli.ts';
import { gateEvents, makeGateRoot, putOnTrial, type GateRoot } from '../helpers/gate.ts';
import { requireService } from '../helpers/services.ts';

const made: string[] = [];
afterAll(() => made.forEach(removeDir));

async function onTrial(options: { failing?: boolean } = {}): Promise<GateRoot> {
  const g = await makeGateRoot();
  made.push(g.root);
  const deps: GateDeps = { by: 'install', healthChecks: [], operatorDir: g.operatorDir };
  await putOnTrial(g, 10 * 60_000, deps);
  if (options.failing) g.setProbeExit(4);
  await advanceTrial(g.layout, deps);
  return g;
}

const files = (g: GateRoot) => Object.fromEntries(['gate.json', 'bad.json', 'events.jsonl'].map((f) => [f, existsSync(join(g.root, 'state', f)) ? readFileSync(join(g.root, 'state', f), 'utf8') : undefined]));

describe('containai-host gate status', () => {
  test('with no trial ever: says so, exit 0', async () => {
    const root = tempDir('cai-gate-e2e-');
    made.push(root);
    const r = await host(['gate', 'status', '--install-root', root]);
    expect(r).toMatchObject({ code: 0, stdout: 'gate: no release has been on trial here\n', stderr: '' });
  });

  test('on trial: the release, its deadline and each probe on stdout; --json is one document', async () => {
    const g = await onTrial({ failing: true });
    const r = await host(['gate', 'status', '--install-root', g.root]);
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^gate: v2 is on trial until \S+Z \((9|10)min( \d+s)? left\); 1 failing: "probe script" since \S+Z$/);
    expect(lines[1]).toBe('  previous: v1 (where a failure rolls back to)');
    expect(lines[2]).toMatch(/^ {2}FAIL {2}probe script {2}exit 4: probe says no \(4\) \(failing since \S+, grace 2s\)$/);
    const json = await host(['gate', 'status', '--json', '--install-root', g.root]);
    const doc = JSON.parse(json.stdout);
    expect(doc).toMatchObject({ ok: true, state: 'on-trial', version: 'v2', previous: 'v1', bad: [] });
    expect(doc.probes[0]).toMatchObject({ name: 'probe script', status: 'fail', failures: 1 });
    expect(json.stderr).toContain('gate: v2 is on trial');
  });

  test('a damaged gate.json: exit 1 with what to do, and it is left as it is', async () => {
    const g = await onTrial();
    writeFileSync(join(g.root, 'state', 'gate.json'), '{"format": 1, "trialId": "zz"}');
    const r = await host(['gate', 'status', '--install-root', g.root]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`error: ${join(g.root, 'state', 'gate.json')} is damaged: trialId: `);
    expect(r.stderr).toContain('hint: look at state/gate.json');
    expectNoStack(r.stderr);
    expect(readFileSync(join(g.root, 'state', 'gate.json'), 'utf8')).toBe('{"format": 1, "trialId": "zz"}');
  });
});

describe('containai-host gate pass|fail', () => {
  test('gate fail --reason: previous verified and current again, the version refused with the reason, one event', async () => {
    const g = await onTrial();
    const r = await host(['gate', 'fail', '--reason', 'proxy drops connections', '--allow-nonroot', '--install-root', g.root]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^v2 failed its health gate at \S+Z: by hand: proxy drops connections; v1 is current again and v2 is on the bad list\n$/);
    expect(readlinkSync(join(g.root, 'current'))).toBe('releases/v1');
    expect(existsSync(join(g.root, 'previous'))).toBe(false);
    const bad = JSON.parse(readFileSync(join(g.root, 'state', 'bad.json'), 'utf8'));
    expect(bad.versions).toEqual([expect.objectContaining({ version: 'v2', reason: 'by hand: proxy drops connections' })]);
    expect(gateEvents(g.root)).toEqual([expect.objectContaining({ version: 'v2', decision: 'fail', by: 'gate fail', rolledBackTo: 'v1' })]);
    const status = await host(['gate', 'status', '--install-root', g.root]);
    expect(status.stdout).toContain('v2 failed its health gate at ');
    expect(status.stdout).toContain('  bad: v2 failed its gate at ');

    // Decided once: a second decision is refused, and nothing moves.
    const before = files(g);
    const again = await host(['gate', 'pass', '--allow-nonroot', '--install-root', g.root, '--json']);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('error: the trial of v2 is already decided (fail at ');
    expect(JSON.parse(again.stdout)).toMatchObject({ ok: false, error: { code: 'STATE' } });
    expectNoStack(again.stderr);
    expect(files(g)).toEqual(before);
    expect(readlinkSync(join(g.root, 'current'))).toBe('releases/v1');
  });

  test('gate pass: the release on trial passes now, --json says so', async () => {
    const g = await onTrial({ failing: true });
    const r = await host(['gate', 'pass', '--allow-nonroot', '--install-root', g.root, '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, status: 'passed', version: 'v2', decision: { outcome: 'pass', by: 'gate pass', reason: 'by hand', complete: true } });
    expect(readlinkSync(join(g.root, 'current'))).toBe('releases/v2');
    expect((await host(['gate', 'status', '--install-root', g.root])).stdout).toStartWith('gate: v2 passed its health gate at ');
  });

  test('gate fail with no previous release: exit 1, the release stays current and off the bad list', async () => {
    const g = await onTrial();
    rmSync(join(g.root, 'previous'));
    rmSync(join(g.root, 'releases', 'v1'), { recursive: true });
    const r = await host(['gate', 'fail', '--allow-nonroot', '--install-root', g.root]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/error: v2 failed its health gate at \S+Z: by hand; it stays current, as it could not be rolled back \(there is no previous release to roll back to\)/);
    expect(readlinkSync(join(g.root, 'current'))).toBe('releases/v2');
    expect(existsSync(join(g.root, 'state', 'bad.json'))).toBe(false);
  });

  test('bad input changes nothing: no trial, a multi-line reason, an unknown word', async () => {
    const root = tempDir('cai-gate-e2e-');
    made.push(root);
    let r = await host(['gate', 'pass', '--allow-nonroot', '--install-root', root]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('error: no release is on trial (there is no state/gate.json)');
    const g = await onTrial();
    const before = files(g);
    r = await host(['gate', 'fail', '--reason', 'line one\nline two', '--allow-nonroot', '--install-root', g.root]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('error: --reason must be one line of at most 500 characters');
    r = await host(['gate', 'decide', '--install-root', g.root]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('expected one of status, pass, fail');
    expect(files(g)).toEqual(before);
    expect(readlinkSync(join(g.root, 'current'))).toBe('releases/v2');
  });
});

describe('check-health --metrics-file', () => {
  test('writes the report as textfile metrics promtool accepts, with the gate check, even when unhealthy', async () => {
    const g = await onTrial({ failing: true });
    const dir = tempDir('cai-gate-metrics-');
    made.push(dir);
    const path = join(dir, 'containai.prom');
    // No engine answers here: the report is unhealthy, and the file is written all the same.
    const r = await host(['check-health', '--offline', '--install-root', g.root, '--metrics-file', path], { env: { DOCKER_HOST: `unix://${join(dir, 'none.sock')}` } });
    expect(r.code).toBe(1);
    // The report is the result a person asked for: on stdout.
    expect(r.stdout).toMatch(/(^|\n)WARN {2}gate +v2 is on trial until /);
    const text = readFileSync(path, 'utf8');
    const lint = Bun.spawnSync([requireService('promtool', 'prometheus'), 'check', 'metrics'], { stdin: new TextEncoder().encode(text), stderr: 'pipe', stdout: 'pipe' });
    expect({ code: lint.exitCode, out: `${lint.stdout}${lint.stderr}` }).toEqual({ code: 0, out: '' });
    expect(text).toContain('containai_health_check_status{check="gate",status="warn"} 1\n');
    expect(text).toContain('containai_health_check_status{check="engine",status="fail"} 1\n');
    expect(text).toContain('containai_gate_state{state="on-trial"} 1\n');
    expect(text).toContain('containai_healthy 0\n');
    expect(text).toMatch(/\ncontainai_release_info\{version="v2",signer="[^"]+"\} 1\n/);
  });

  test('a metrics folder that does not exist: exit 1 naming the file, no stack', async () => {
    const g = await onTrial();
    const path = join(g.root, 'no-such-folder', 'containai.prom');
    const r = await host(['check-health', '--offline', '--install-root', g.root, '--metrics-file', path]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`error: cannot write the metrics file ${path}: ENOENT`);
    expectNoStack(r.stderr);
  });
});
