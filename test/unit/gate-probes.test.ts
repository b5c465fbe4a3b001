/**
 * The gate's probe files and probe kinds, against real parts: files on disk
 * checked against a real SHA256SUMS, real programs run, a loopback HTTP
 * server, `systemctl show` text through the one seam, and a real dockerd
 * for the containers probe (test/unit/gate-containers.test.ts).
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatSums, sha256Bytes } from '../../lib/digest.ts';
import { ContainaiError } from '../../lib/errors.ts';
import { createHealthContext } from '../../lib/health/context.ts';
import { loadProbes } from '../../lib/gate/load.ts';
import { execProbe } from '../../lib/gate/probes/exec.ts';
import { httpProbe } from '../../lib/gate/probes/http.ts';
import { systemdProbe } from '../../lib/gate/probes/systemd.ts';
import { systemctlShow, type SystemctlShow } from '../../lib/gate/systemctl.ts';
import type { ExecProbe, FileProbe, HttpProbe, ProbeContext, SystemdProbe } from '../../lib/gate/types.ts';
import { removeDir, tempDir } from '../helpers/cli.ts';
import { waitFor } from '../helpers/services.ts';
import { refusal } from '../helpers/refusal.ts';

const made: string[] = [];
afterAll(() => made.forEach(removeDir));

/** A release folder whose SHA256SUMS lists every file written into it (as a verified install has it). */
function release(files: Record<string, string>, executables: string[] = []): string {
  const dir = tempDir('cai-gate-rel-');
  made.push(dir);
  chmodSync(dir, 0o755);
  for (const [rel, text] of Object.entries(files)) {
    mkdirSync(join(dir, rel, '..'), { recursive: true });
    writeFileSync(join(dir, rel), text, { mode: executables.includes(rel) ? 0o755 : 0o644 });
  }
  writeFileSync(join(dir, 'SHA256SUMS'), formatSums(Object.entries(files).map(([path, text]) => ({ path, sha256: sha256Bytes(text) }))));
  return dir;
}

const probe = (fields: Record<string, unknown>) => JSON.stringify({ name: 'p', ...fields });
const OK_SCRIPT = '#!/bin/sh\nexit 0\n';
const MIN = 60_000;

