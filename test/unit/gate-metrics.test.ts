/**
 * check-health --metrics-file: node_exporter textfile metrics that promtool
 * (Debian's prometheus package, the format's reference checker) accepts, and
 * that a reader never sees half-written: a reader in another process reads
 * the file in a loop while it is replaced hundreds of times.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { readdirSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { appendEvent } from '../../lib/release/events.ts';
import { writeBadList } from '../../lib/gate/state.ts';
import { advanceTrial } from '../../lib/gate/trial.ts';
import { formatMetrics, writeHealthMetrics } from '../../lib/health/metrics.ts';
import { gateReport } from '../../lib/gate/report.ts';
import type { HealthReport } from '../../lib/health/types.ts';
import { removeDir, tempDir } from '../helpers/cli.ts';
import { makeGateRoot, putOnTrial } from '../helpers/gate.ts';
import { requireService } from '../helpers/services.ts';

const made: string[] = [];
afterAll(() => made.forEach(removeDir));

function promtool(text: string): { code: number; out: string } {
  const r = Bun.spawnSync([requireService('promtool', 'prometheus'), 'check', 'metrics'], { stdin: new TextEncoder().encode(text), stdout: 'pipe', stderr: 'pipe' });
  return { code: r.exitCode, out: `${r.stdout.toString()}${r.stderr.toString()}` };
}

function report(installRoot: string, releaseStatus: 'pass' | 'fail'): HealthReport {
  return {
    ok: releaseStatus === 'pass',
    installRoot,
    checks: [
      { id: 'engine', title: 'container engine', status: 'pass', message: 'Docker', durationMs: 4 },
      { id: 'release', title: 'installed release', status: releaseStatus, message: 'v2', durationMs: 30, details: { version: 'v2', signer: 'acme/app/.github/workflows/release.yml@refs/tags/v2 "quoted" \\ back' } },
      { id: 'gate', title: 'health gate', status: 'warn', message: 'on trial', durationMs: 1 },
      { id: 'registry', title: 'registry', status: 'skip', message: 'skipped (--offline)', durationMs: 0 },
    ],
    summary: { pass: releaseStatus === 'pass' ? 2 : 1, warn: 1, fail: releaseStatus === 'pass' ? 0 : 1, skip: 1 },
    durationMs: 40,
  };
}

async function trialRoot() {
  const g = await makeGateRoot();
  made.push(g.root);
  let t = Date.now();
  const deps = { by: 'test', healthChecks: [], operatorDir: g.operatorDir, now: () => t };
  await putOnTrial(g, 60_000, deps);
  g.setProbeExit(1);
  await advanceTrial(g.layout, deps);
  await writeBadList(g.layout, [{ version: 'v0.9 "odd"', at: '2026-11-30T00:00:00.000Z', reason: 'earlier' }]);
  await appendEvent(g.layout, { action: 'rollback', version: 'v1', outcome: 'ok' });
  await appendEvent(g.layout, { action: 'rollback', version: 'v1', outcome: 'refused' });
  await appendEvent(g.layout, { action: 'gate', version: 'v0.9', outcome: 'failed', decision: 'fail', rolledBackTo: 'v0.8' });
  return g;
}

describe('metrics file', () => {
  test('promtool accepts it; it carries release info, each check, the gate, rollbacks and bad versions', async () => {
    const g = await trialRoot();
    const dir = tempDir('cai-metrics-');
    made.push(dir);
    const path = join(dir, 'containai.prom');
    await writeHealthMetrics(path, report(g.root, 'pass'), Date.parse('2026-12-01T10:00:00Z'));
    const text = await Bun.file(path).text();
    const checked = promtool(text);
    expect(checked).toEqual({ code: 0, out: '' });
    expect(text).toContain('containai_release_info{version="v2",signer="acme/app/.github/workflows/release.yml@refs/tags/v2 \\"quoted\\" \\\\ back"} 1\n');
    expect(text).toContain('containai_health_check_status{check="release",status="pass"} 1\n');
    expect(text).toContain('containai_health_check_status{check="release",status="fail"} 0\n');
    expect(text).toContain('containai_health_check_status{check="registry",status="skip"} 1\n');
    expect(text).toContain('containai_gate_state{state="on-trial"} 1\n');
    expect(text).toContain('containai_gate_state{state="passed"} 0\n');
    expect(text).toContain('containai_gate_probe_failing{probe="probe script"} 1\n');
    expect(text).toMatch(/\ncontainai_gate_deadline_timestamp_seconds\{version="v2"\} \d+(\.\d+)?\n/);
    expect(text).toContain('containai_release_last_verified_timestamp_seconds 1796119200\n');
    expect(text).toContain('# TYPE containai_rollbacks_total counter\ncontainai_rollbacks_total 2\n');
    expect(text).toContain('containai_bad_versions 1\n');
    expect(text).toContain('containai_bad_version_info{version="v0.9 \\"odd\\""} 1\n');
    expect(text).toContain('containai_healthy 1\n');
  });

  test('a failing verification keeps the time of the last good one', async () => {
    const g = await trialRoot();
    const dir = tempDir('cai-metrics-');
    made.push(dir);
    const path = join(dir, 'containai.prom');
    await writeHealthMetrics(path, report(g.root, 'pass'), Date.parse('2026-12-01T10:00:00Z'));
    await writeHealthMetrics(path, report(g.root, 'fail'), Date.parse('2026-12-01T10:15:00Z'));
    const text = await Bun.file(path).text();
    expect(text).toContain('containai_release_last_verified_timestamp_seconds 1796119200\n');
    expect(text).toContain('containai_healthy 0\n');
    expect(text).toContain('containai_health_last_run_timestamp_seconds 1796120100\n');
    expect(promtool(text).code).toBe(0);
  });

  test('with no release and no trial it is still valid', async () => {
    const dir = tempDir('cai-metrics-');
    made.push(dir);
    const empty = report(join(dir, 'no-root'), 'fail');
    empty.checks = empty.checks.filter((c) => c.id !== 'release');
    const text = formatMetrics({ report: empty, gate: await gateReport((await import('../../lib/release/layout.ts')).installLayout(join(dir, 'no-root'))), rollbacksTotal: 0, now: 1 });
    expect(promtool(text)).toEqual({ code: 0, out: '' });
    expect(text).toContain('containai_gate_state{state="none"} 1\n');
    expect(text).not.toContain('containai_release_info{');
  });
});

/** A reader in another process: reads path as fast as it can until told to stop, and prints what it saw. */
const READER = `
const path = process.argv[2];
const fs = require('node:fs');
let reads = 0, torn = 0, sample = '';
process.stdout.write('ready\\n');
const stop = fs.existsSync;
for (;;) {
  if (stop(path + '.stop')) break;
  let text;
  try { text = fs.readFileSync(path, 'utf8'); } catch { continue; }
  reads++;
  if (!text.startsWith('# HELP ') || !text.endsWith('\\n') || !text.includes('# TYPE containai_bad_version_info gauge')) { torn++; sample = text.slice(-80); }
}
process.stdout.write(JSON.stringify({ reads, torn, sample }) + '\\n');
`;

