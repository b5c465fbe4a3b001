/** containai-host systemd install|uninstall: units that systemd-analyze accepts, atomic files, commands printed when systemd is not PID 1. */
import { afterAll, describe, expect, test } from 'bun:test';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expectNoStack, host, removeDir, tempDir } from '../helpers/cli.ts';
import { handInstall } from '../helpers/installed-release.ts';
import { requireService } from '../helpers/services.ts';

const dirs: string[] = [];
afterAll(() => dirs.forEach(removeDir));
function dir(prefix: string): string {
  const d = tempDir(prefix);
  dirs.push(d);
  return d;
}

/** An install root whose current/tools/containai-host exists (a stand-in script), so ExecStart names a real executable. */
function rootWithBinary(): string {
  const root = dir('cai-sd-root-');
  handInstall(root);
  return root;
}

async function analyze(unitDir: string, unit: string) {
  const proc = Bun.spawn([requireService('systemd-analyze', 'systemd'), 'verify', join(unitDir, unit)], {
    stdout: 'pipe',
    stderr: 'pipe',
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', SYSTEMD_LOG_LEVEL: 'notice' },
  });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, text: out + err };
}

describe('systemd install', () => {
  test('writes a hardened oneshot service and a timer that systemd-analyze verify accepts', async () => {
    const root = rootWithBinary();
    const unitDir = dir('cai-units-');
    const r = await host(['systemd', 'install', '--unit-dir', unitDir, '--install-root', root, '--interval', '5min', '--json']);
    expectNoStack(r.stderr);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.ran).toBe(false);
    expect(doc.commands).toEqual([['daemon-reload'], ['enable', '--now', 'containai-health.timer']]);
    expect(r.stderr).toContain('systemctl enable --now containai-health.timer');
    const service = readFileSync(join(unitDir, 'containai-health.service'), 'utf8');
    const timer = readFileSync(join(unitDir, 'containai-health.timer'), 'utf8');
    expect(service).toContain('Type=oneshot');
    expect(service).toContain(`ExecStart=${root}/current/tools/containai-host check-health --json --install-root ${root}`);
    for (const line of ['NoNewPrivileges=yes', 'ProtectSystem=strict', `ReadWritePaths=-${root}`, 'PrivateTmp=yes', 'ProtectHome=yes']) expect(service).toContain(line);
    for (const line of ['OnBootSec=', 'OnUnitActiveSec=5min', 'RandomizedDelaySec=', 'Persistent=true', 'WantedBy=timers.target']) expect(timer).toContain(line);
    // Nothing half-written is left beside the units.
    expect(readdirSync(unitDir).sort()).toEqual(['containai-health.service', 'containai-health.timer']);
    for (const unit of ['containai-health.service', 'containai-health.timer']) {
      const verified = await analyze(unitDir, unit);
      expect(verified.text.split('\n').filter((l) => l.includes('containai-health')), verified.text).toEqual([]);
      expect(verified.code, verified.text).toBe(0);
    }
  });

  test.each(['90', '1h 30min', '2m30s', '1d'])('accepts --interval %s', async (interval) => {
    const unitDir = dir('cai-units-');
    const r = await host(['systemd', 'install', '--unit-dir', unitDir, '--install-root', rootWithBinary(), '--interval', interval]);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(join(unitDir, 'containai-health.timer'), 'utf8')).toContain(`OnUnitActiveSec=${interval}`);
  });

  test.each(['soon', '5 parsecs', '0', '10s', '1y 1d', ''])('refuses --interval "%s" and writes nothing', async (interval) => {
    const unitDir = join(dir('cai-units-'), 'units');
    const r = await host(['systemd', 'install', '--unit-dir', unitDir, '--interval', interval]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('--interval');
    expectNoStack(r.stderr);
    expect(existsSync(unitDir)).toBe(false);
  });

  test('refuses an install root a unit line cannot hold', async () => {
    const r = await host(['systemd', 'install', '--unit-dir', dir('cai-units-'), '--install-root', '/opt/contain ai']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('cannot be written into a systemd unit');
  });
});

describe('systemd uninstall', () => {
  test('removes both units and prints what to run', async () => {
    const unitDir = dir('cai-units-');
    mkdirSync(unitDir, { recursive: true });
    expect((await host(['systemd', 'install', '--unit-dir', unitDir, '--install-root', rootWithBinary()])).code).toBe(0);
    const r = await host(['systemd', 'uninstall', '--unit-dir', unitDir]);
    expect(r.code).toBe(0);
    expect(readdirSync(unitDir)).toEqual([]);
    expect(r.stderr).toContain('systemctl daemon-reload');
    // Twice is fine: nothing to remove is not an error.
    expect((await host(['systemd', 'uninstall', '--unit-dir', unitDir])).code).toBe(0);
  });
});
