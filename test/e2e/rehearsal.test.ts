/**
 * The release rehearsal (scripts/rehearse.ts) run as a developer runs it, in a
 * process of its own with its own registry, dockerd and release server: the
 * workflow's nine steps for three releases, then install, status, check-health,
 * rollback and prune as an operator. The script keeps the install root where the
 * test says, so the links and the pruned folders are checked here, by this test.
 *
 * The agents each release ships are small stand-ins (the real ones are 114 MB
 * each and would triple the time); the operator's steps run dist/containai-host.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { RehearsalReport } from '../../scripts/rehearse.ts';
import { baseEnv, removeDir, REPO_ROOT, tempDir } from '../helpers/cli.ts';
import { fakeAgents } from '../helpers/release.ts';

const SCRIPT = join(REPO_ROOT, 'scripts', 'rehearse.ts');
const VERSIONS = ['v1.0.0', 'v2.0.0', 'v3.0.0'];

const dirs: string[] = [];
afterAll(() => dirs.forEach(removeDir));

async function rehearse(args: string[]): Promise<{ code: number; report: RehearsalReport; stderr: string }> {
  const proc = Bun.spawn([process.execPath, SCRIPT, '--no-build', '--json', ...args], {
    cwd: REPO_ROOT,
    env: baseEnv(),
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
  });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  let report: RehearsalReport;
  try {
    report = JSON.parse(stdout) as RehearsalReport;
  } catch {
    throw new Error(`the rehearsal printed no JSON report (exit ${code}):\n${stderr}`);
  }
  return { code, report, stderr };
}

/** The services' and the work folders: all removed, which also means dockerd and the registry exited (their folders go after they do). */
function expectCleanedUp(report: RehearsalReport): void {
  expect(report.tempDirs.length).toBeGreaterThanOrEqual(3);
  for (const d of report.tempDirs) expect(existsSync(d), d).toBe(false);
}