describe('probe files', () => {
  test('a valid set loads: release-relative argv[0] resolved inside, defaults bounded by the gate', async () => {
    const dir = release(
      {
        'host/bin/ok.sh': OK_SCRIPT,
        'host/health.d/a-exec.json': probe({ name: 'script', kind: 'exec', argv: ['host/bin/ok.sh', '--flag'], grace: '1h' }),
        'host/health.d/b-http.json': probe({ name: 'proxy answers', kind: 'http', url: 'http://127.0.0.1:8080/health', timeout: '5s' }),
        'host/health.d/c-unit.json': probe({ name: 'unit', kind: 'systemd', unit: 'containai-proxy.service' }),
        'host/health.d/d-containers.json': probe({ name: 'containers', kind: 'containers' }),
        'host/health.d/README.md': 'not a probe\n',
      },
      ['host/bin/ok.sh'],
    );
    const probes = await loadProbes(dir, undefined, 5 * MIN);
    expect(probes.map((p) => [p.name, p.kind, p.source])).toEqual([
      ['script', 'exec', 'host/health.d/a-exec.json'],
      ['proxy answers', 'http', 'host/health.d/b-http.json'],
      ['unit', 'systemd', 'host/health.d/c-unit.json'],
      ['containers', 'containers', 'host/health.d/d-containers.json'],
    ]);
    const exec = probes[0] as ExecProbe;
    expect(exec.program).toBe(join(dir, 'host/bin/ok.sh'));
    expect(exec.inRelease).toBe(true);
    expect(exec.graceMs).toBe(5 * MIN); // a grace longer than the gate counts as the gate
    expect(exec.timeoutMs).toBe(10_000);
    expect((probes[1] as HttpProbe).status).toBe(200);
    expect((await loadProbes(dir, undefined, 6_000))[0]?.timeoutMs).toBe(6_000); // the default timeout never exceeds the gate
  });

  test('no health.d and no operator folder: no probes', async () => {
    expect(await loadProbes(release({ 'host/profile.env': 'x\n' }), join(tempDir(), 'absent'), MIN)).toEqual([]);
  });

  // Each hostile or broken file is refused naming the file and the field.
  const hostile: Array<[string, Record<string, unknown> | string, RegExp]> = [
    ['a shell string where argv belongs', { kind: 'exec', argv: 'curl -fsS http://127.0.0.1/health' }, /host\/health\.d\/bad\.json: argv: must be a list of words, not a shell command line/],
    ['a shell line as argv[0]', { kind: 'exec', argv: ['/usr/bin/curl -fsS http://x'] }, /host\/health\.d\/bad\.json: argv\[0\]: .* holds spaces: it looks like a shell command line/],
    ['a relative argv[0] that leaves the release', { kind: 'exec', argv: ['../../../../bin/sh', '-c', 'id'] }, /host\/health\.d\/bad\.json: argv\[0\]: "..\/..\/..\/..\/bin\/sh" leaves the release folder/],
    ['a bare program name (no PATH lookup)', { kind: 'exec', argv: ['curl', 'http://x'] }, /host\/health\.d\/bad\.json: argv\[0\]: "curl" is not a file in the release \(there is no PATH lookup: write \/usr\/bin\/curl/],
    ['a timeout longer than the gate', { kind: 'exec', argv: ['/bin/true'], timeout: '20min' }, /host\/health\.d\/bad\.json: timeout: 20min is longer than the gate \(5min\)/],
    ['an unknown kind', { kind: 'shell', argv: ['/bin/true'] }, /host\/health\.d\/bad\.json: kind: unknown kind "shell" \(one of exec, http, systemd, containers\)/],
    ['an unknown field', { kind: 'exec', argv: ['/bin/true'], shell: true }, /host\/health\.d\/bad\.json: shell: unknown field for kind exec/],
    ['a field of another kind', { kind: 'containers', url: 'http://x' }, /host\/health\.d\/bad\.json: url: unknown field for kind containers/],
    ['credentials in a URL', { kind: 'http', url: 'http://admin:hunter2@127.0.0.1/' }, /host\/health\.d\/bad\.json: url: must not hold credentials/],
    ['an option as a unit', { kind: 'systemd', unit: '--root=/tmp' }, /host\/health\.d\/bad\.json: unit: must be a unit name/],
    ['a timeout that is a number', { kind: 'http', url: 'http://x/', timeout: 5 }, /host\/health\.d\/bad\.json: timeout: must be a time span/],
    ['no kind', { argv: ['/bin/true'] }, /host\/health\.d\/bad\.json: kind: is missing/],
    ['not JSON', '{"name": "p", kind: exec}', /host\/health\.d\/bad\.json: \(file\): is not valid JSON/],
    ['an array', '[{"name":"p","kind":"containers"}]', /host\/health\.d\/bad\.json: \(file\): must hold one JSON object/],
  ];
  for (const [what, fields, expected] of hostile) {
    test(`refused: ${what}`, async () => {
      const text = typeof fields === 'string' ? fields : probe(fields);
      const dir = release({ 'host/health.d/bad.json': text, 'host/health.d/good.json': probe({ name: 'good', kind: 'containers' }) });
      const err = await refusal(loadProbes(dir, undefined, 5 * MIN));
      expect(err.code).toBe('INPUT');
      expect(err.message).toMatch(expected);
      expect(err.message).not.toContain('hunter2');
      expect(err.message).not.toContain('good.json');
      expect(err.hint).toContain('fix the probe files');
    });
  }

  test('every problem of every file is named at once', async () => {
    const dir = release({
      'host/health.d/one.json': probe({ kind: 'exec', argv: 'sh -c true', extra: 1 }),
      'host/health.d/two.json': probe({ kind: 'http', url: 'ftp://x/' }),
    });
    const err = await refusal(loadProbes(dir, undefined, MIN));
    expect(err.message).toContain('(3 problems)');
    expect(err.details?.problems).toEqual([
      expect.stringMatching(/^host\/health\.d\/one\.json: argv: /),
      expect.stringMatching(/^host\/health\.d\/one\.json: extra: unknown field/),
      expect.stringMatching(/^host\/health\.d\/two\.json: url: must be an http/),
    ]);
  });

  test('a probe file is signed with the release: unlisted, changed or linked files are refused', async () => {
    const dir = release({ 'host/health.d/listed.json': probe({ kind: 'containers' }) });
    writeFileSync(join(dir, 'host/health.d/dropped-in.json'), probe({ name: 'q', kind: 'containers' }));
    let err = await refusal(loadProbes(dir, undefined, MIN));
    expect(err.message).toContain("host/health.d/dropped-in.json: not listed in the release's SHA256SUMS");
    const changed = release({ 'host/health.d/listed.json': probe({ kind: 'containers' }) });
    writeFileSync(join(changed, 'host/health.d/listed.json'), probe({ kind: 'exec', argv: ['/bin/sh', '-c', 'id'] }));
    err = await refusal(loadProbes(changed, undefined, MIN));
    expect(err.message).toContain("host/health.d/listed.json: does not match the release's SHA256SUMS");
    const linked = release({ 'x.json': probe({ kind: 'containers' }) });
    mkdirSync(join(linked, 'host/health.d'), { recursive: true });
    symlinkSync('../../x.json', join(linked, 'host/health.d/link.json'));
    err = await refusal(loadProbes(linked, undefined, MIN));
    expect(err.message).toContain('host/health.d/link.json: is a symlink');
  });

  test('argv[0] through a link out of the release is refused', async () => {
    const dir = release({ 'host/health.d/p.json': probe({ kind: 'exec', argv: ['host/bin/sh'] }) });
    mkdirSync(join(dir, 'host/bin'));
    symlinkSync('/bin/sh', join(dir, 'host/bin/sh'));
    const err = await refusal(loadProbes(dir, undefined, MIN));
    expect(err.message).toContain('host/health.d/p.json: argv[0]: "host/bin/sh" resolves through a link to a file outside the release folder');
  });

  test("the operator's folder adds probes, and a name taken twice is refused naming both files", async () => {
    const dir = release({ 'host/health.d/a.json': probe({ name: 'proxy', kind: 'containers' }) });
    const ops = tempDir('cai-gate-ops-');
    made.push(ops);
    writeFileSync(join(ops, 'disk.json'), probe({ name: 'disk', kind: 'exec', argv: ['/bin/true'] }));
    expect((await loadProbes(dir, ops, MIN)).map((p) => [p.name, p.source])).toEqual([
      ['proxy', 'host/health.d/a.json'],
      ['disk', join(ops, 'disk.json')],
    ]);
    writeFileSync(join(ops, 'proxy.json'), probe({ name: 'proxy', kind: 'http', url: 'http://127.0.0.1/' }));
    const err = await refusal(loadProbes(dir, ops, MIN));
    expect(err.message).toContain(`${join(ops, 'proxy.json')}: name: "proxy" is also the name of the probe in host/health.d/a.json`);
  });

  test('the operator folder is pinned like the trust folder when running as root', async () => {
    expect(process.getuid?.()).toBe(0); // the suite runs as root (test/run.sh)
    const dir = release({});
    const ops = tempDir('cai-gate-ops-');
    made.push(ops);
    writeFileSync(join(ops, 'p.json'), probe({ kind: 'containers' }));
    chmodSync(ops, 0o775);
    let err = await refusal(loadProbes(dir, ops, MIN));
    expect(err.code).toBe('PERMISSION');
    expect(err.message).toContain(`${ops}: writable by group or others (chmod go-w ${ops}); refusing to run probes from it`);
    chmodSync(ops, 0o755);
    chownSync(join(ops, 'p.json'), 65534, 65534);
    err = await refusal(loadProbes(dir, ops, MIN));
    expect(err.code).toBe('PERMISSION');
    expect(err.message).toContain(`${join(ops, 'p.json')}: owned by uid 65534, not root`);
    chownSync(join(ops, 'p.json'), 0, 0);
    chmodSync(join(ops, 'p.json'), 0o666);
    expect((await refusal(loadProbes(dir, ops, MIN))).message).toContain(`${join(ops, 'p.json')}: writable by group or others`);
    chmodSync(join(ops, 'p.json'), 0o644);
    expect(await loadProbes(dir, ops, MIN)).toHaveLength(1);
  });
});

/** A probe context for kinds that need no engine. */
function context(releaseDir: string, extra: Partial<ProbeContext> = {}): ProbeContext {
  return {
    installRoot: releaseDir,
    releaseDir,
    health: createHealthContext({ installRoot: releaseDir, env: {} }),
    systemctl: systemctlShow,
    checks: new Map(),
    ...extra,
  };
}

async function loadOne<P extends FileProbe>(dir: string, file: string, gateMs = MIN): Promise<P> {
  const probes = await loadProbes(dir, undefined, gateMs);
  const found = probes.find((p) => p.source === `host/health.d/${file}`);
  if (!found) throw new Error(`${file} did not load`);
  return found as P;
}

describe('exec probe', () => {
  test('exit 0 passes; a failure says its exit status and last line', async () => {
    const dir = release(
      {
        'host/bin/ok.sh': OK_SCRIPT,
        'host/bin/fail.sh': '#!/bin/sh\necho starting\necho "proxy: connection refused" >&2\nexit 7\n',
        'host/health.d/ok.json': probe({ kind: 'exec', argv: ['host/bin/ok.sh'] }),
        'host/health.d/fail.json': probe({ name: 'f', kind: 'exec', argv: ['host/bin/fail.sh'] }),
        'host/health.d/abs.json': probe({ name: 'abs', kind: 'exec', argv: ['/bin/false'] }),
      },
      ['host/bin/ok.sh', 'host/bin/fail.sh'],
    );
    expect(await execProbe.run(await loadOne(dir, 'ok.json'), context(dir))).toEqual({ ok: true, message: 'exit 0' });
    expect(await execProbe.run(await loadOne(dir, 'fail.json'), context(dir))).toEqual({ ok: false, message: 'exit 7: proxy: connection refused' });
    expect(await execProbe.run(await loadOne(dir, 'abs.json'), context(dir))).toEqual({ ok: false, message: 'exit 1' });
  });

  test('runs with a fixed minimal environment, in the release folder, with no shell', async () => {
    const out = join(tempDir('cai-gate-out-'), 'env');
    made.push(join(out, '..'));
    const dir = release(
      {
        'host/bin/env.sh': `#!/bin/sh\n/usr/bin/env > ${out}\npwd >> ${out}\n`,
        // With no shell, a ";" is an argument like any other.
        'host/health.d/env.json': probe({ kind: 'exec', argv: ['host/bin/env.sh', '; touch /tmp/pwned-by-probe'] }),
      },
      ['host/bin/env.sh'],
    );
    process.env.GATE_TEST_SECRET = 'do-not-pass-me';
    try {
      expect((await execProbe.run(await loadOne(dir, 'env.json'), context(dir))).ok).toBe(true);
    } finally {
      delete process.env.GATE_TEST_SECRET;
    }
    const lines = readFileSync(out, 'utf8').trim().split('\n');
    const names = lines.slice(0, -1).map((l) => l.split('=')[0]).filter((n) => n !== 'PWD' && n !== 'SHLVL' && n !== '_');
    expect(names.sort()).toEqual(['CONTAINAI_PROBE', 'CONTAINAI_RELEASE_DIR', 'HOME', 'LANG', 'PATH']);
    expect(lines).toContain(`CONTAINAI_RELEASE_DIR=${dir}`);
    expect(lines.at(-1)).toBe(dir);
    expect(existsSync('/tmp/pwned-by-probe')).toBe(false);
  });

  test('a timeout kills the program and what it started', async () => {
    const pids = join(tempDir('cai-gate-pids-'), 'pids');
    made.push(join(pids, '..'));
    const dir = release(
      {
        'host/bin/hang.sh': `#!/bin/sh\n/bin/sleep 300 &\necho $$ $! > ${pids}\nwait\n`,
        'host/health.d/hang.json': probe({ kind: 'exec', argv: ['host/bin/hang.sh'], timeout: '300ms' }),
      },
      ['host/bin/hang.sh'],
    );
    const outcome = await execProbe.run(await loadOne(dir, 'hang.json'), context(dir));
    expect(outcome).toEqual({ ok: false, message: 'did not finish within 0.3 s (killed)' });
    const gone = (pid: string) => {
      const stat = existsSync(`/proc/${pid}/stat`) ? readFileSync(`/proc/${pid}/stat`, 'utf8') : '';
      return stat === '' || / Z /.test(stat);
    };
    const [shell, sleeper] = readFileSync(pids, 'utf8').trim().split(' ') as [string, string];
    await waitFor('the probe and its child to be killed', () => gone(shell) && gone(sleeper), 5_000);
  });

  test('runs as the user it names, without root groups', async () => {
    const outDir = tempDir('cai-gate-id-');
    made.push(outDir);
    chmodSync(outDir, 0o777);
    const dir = release(
      {
        'host/bin/id.sh': `#!/bin/sh\n/usr/bin/id > ${outDir}/id\n`,
        'host/health.d/id.json': probe({ kind: 'exec', argv: ['host/bin/id.sh'], user: 'nobody' }),
        'host/health.d/ghost.json': probe({ name: 'ghost', kind: 'exec', argv: ['host/bin/id.sh'], user: 'no-such-user' }),
      },
      ['host/bin/id.sh'],
    );
    chmodSync(join(dir, 'host'), 0o755);
    expect(await execProbe.run(await loadOne(dir, 'id.json'), context(dir))).toEqual({ ok: true, message: 'exit 0' });
    expect(readFileSync(join(outDir, 'id'), 'utf8').trim()).toBe('uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)');
    expect(await execProbe.run(await loadOne(dir, 'ghost.json'), context(dir))).toEqual({ ok: false, message: 'there is no user "no-such-user" on this host (/etc/passwd)' });
  });

  test('a program gone from the release (or swapped for a link out of it) fails the probe', async () => {
    const dir = release({ 'host/bin/ok.sh': OK_SCRIPT, 'host/health.d/ok.json': probe({ kind: 'exec', argv: ['host/bin/ok.sh'] }) }, ['host/bin/ok.sh']);
    const p = await loadOne<ExecProbe>(dir, 'ok.json');
    Bun.spawnSync(['rm', join(dir, 'host/bin/ok.sh')]);
    symlinkSync('/bin/true', join(dir, 'host/bin/ok.sh'));
    expect(await execProbe.run(p, context(dir))).toEqual({ ok: false, message: 'host/bin/ok.sh is missing from the release or now leaves it' });
  });
});

describe('http probe', () => {
  const server = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    fetch(req) {
      const path = new URL(req.url).pathname;
      if (path === '/ok') return new Response('fine');
      if (path === '/down') return new Response('no', { status: 503 });
      if (path === '/moved') return new Response(null, { status: 302, headers: { location: '/ok' } });
      return new Promise<Response>(() => undefined); // /hang: never answers
    },
  });
  afterAll(() => server.stop(true));
  const base = `http://127.0.0.1:${server.port}`;
  const http = (fields: Record<string, unknown>): HttpProbe => ({ kind: 'http', name: 'h', source: 'x', timeoutMs: 2_000, graceMs: 0, status: 200, url: `${base}/ok`, ...fields });

  test('the expected status passes; another fails naming both', async () => {
    expect(await httpProbe.run(http({}), context('/'))).toEqual({ ok: true, message: 'HTTP 200' });
    expect(await httpProbe.run(http({ url: `${base}/down` }), context('/'))).toEqual({ ok: false, message: 'HTTP 503, expected 200' });
  });

  test('redirects are not followed', async () => {
    expect(await httpProbe.run(http({ url: `${base}/moved` }), context('/'))).toEqual({ ok: false, message: 'HTTP 302, expected 200' });
    expect(await httpProbe.run(http({ url: `${base}/moved`, status: 302 }), context('/'))).toEqual({ ok: true, message: 'HTTP 302' });
  });

  test('no answer within the timeout, or none at all, fails', async () => {
    expect(await httpProbe.run(http({ url: `${base}/hang`, timeoutMs: 200 }), context('/'))).toEqual({ ok: false, message: 'no answer within 0.2 s' });
    const closed = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => new Response() });
    const port = closed.port;
    closed.stop(true);
    const outcome = await httpProbe.run(http({ url: `http://127.0.0.1:${port}/` }), context('/'));
    expect(outcome.ok).toBe(false);
    expect(outcome.message).toStartWith('no answer: ');
  });
});

