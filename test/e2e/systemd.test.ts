/**
 * containai-host systemd install|uninstall: units that systemd-analyze accepts, atomic files, commands
 * printed when systemd is not PID 1, and nothing named that the unit's sandbox would hide. What the
 * units name lives in system folders (systemTempDir), not /tmp or a home, as on a real host.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { baseEnv, DIST, expectNoStack, host, removeDir, systemTempDir, tempDir } from '../helpers/cli.ts';
import { handInstall } from '../helpers/installed-release.ts';
import { requireService } from '../helpers/services.ts';

const dirs: string[] = [];
afterAll(() => dirs.forEach(removeDir));
function dir(prefix: string): string {
  const d = systemTempDir(prefix);
  dirs.push(d);
  return d;
}

/** An install root holding a release (with a stand-in current/tools/containai-host the timer must not run). */
function rootWithBinary(): string {
  const root = dir('cai-sd-root-');
  handInstall(root, { files: { 'tools/containai-host': { content: '#!/bin/sh\nexit 0\n', mode: 0o755 } } });
  return root;
}

/**
 * The binary under test, copied where the service can see it (the checkout may be under a home or
 * /tmp): what ExecStart names by default when systemd install runs from there.
 */
const HOST = join(dir('cai-sd-bin-'), 'containai-host');
copyFileSync(join(DIST, 'containai-host'), HOST);
chmodSync(HOST, 0o755);