describe('scripts/rehearse.ts', () => {
  test('plays the workflow three times and the operator path; links, pruned folders and registry digests as expected', async () => {
    const work = tempDir('cai-rehearsal-test-');
    dirs.push(work);
    const root = join(work, 'root');
    const { code, report, stderr } = await rehearse(['--keep-root', root, '--agent-dir', fakeAgents(work)]);
    expect(report.error, stderr).toBeUndefined();
    expect(code).toBe(0);
    expect(report.ok).toBe(true);
    expect(report.seconds).toBeLessThan(60);

    // The nine numbered steps of the workflow, in order, for each release; then the operator's.
    const ids = report.steps.map((s) => s.id);
    for (const v of VERSIONS) {
      const mine = ids.filter((id) => id.startsWith(`${v} `));
      expect(mine).toEqual([1, 2, 3, 4, 5, 6, 7].map((n) => `${v} ${n}/9`).concat([`${v} verify`, `${v} 8/9`, `${v} 9/9`]));
    }
    const hostSteps = report.steps.filter((s) => s.id.startsWith('host ')).map((s) => s.title.split(' ').slice(0, 2).join(' '));
    expect(hostSteps).toEqual([
      'containai-host install', 'containai-host status', 'containai-host check-health', 'containai-host install',
      'containai-host rollback', 'containai-host prune', 'containai-host install', 'containai-host prune', 'containai-host status',
    ]);
    expect(report.steps.every((s) => s.ok)).toBe(true);
    expect(stderr).toContain('[v1.0.0 5/9] package --version v1.0.0 with SOURCE_DATE_EPOCH=');
    expect(stderr).toContain('stand-in syft');

    // Every artifact was checked by the system's tools and the registry's API.
    for (const line of ['tar -tzf payload.tar.gz', 'sha256sum -c payload.sha256: payload.tar.gz OK', 'sha256sum -c SHA256SUMS in the unpacked payload', 'tar -tzf bundle: SHA256SUMS, attestation.intoto.jsonl, payload.sha256, payload.tar.gz, cosign']) {
      expect(stderr).toContain(`check: ${line}`);
    }
    expect(report.releases.map((r) => r.version)).toEqual(VERSIONS);
    for (const release of report.releases) {
      expect(release.bundleMembers).toEqual(['SHA256SUMS', 'attestation.intoto.jsonl', 'payload.sha256', 'payload.tar.gz', 'cosign']);
      expect(release.payloadFiles).toBeGreaterThan(3);
      expect(release.images.map((i) => i.name)).toContain('proxy');
      for (const image of release.images) {
        expect(image.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
        expect(image.registryDigest).toBe(image.digest);
        expect(image.manifestSha256).toBe(image.digest);
        expect(image.reference).toMatch(new RegExp(`^127\\.0\\.0\\.1:\\d+/acme/containai-${image.name}:${release.version.replace(/\./g, '\\.')}$`));
      }
    }

    // Health, online: the registry check asked the rehearsal registry over loopback http.
    expect(report.health?.exitCode).toBe(0);
    const health = Object.fromEntries((report.health?.checks ?? []).map((c) => [c.id, c.status]));
    expect(health).toMatchObject({ release: 'pass', registry: 'pass' });
    expect(['pass', 'warn']).toContain(health.engine ?? 'missing');

    // Rollback put v1 back; prune kept current and previous, then removed v2 once v3 replaced both links.
    expect(report.links.afterInstallV2).toEqual({ current: 'releases/v2.0.0', previous: 'releases/v1.0.0' });
    expect(report.links.afterRollback).toEqual({ current: 'releases/v1.0.0', previous: 'releases/v2.0.0' });
    expect(report.pruned).toEqual({ afterRollback: [], afterV3: ['v2.0.0'] });
    expect(readlinkSync(join(root, 'current'))).toBe('releases/v3.0.0');
    expect(readlinkSync(join(root, 'previous'))).toBe('releases/v1.0.0');
    expect(readdirSync(join(root, 'releases')).sort()).toEqual(['v1.0.0', 'v3.0.0']);
    for (const v of ['v1.0.0', 'v3.0.0']) {
      const sums = Bun.spawnSync(['sha256sum', '--strict', '-c', 'SHA256SUMS'], { cwd: join(root, 'releases', v) });
      expect(sums.exitCode, sums.stderr.toString()).toBe(0);
      // Kept: the attestation that verified the manifest, and install.json naming that manifest; no bundle.
      expect(readdirSync(join(root, 'releases', v, '.containai')).sort()).toEqual(['attestation.intoto.jsonl', 'install.json']);
      const record = JSON.parse(readFileSync(join(root, 'releases', v, '.containai', 'install.json'), 'utf8'));
      expect(record).toMatchObject({ format: 2, version: v, manifestSha256: report.releases.find((r) => r.version === v)?.sumsSha256 });
      expect(existsSync(join(root, 'releases', v, `containai-${v}.tar.gz`))).toBe(false);
    }

    // The registry password (services.ts makes pw-<uuid>) travelled only in GHCR_PAT.
    expect(stderr).not.toMatch(/pw-[0-9a-f]{8}-/);
    expectCleanedUp(report);
  }, 90_000);

  test('a failing step stops the rehearsal with exit 1, names the step, and still stops the services and removes the folders', async () => {
    // An agent folder without the agents: package refuses at step 5.
    const { code, report, stderr } = await rehearse(['--agent-dir', tempDir('cai-rehearsal-missing-')]);
    expect(code).toBe(1);
    expect(report.ok).toBe(false);
    expect(report.failedStep).toStartWith('v1.0.0 5/9 package');
    expect(stderr).toContain('rehearsal FAILED at step "v1.0.0 5/9 package');
    expect(report.error).toContain('containai-build package exited 1');
    expectCleanedUp(report);
  }, 60_000);
});