describe('systemd probe', () => {
  const unit: SystemdProbe = { kind: 'systemd', name: 'u', source: 'x', timeoutMs: 1_000, graceMs: 0, unit: 'containai-proxy.service' };
  const show = (text: string, asked: string[] = []): SystemctlShow => async (name) => {
    asked.push(name);
    return text;
  };

  test('active with NRestarts steady passes, and reports the count as its baseline', async () => {
    const asked: string[] = [];
    const outcome = await systemdProbe.run(unit, context('/', { systemctl: show('LoadState=loaded\nActiveState=active\nSubState=running\nNRestarts=3\n', asked) }));
    expect(outcome).toEqual({ ok: true, message: 'containai-proxy.service active (running), NRestarts 3', observed: { NRestarts: 3 } });
    expect(asked).toEqual(['containai-proxy.service']);
    expect((await systemdProbe.run(unit, context('/', { baseline: { NRestarts: 3 }, systemctl: show('LoadState=loaded\nActiveState=active\nSubState=running\nNRestarts=3\n') }))).ok).toBe(true);
  });

  test('NRestarts growing during the trial fails, even while active', async () => {
    const outcome = await systemdProbe.run(unit, context('/', { baseline: { NRestarts: 1 }, systemctl: show('LoadState=loaded\nActiveState=active\nSubState=running\nNRestarts=4\n') }));
    expect(outcome).toEqual({ ok: false, message: 'containai-proxy.service restarted 3 times during the trial (NRestarts 1 → 4)', observed: { NRestarts: 4 } });
  });

  test('inactive, failed or unknown units fail', async () => {
    expect((await systemdProbe.run(unit, context('/', { systemctl: show('LoadState=loaded\nActiveState=activating\nSubState=auto-restart\nNRestarts=9\n') }))).message).toBe('containai-proxy.service is activating (auto-restart)');
    expect((await systemdProbe.run(unit, context('/', { systemctl: show('LoadState=loaded\nActiveState=failed\nSubState=failed\nNRestarts=0\n') }))).ok).toBe(false);
    expect((await systemdProbe.run(unit, context('/', { systemctl: show('LoadState=not-found\nActiveState=inactive\nSubState=dead\n') }))).message).toBe('containai-proxy.service is not loaded (LoadState=not-found)');
  });

  test('the real reader runs /usr/bin/systemctl; without systemd it is an error naming it', async () => {
    // This machine runs no systemd: the product's reader says so instead of passing.
    const err = await refusal(systemctlShow('containai-proxy.service', 5_000));
    expect(err.code).toBe('TOOL');
    expect(err.message).toStartWith('/usr/bin/systemctl show containai-proxy.service failed: ');
  });
});

describe('spans', () => {
  test('--gate reads systemd time spans and refuses what is not one', async () => {
    const { gateSpanMs, formatSpan } = await import('../../lib/gate/span.ts');
    expect(gateSpanMs(undefined)).toBe(600_000);
    expect(gateSpanMs('5s')).toBe(5_000);
    expect(gateSpanMs('1h 30min')).toBe(5_400_000);
    for (const bad of ['', 'soon', '0s', '500ms', '2d', '-5s']) {
      expect(() => gateSpanMs(bad)).toThrow(/--gate ".*" must be a time span from 1s to 24h/);
    }
    expect(formatSpan(90_000)).toBe('1min 30s');
    expect(formatSpan(3_600_000)).toBe('1h');
    expect(formatSpan(250)).toBe('250ms');
  });
});