/** Runs the copy of containai-host, as an operator runs the one in /usr/local/bin. */
async function hostCopy(args: string[]) {
  const proc = Bun.spawn([HOST, ...args], { stdout: 'pipe', stderr: 'pipe', env: baseEnv() });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, stdout, stderr };
}
/** A dev host's policy; the hand-installed releases are UNSIGNED. */
const DEV = ['--allow-unsigned'];

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
    const r = await hostCopy(['systemd', 'install', '--unit-dir', unitDir, '--install-root', root, '--interval', '5min', '--json', ...DEV]);
    expectNoStack(r.stderr);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.ran).toBe(false);
    expect(doc.commands).toEqual([['daemon-reload'], ['enable', '--now', 'containai-health.timer']]);
    expect(r.stderr).toContain('systemctl enable --now containai-health.timer');
    const service = readFileSync(join(unitDir, 'containai-health.service'), 'utf8');
    const timer = readFileSync(join(unitDir, 'containai-health.timer'), 'utf8');
    expect(service).toContain('Type=oneshot');
    expect(service).toContain(`ExecStart=${HOST} check-health --json --install-root ${root} --public-good --allow-unsigned --trust-dir /etc/containai/trust\n`);
    for (const line of ['NoNewPrivileges=yes', 'ProtectSystem=strict', `ReadWritePaths=-${root}`, 'StateDirectory=containai', 'PrivateTmp=yes', 'ProtectHome=yes']) expect(service).toContain(line);
    for (const line of ['OnBootSec=', 'OnUnitActiveSec=5min', 'RandomizedDelaySec=', 'WantedBy=timers.target']) expect(timer).toContain(line);
    // Persistent= only catches up OnCalendar= runs; with OnUnitActiveSec= it did nothing.
    expect(timer).not.toMatch(/^Persistent=/m);
    // The line runs: check-health takes the flags written (an UNSIGNED dev release only warns under --allow-unsigned).
    const execArgs = (service.match(/^ExecStart=(.*)$/m)?.[1] ?? '').split(' ');
    const ran = await host([...execArgs.slice(1), '--offline']);
    expect(JSON.parse(ran.stdout).checks.find((c: { id: string }) => c.id === 'release')).toMatchObject({ status: 'warn' });
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
    const r = await host(['systemd', 'install', '--unit-dir', unitDir, '--install-root', rootWithBinary(), '--binary', HOST, '--interval', interval, ...DEV]);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(join(unitDir, 'containai-health.timer'), 'utf8')).toContain(`OnUnitActiveSec=${interval}`);
  });

  test.each(['soon', '5 parsecs', '0', '10s', '1y 1d', ''])('refuses --interval "%s" and writes nothing', async (interval) => {
    const unitDir = join(dir('cai-units-'), 'units');
    const r = await host(['systemd', 'install', '--unit-dir', unitDir, '--binary', HOST, '--interval', interval, ...DEV]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('--interval');
    expectNoStack(r.stderr);
    expect(existsSync(unitDir)).toBe(false);
  });

  test('refuses an install root a unit line cannot hold', async () => {
    const r = await host(['systemd', 'install', '--unit-dir', dir('cai-units-'), '--install-root', '/opt/contain ai', ...DEV]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('cannot be written into a systemd unit');
  });

  test('ExecStart runs --binary and spells out the policy flags, so check-health never reads trust from install.json', async () => {
    const root = rootWithBinary();
    const unitDir = dir('cai-units-');
    const outside = join(dir('cai-bin-'), 'containai-host');
    copyFileSync(HOST, outside);
    const keyDir = dir('cai-keys-');
    writeFileSync(join(keyDir, 'release.pub'), 'stand-in: written into the unit, not read');
    const trustDir = dir('cai-trust-');
    const r = await host([
      'systemd', 'install', '--unit-dir', unitDir, '--install-root', root, '--binary', outside,
      '--repo', 'acme/app', '--signer-workflow', 'acme/app/.github/workflows/release.yml@refs/heads/main', '--key', join(keyDir, 'release.pub'), '--no-public-good', '--trust-dir', trustDir,
    ]);
    expect(r.code, r.stderr).toBe(0);
    const service = readFileSync(join(unitDir, 'containai-health.service'), 'utf8');
    expect(service).toContain(
      `ExecStart=${realpathSync(outside)} check-health --json --install-root ${root} --repo acme/app --signer-workflow acme/app/.github/workflows/release.yml@refs/heads/main --key ${keyDir}/release.pub --no-public-good --trust-dir ${trustDir}\n`,
    );
    const verified = await analyze(unitDir, 'containai-health.service');
    expect(verified.code, verified.text).toBe(0);
  });

  test('refuses to name a binary inside the install root, run from there or given by --binary (even through a symlink)', async () => {
    const root = rootWithBinary();
    const unitDir = join(dir('cai-units-'), 'units');
    const inside = join(root, 'current', 'tools', 'containai-host');
    copyFileSync(HOST, inside);
    // The release's own copy, run from inside the root: its real path is releases/<v>/tools/containai-host.
    const proc = Bun.spawn([inside, 'systemd', 'install', '--unit-dir', unitDir, '--install-root', root, ...DEV], { stdout: 'pipe', stderr: 'pipe', env: baseEnv() });
    const [stderr, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
    const fromInside = { code, stderr };
    const link = join(dir('cai-bin-'), 'containai-host');
    symlinkSync(inside, link);
    for (const r of [
      fromInside,
      await host(['systemd', 'install', '--unit-dir', unitDir, '--install-root', root, '--binary', inside, ...DEV]),
      await host(['systemd', 'install', '--unit-dir', unitDir, '--install-root', root, '--binary', link, ...DEV]),
    ]) {
      expect(r.code, r.stderr).toBe(1);
      expectNoStack(r.stderr);
      expect(r.stderr).toContain('inside the install root');
      expect(r.stderr).toContain('copy containai-host to /usr/local/bin and run systemd install from there, or pass --binary');
    }
    expect(existsSync(unitDir)).toBe(false);
  });

  test('refuses without a policy, and a key or trust dir inside the install root', async () => {
    const root = rootWithBinary();
    const unitDir = join(dir('cai-units-'), 'units');
    const none = await host(['systemd', 'install', '--unit-dir', unitDir, '--install-root', root, '--binary', HOST, '--trust-dir', dir('cai-trust-')]);
    expect(none.code).not.toBe(0);
    expect(none.stderr).toContain('the timer needs a trust policy');
    writeFileSync(join(root, 'release.pub'), 'stand-in');
    const key = await host(['systemd', 'install', '--unit-dir', unitDir, '--install-root', root, '--binary', HOST, '--key', join(root, 'release.pub')]);
    expect(key.code).toBe(1);
    expect(key.stderr).toContain('--key');
    expect(key.stderr).toContain('inside the install root');
    const trust = await host(['systemd', 'install', '--unit-dir', unitDir, '--install-root', root, '--binary', HOST, '--trust-dir', join(root, 'state'), ...DEV]);
    expect(trust.code).toBe(1);
    expect(trust.stderr).toContain('inside the install root');
    expect(existsSync(unitDir)).toBe(false);
  });
});

describe('systemd install: nothing the unit names may be hidden by its sandbox', () => {
  const fresh = () => join(dir('cai-units-'), 'units');

  test.each([
    ['/home', 'ProtectHome=yes'],
    ['/root', 'ProtectHome=yes'],
    ['/tmp', 'PrivateTmp=yes'],
    ['/var/tmp', 'PrivateTmp=yes'],
  ])('a binary, key, trusted root or trust folder under %s is refused before anything is written', async (parent, setting) => {
    mkdirSync(parent, { recursive: true });
    const hidden = mkdtempSync(join(parent, 'cai-hidden-'));
    try {
      const bin = join(hidden, 'containai-host');
      copyFileSync(HOST, bin);
      chmodSync(bin, 0o755);
      writeFileSync(join(hidden, 'release.pub'), 'stand-in');
      writeFileSync(join(hidden, 'root.json'), '{}');
      const root = rootWithBinary();
      for (const [flag, args] of [
        ['--binary', ['--binary', bin, ...DEV]],
        ['--key', ['--binary', HOST, '--key', join(hidden, 'release.pub')]],
        ['--trusted-root', ['--binary', HOST, '--repo', 'acme/app', '--trusted-root', join(hidden, 'root.json')]],
        ['--trust-dir', ['--binary', HOST, '--trust-dir', hidden, ...DEV]],
      ] as const) {
        const unitDir = fresh();
        const r = await host(['systemd', 'install', '--unit-dir', unitDir, '--install-root', root, ...args]);
        expect(r.code, `${flag}: ${r.stderr}`).toBe(1);
        expect(r.stderr).toContain(`${flag} `);
        expect(r.stderr).toContain(`is under ${parent}, which the health service cannot see (${setting}`);
        expect(r.stderr).toContain('hint: ');
        expect(existsSync(unitDir)).toBe(false);
      }
      // The default binary (the one running) under a hidden folder is refused too.
      const fromHome = Bun.spawnSync([bin, 'systemd', 'install', '--unit-dir', fresh(), '--install-root', root, ...DEV], { env: baseEnv(), stderr: 'pipe' });
      expect(fromHome.exitCode).toBe(1);
      expect(fromHome.stderr.toString()).toContain(`which the health service cannot see (${setting}`);
    } finally {
      removeDir(hidden);
    }
  });

  test('a key or trusted root that does not exist, and a trust folder given that does not exist, are refused', async () => {
    const root = rootWithBinary();
    const missing = join(dir('cai-missing-'), 'nothing-here');
    for (const [flag, args] of [
      ['--key', ['--key', missing]],
      ['--trusted-root', ['--repo', 'acme/app', '--trusted-root', missing]],
      ['--trust-dir', ['--trust-dir', missing, ...DEV]],
    ] as const) {
      const unitDir = fresh();
      const r = await host(['systemd', 'install', '--unit-dir', unitDir, '--install-root', root, '--binary', HOST, ...args]);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toContain(`${flag} ${missing} cannot be used by the health service: ENOENT`);
      expect(existsSync(unitDir)).toBe(false);
    }
  });

  test('an install root under a home folder or /tmp is refused', async () => {
    for (const [root, says] of [
      ['/home/someone/containai', 'is under the home folder /home'],
      ['/root/containai', 'is under the home folder /root'],
      ['/tmp/containai', 'is under /tmp, which the health service cannot see (PrivateTmp=yes'],
    ] as const) {
      const unitDir = fresh();
      const r = await host(['systemd', 'install', '--unit-dir', unitDir, '--install-root', root, '--binary', HOST, ...DEV]);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toContain(`the install root ${root} ${says}`);
      expect(existsSync(unitDir)).toBe(false);
    }
  });
});

describe('systemd uninstall', () => {
  test('removes both units and prints what to run', async () => {
    const unitDir = dir('cai-units-');
    mkdirSync(unitDir, { recursive: true });
    expect((await host(['systemd', 'install', '--unit-dir', unitDir, '--install-root', rootWithBinary(), '--binary', HOST, ...DEV])).code).toBe(0);
    const r = await host(['systemd', 'uninstall', '--unit-dir', unitDir]);
    expect(r.code).toBe(0);
    expect(readdirSync(unitDir)).toEqual([]);
    expect(r.stdout).toContain(`removed ${unitDir}/containai-health.timer, ${unitDir}/containai-health.service`);
    expect(r.stdout).toContain('systemctl daemon-reload');
  });

  test('uninstall of nothing says so, and exits 0 (the wanted state holds)', async () => {
    const unitDir = dir('cai-units-');
    for (const extra of [[], ['--json']]) {
      const r = await host(['systemd', 'uninstall', '--unit-dir', unitDir, ...extra]);
      expect(r.code).toBe(0);
      const said = extra.length ? r.stderr : r.stdout;
      expect(said).toBe(`nothing to uninstall: no containai-health.timer or containai-health.service in ${unitDir}\n`);
      if (extra.length) expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, files: [], ran: false });
    }
  });
});