async function readWhile(path: string, write: () => Promise<void>): Promise<{ reads: number; torn: number }> {
  const script = join(path, '..', 'reader.js');
  writeFileSync(script, READER);
  const proc = Bun.spawn([process.execPath, script, path], { stdout: 'pipe', stderr: 'inherit' });
  const reader = proc.stdout.getReader();
  let out = '';
  while (!out.includes('ready\n')) out += new TextDecoder().decode((await reader.read()).value);
  await write();
  writeFileSync(`${path}.stop`, '');
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    out += new TextDecoder().decode(value);
  }
  await proc.exited;
  return JSON.parse(out.split('\n').filter(Boolean).at(-1)!);
}

describe('a reader never sees the file half-written', () => {
  test('replaced 300 times under a reader in another process: every read is a whole report, no temp file stays', async () => {
    const g = await trialRoot();
    const dir = tempDir('cai-metrics-');
    made.push(dir);
    const path = join(dir, 'containai.prom');
    await writeHealthMetrics(path, report(g.root, 'pass'));
    const seen = await readWhile(path, async () => {
      for (let i = 0; i < 300; i++) await writeHealthMetrics(path, report(g.root, i % 2 ? 'pass' : 'fail'));
    });
    expect(seen.reads).toBeGreaterThan(300);
    expect(seen.torn).toBe(0);
    expect(readdirSync(dir).sort()).toEqual(['containai.prom', 'containai.prom.stop', 'reader.js']);
  });

  test('the same reader does catch a file rewritten in place (the test can fail)', async () => {
    const dir = tempDir('cai-metrics-');
    made.push(dir);
    const path = join(dir, 'containai.prom');
    const whole = `# HELP x\n${'containai_padding 1\n'.repeat(50_000)}# TYPE containai_bad_version_info gauge\n`;
    writeFileSync(path, whole);
    const seen = await readWhile(path, async () => {
      for (let i = 0; i < 200; i++) {
        // Truncate, then write in pieces: what a writer without the rename does.
        const handle = await open(path, 'w');
        for (let at = 0; at < whole.length; at += 65_536) await handle.write(whole.slice(at, at + 65_536));
        await handle.close();
      }
    });
    expect(seen.torn).toBeGreaterThan(0);
  });
});
