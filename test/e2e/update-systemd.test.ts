/**
 * systemd install --update-from oci://… --channel C: the update timer's two units beside the health
 * timer's, hardened like them, jittered, accepted by systemd-analyze verify, and an ExecStart line
 * that runs (against the real mirror, with a real statement). What the units name lives in system
 * folders (systemTempDir), as on a real host.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DIST, expectNoStack, removeDir, systemTempDir } from '../helpers/cli.ts';
import { fleetKeys, fleetRegistry, hostEnv, makeHosts, publishRelease, rollout, type FleetKeys, type FleetRegistry } from '../helpers/fleet.ts';
import { requireService } from '../helpers/services.ts';

const dirs: string[] = [];
afterAll(() => dirs.forEach(removeDir));
function dir(prefix: string): string {
  const d = systemTempDir(prefix);
  dirs.push(d);
  return d;
}

const HOST = join(dir('cai-upd-bin-'), 'containai-host');
copyFileSync(join(DIST, 'containai-host'), HOST);
chmodSync(HOST, 0o755);

async function run(argv: string[], env: Record<string, string> = {}) {
  const proc = Bun.spawn(argv, { stdout: 'pipe', stderr: 'pipe', env: { PATH: process.env.PATH ?? '/usr/bin:/bin', NO_COLOR: '1', ...env } });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, stdout, stderr };
}

async function analyze(unitDir: string, unit: string) {
  const r = await run([requireService('systemd-analyze', 'systemd'), 'verify', join(unitDir, unit)], { SYSTEMD_LOG_LEVEL: 'notice' });
  return { code: r.code, text: r.stdout + r.stderr };
}

let reg: FleetRegistry;
let keys: FleetKeys;
beforeAll(async () => {
  const work = dir('cai-upd-work-');
  reg = await fleetRegistry('systemd');
  keys = fleetKeys(join(work, 'keys'));
  await publishRelease(reg, keys, join(work, 'dist'), 'v1.0.0');
  const r = await rollout(reg, keys, ['--version', 'v1.0.0', '--channel', 'stable', '--ramp', '100%@0h']);
  if (r.code !== 0) throw new Error(r.stderr);
}, 120_000);

describe('systemd install --update-from', () => {
  test('writes containai-update.service and .timer beside the health units; systemd-analyze verify accepts all four; ExecStart runs', async () => {
    const root = dir('cai-upd-root-');
    const unitDir = dir('cai-upd-units-');
    const r = await run([HOST, 'systemd', 'install', '--unit-dir', unitDir, '--install-root', root, '--update-from', reg.hostFrom, '--channel', 'stable', '--update-interval', '30min', '--key', keys.pub, '--no-public-good', '--trust-dir', keys.trustDir, '--json']);
    expectNoStack(r.stderr);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ commands: [['daemon-reload'], ['enable', '--now', 'containai-health.timer', 'containai-update.timer']], ran: false });
    expect(readdirSync(unitDir).sort()).toEqual(['containai-health.service', 'containai-health.timer', 'containai-update.service', 'containai-update.timer']);
    const service = readFileSync(join(unitDir, 'containai-update.service'), 'utf8');
    const timer = readFileSync(join(unitDir, 'containai-update.timer'), 'utf8');
    const policy = `--key ${keys.pub} --no-public-good --trust-dir ${keys.trustDir}`;
    expect(service).toContain(`ExecStart=${HOST} update --json --from ${reg.hostFrom} --channel stable --install-root ${root} ${policy}\n`);
    // Hardened as the health service is; the health units are as they were.
    const health = readFileSync(join(unitDir, 'containai-health.service'), 'utf8');
    for (const line of ['NoNewPrivileges=yes', 'ProtectSystem=strict', `ReadWritePaths=-${root}`, 'PrivateTmp=yes', 'ProtectHome=yes', 'PrivateDevices=yes', 'CapabilityBoundingSet=', 'RestrictNamespaces=yes', 'SystemCallArchitectures=native']) {
      expect(service).toContain(`${line}\n`);
      expect(health).toContain(`${line}\n`);
    }
    expect(health).toContain(`ExecStart=${HOST} check-health --json --install-root ${root} ${policy}\n`);
    expect(service).toContain('UMask=0022\n');
    expect(service).toContain('Environment=DOCKER_CONFIG=/etc/containai/docker\n');
    for (const line of ['OnUnitActiveSec=30min', 'RandomizedDelaySec=900s', 'FixedRandomDelay=yes', 'WantedBy=timers.target']) expect(timer).toContain(`${line}\n`);
    for (const unit of readdirSync(unitDir)) {
      const verified = await analyze(unitDir, unit);
      expect(verified.text.split('\n').filter((l) => l.includes('containai-')), verified.text).toEqual([]);
      expect(verified.code, verified.text).toBe(0);
    }
    // The line runs: update takes the flags written, and installs what the channel says.
    const [h] = makeHosts(dir('cai-upd-host-'), 1);
    const execArgs = (service.match(/^ExecStart=(.*)$/m)?.[1] ?? '').split(' ');
    const ran = await run([...execArgs, '--allow-nonroot'], hostEnv(h!));
    expect(ran.code, ran.stderr).toBe(0);
    expect(JSON.parse(ran.stdout)).toMatchObject({ decision: 'install', statement: { version: 'v1.0.0' } });
    expect(existsSync(join(root, 'releases', 'v1.0.0'))).toBe(true);

    // uninstall removes all four.
    const removed = await run([HOST, 'systemd', 'uninstall', '--unit-dir', unitDir, '--json']);
    expect(removed.code).toBe(0);
    expect(JSON.parse(removed.stdout).commands[0]).toEqual(['disable', '--now', 'containai-health.timer', 'containai-update.timer']);
    expect(readdirSync(unitDir)).toEqual([]);
  });

  test('refuses --channel without --update-from, --update-from with a tag or without --channel, and writes nothing', async () => {
    const root = dir('cai-upd-root-');
    for (const [extra, says] of [
      [['--channel', 'stable'], 'give --update-from'],
      [['--update-from', `${reg.hostFrom}:stable`, '--channel', 'stable'], '--update-from names a tag or digest'],
      [['--update-from', reg.hostFrom], '--update-from needs --channel'],
      [['--update-from', reg.hostFrom, '--channel', 'stable', '--update-interval', '10s'], '--update-interval "10s"'],
      [['--update-from', reg.hostFrom, '--channel', 'stable', '--rollout-signer-workflow', 'acme/app/.github/workflows/rollout.yml'], '--signer-workflow needs --repo or --owner'],
    ] as const) {
      const unitDir = join(dir('cai-upd-units-'), 'units');
      mkdirSync(join(unitDir, '..'), { recursive: true });
      const r = await run([HOST, 'systemd', 'install', '--unit-dir', unitDir, '--install-root', root, '--allow-unsigned', ...extra]);
      expect(r.code, extra.join(' ')).toBeGreaterThan(0);
      expect(r.stderr).toContain(says);
      expectNoStack(r.stderr);
      expect(existsSync(unitDir)).toBe(false);
    }
  });
});
