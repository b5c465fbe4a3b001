/** containai-build package and sbom, run as CI runs them: what lands in dist/<version>/, and what is refused. */
import { describe, expect, test } from 'bun:test';
import { chmodSync, existsSync, readdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sha256Bytes } from '../../lib/digest.ts';
import { build, DIST, expectNoStack, type RunResult, tempDir } from '../helpers/cli.ts';
import { fakeHostBinary, makeProject, makeRelease, SMALL_HOST_TREE, type TreeSpec } from '../helpers/release.ts';

const SYFT_MISSING = 'syft not available: install syft or rerun with --skip-sbom (dev only)';

function sh(args: string[], cwd?: string): { code: number; out: string } {
  const r = Bun.spawnSync(args, { cwd, stdout: 'pipe', stderr: 'pipe' });
  return { code: r.exitCode, out: r.stdout.toString() + r.stderr.toString() };
}

function extract(archive: string): string {
  const dir = tempDir('cai-x-');
  const r = sh(['tar', '-xzf', archive, '-C', dir]);
  if (r.code !== 0) throw new Error(r.out);
  return dir;
}

/** Runs package in a project made from the tree; returns the run and where dist/ would be. */
async function packageTree(tree: TreeSpec, args: string[] = ['--skip-sbom'], env: Record<string, string | undefined> = {}) {
  const { project, hostDir } = makeProject(tree);
  const out = join(project, 'dist');
  const r = await build(['package', '--version', 'v1.0.0', '--out', out, '--host-dir', hostDir, '--host-binary', fakeHostBinary(), ...args], {
    cwd: project,
    env,
  });
  return { r, out, project, hostDir };
}

function expectRefused(r: RunResult, text: string): void {
  expect(r.code).toBe(1);
  expect(r.stderr).toContain(text);
  expectNoStack(r.stderr);
}

/** A folder holding a fake `syft` that writes a CycloneDX document with a random serial, and records its arguments. */
function fakeSyft(): { bin: string; argsFile: string; envFile: string } {
  const bin = tempDir('cai-syft-');
  const argsFile = join(bin, 'args');
  writeFileSync(
    join(bin, 'syft'),
    `#!/bin/sh
printf '%s\\n' "$@" > ${argsFile}
dir=$(printf '%s' "$2" | sed 's/^dir://')
ls "$dir" >> ${argsFile}
env > ${bin}/env
# Each run is a later day, as a real syft's clock moves on between two builds.
runs=$(( $(cat ${bin}/runs 2>/dev/null || echo 0) + 1 )); echo $runs > ${bin}/runs
cat <<EOF
{"bomFormat":"CycloneDX","specVersion":"1.6","serialNumber":"urn:uuid:$(cat /proc/sys/kernel/random/uuid)","version":1,
 "metadata":{"timestamp":"2026-01-1\${runs}T00:00:00Z","tools":{"components":[{"name":"syft"}]}},
 "components":[{"type":"file","name":"health.sh"}]}
EOF
`,
    { mode: 0o755 },
  );
  return { bin, argsFile, envFile: join(bin, 'env') };
}

describe('containai-build package', () => {
  test('writes dist/<version>/ as SPEC says, and the system tar, gzip and sha256sum agree with it', async () => {
    const rel = await makeRelease();
    expect(readdirSync(rel.dir).sort()).toEqual(['containai-v1.2.3.tar.gz', 'payload.sha256', 'payload.tar.gz', 'sbom.json']);
    expect(readdirSync(rel.out)).toEqual(['v1.2.3']); // no work folders left behind

    for (const f of [rel.payload, rel.bundle]) expect(sh(['gzip', '-t', f]).code).toBe(0);
    const listing = sh(['tar', '--numeric-owner', '--utc', '-tvzf', rel.payload]).out.trim().split('\n');
    const names = listing.map((l) => l.split(/\s+/).slice(5).join(' '));
    expect(names).toEqual([
      'payload/',
      'payload/README.md',
      'payload/SHA256SUMS',
      'payload/host/',
      'payload/host/profile.env',
      'payload/host/utils/',
      'payload/host/utils/README.txt',
      'payload/host/utils/health.sh',
      'payload/host/utils/latest -> health.sh',
      'payload/release.json',
      'payload/sbom.json',
      'payload/tools/',
      'payload/tools/containai-host',
    ]);
    for (const line of listing) expect(line).toMatch(/^\S+ 0\/0 +\d+ 2023-11-14 22:13 /);
    expect(listing.find((l) => l.endsWith('health.sh'))).toStartWith('-rwxr-xr-x');
    expect(listing.find((l) => l.endsWith('containai-host'))).toStartWith('-rwxr-xr-x');
    expect(listing.find((l) => l.endsWith('README.txt'))).toStartWith('-rw-r--r--');

    const x = extract(rel.payload);
    const check = sh(['sha256sum', '-c', '--strict', 'SHA256SUMS'], join(x, 'payload'));
    expect(check.code).toBe(0);
    const listed = readFileSync(join(x, 'payload/SHA256SUMS'), 'utf8').trim().split('\n').map((l) => l.slice(66));
    expect(listed).toEqual(['README.md', 'host/profile.env', 'host/utils/README.txt', 'host/utils/health.sh', 'release.json', 'sbom.json', 'tools/containai-host']);
    // The version is inside what SHA256SUMS (and so the signature) covers, and nothing else is: the payload stays reproducible.
    expect(readFileSync(join(x, 'payload/release.json'), 'utf8')).toBe('{\n  "version": "v1.2.3"\n}\n');

    const payloadBytes = readFileSync(rel.payload);
    expect(readFileSync(rel.payloadSha256, 'utf8')).toBe(`${sha256Bytes(payloadBytes)}  payload.tar.gz\n`);
    expect(readFileSync(rel.sbom, 'utf8')).toBe(readFileSync(join(x, 'payload/sbom.json'), 'utf8'));

    const b = extract(rel.bundle);
    expect(readdirSync(b).sort()).toEqual(['payload.sha256', 'payload.tar.gz']);
    expect(readFileSync(join(b, 'payload.tar.gz')).equals(payloadBytes)).toBe(true);
  });

  test('--skip-sbom ships a valid CycloneDX document that says no components were catalogued', async () => {
    const rel = await makeRelease();
    const sbom = JSON.parse(readFileSync(rel.sbom, 'utf8'));
    expect(sbom.bomFormat).toBe('CycloneDX');
    expect(sbom.components).toEqual([]);
    expect(JSON.stringify(sbom.metadata.properties)).toContain('skipped');
  });

  test('the same inputs give byte-identical payload and bundle, whatever the mtimes and umask of the checkout', async () => {
    const a = await makeRelease();
    // The same tree, checked out "elsewhere": other mtimes and group-writable modes.
    const { hostDir } = makeProject(SMALL_HOST_TREE);
    for (const f of ['profile.env', 'utils/README.txt']) chmodSync(join(hostDir, f), 0o664);
    chmodSync(join(hostDir, 'utils/health.sh'), 0o775);
    utimesSync(join(hostDir, 'profile.env'), 1, 1);
    const b = await makeRelease({ hostTree: hostDir, hostBinary: fakeHostBinary() });
    expect(readFileSync(b.payload).equals(readFileSync(a.payload))).toBe(true);
    expect(readFileSync(b.bundle).equals(readFileSync(a.bundle))).toBe(true);

    const c = await makeRelease({ env: { SOURCE_DATE_EPOCH: '1700000001' } });
    expect(readFileSync(c.payload).equals(readFileSync(a.payload))).toBe(false);
  });

  test('without SOURCE_DATE_EPOCH every entry carries 1980-01-01, so builds are still reproducible', async () => {
    const a = await makeRelease({ env: { SOURCE_DATE_EPOCH: undefined } });
    const b = await makeRelease({ env: { SOURCE_DATE_EPOCH: undefined } });
    expect(sh(['tar', '--utc', '-tvzf', a.payload]).out).toContain('1980-01-01 00:00 payload/host/profile.env');
    expect(readFileSync(a.payload).equals(readFileSync(b.payload))).toBe(true);
  });

  test('a second build replaces dist/<version>/ whole and leaves nothing else behind', async () => {
    const a = await makeRelease();
    writeFileSync(join(a.dir, 'stray-file'), 'from an old build');
    const b = await makeRelease({ out: a.out, hostTree: { ...SMALL_HOST_TREE, 'new.txt': 'new\n' } });
    expect(readdirSync(a.out)).toEqual(['v1.2.3']);
    expect(existsSync(join(b.dir, 'stray-file'))).toBe(false);
    expect(sh(['tar', '-tzf', b.payload]).out).toContain('payload/host/new.txt');
  });

  test('--json prints one document with the payload hash', async () => {
    const rel = await makeRelease({ args: ['--json'] });
    const doc = JSON.parse(rel.result.stdout);
    expect(doc.ok).toBe(true);
    expect(doc.payload.sha256).toBe(sha256Bytes(readFileSync(rel.payload)));
    expect(doc.bundle).toBe(rel.bundle);
    expect(doc.steps.map((s: { name: string }) => s.name)).toEqual(['stage', 'sbom', 'sums', 'archive', 'bundle']);
  });

  test('--attestation, --cosign-asset and --trusted-root go into the bundle; cosign stays executable', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'att.jsonl'), '{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}\n');
    writeFileSync(join(dir, 'cosign'), '#!/bin/sh\n', { mode: 0o644 });
    writeFileSync(join(dir, 'root.json'), '{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1"}');
    const rel = await makeRelease({
      args: ['--attestation', join(dir, 'att.jsonl'), '--cosign-asset', join(dir, 'cosign'), '--trusted-root', join(dir, 'root.json')],
    });
    const listing = sh(['tar', '-tvzf', rel.bundle]).out;
    expect(listing.trim().split('\n').map((l) => l.split(/\s+/).at(-1))).toEqual([
      'attestation.intoto.jsonl',
      'cosign',
      'payload.sha256',
      'payload.tar.gz',
      'trusted_root.json',
    ]);
    expect(listing).toMatch(/-rwxr-xr-x 0\/0 .* cosign/);
  });

  test('the real containai-host from beside containai-build is shipped and runs from the payload', async () => {
    const { project } = makeProject();
    const out = join(project, 'dist');
    const r = await build(['package', '--version', 'v2.0.0', '--out', out, '--skip-sbom'], { cwd: project });
    expect(r.code).toBe(0);
    const x = extract(join(out, 'v2.0.0', 'payload.tar.gz'));
    const tool = join(x, 'payload/tools/containai-host');
    expect(readFileSync(tool).equals(readFileSync(join(DIST, 'containai-host')))).toBe(true);
    expect(sh([tool, '--version']).code).toBe(0);
  }, 60_000);

  describe('refuses bad input and writes nothing', () => {
    test.each(['../escape', 'a/b', 'has space', '..', '.hidden'])('--version %p', async (version) => {
      const { project, hostDir } = makeProject();
      const out = join(project, 'dist');
      const r = await build(['package', '--version', version, '--out', out, '--host-dir', hostDir, '--skip-sbom', '--host-binary', fakeHostBinary()], {
        cwd: project,
      });
      expectRefused(r, 'not a safe version name');
      expect(existsSync(out)).toBe(false);
      expect(existsSync(join(project, 'escape'))).toBe(false);
    });

    test('a missing host/', async () => {
      const project = tempDir('cai-project-');
      const r = await build(['package', '--version', 'v1.0.0', '--out', 'dist', '--skip-sbom', '--host-binary', fakeHostBinary()], { cwd: project });
      expectRefused(r, 'host/ not found');
      expect(existsSync(join(project, 'dist', 'v1.0.0'))).toBe(false);
    });

    test('a symlink in host/ that points outside it, naming the path; an older release stays as it was', async () => {
      const rel = await makeRelease({ version: 'v1.0.0' });
      const before = readdirSync(rel.dir).map((f) => [f, readFileSync(join(rel.dir, f))] as const);
      const { project, hostDir } = makeProject({ ...SMALL_HOST_TREE, 'utils/passwd': { symlink: '../../../etc/passwd' } });
      const r = await build(['package', '--version', 'v1.0.0', '--out', rel.out, '--host-dir', hostDir, '--skip-sbom', '--host-binary', fakeHostBinary()], {
        cwd: project,
      });
      expectRefused(r, 'host/utils/passwd -> ../../../etc/passwd: the link points outside host/');
      expect(readdirSync(rel.out)).toEqual(['v1.0.0']);
      for (const [f, bytes] of before) expect(readFileSync(join(rel.dir, f)).equals(bytes)).toBe(true);
    });

    test('absolute links and links that escape through another link', async () => {
      const { r, out } = await packageTree({ ...SMALL_HOST_TREE, 'abs': { symlink: '/etc/passwd' }, 'up': { symlink: '.' }, 'sneaky': { symlink: 'up/..' } });
      expectRefused(r, 'host/abs -> /etc/passwd');
      expect(r.stderr).toContain('host/sneaky -> up/..');
      expect(r.stderr).not.toContain('host/up ->');
      expect(existsSync(join(out, 'v1.0.0'))).toBe(false);
    });

    test('a FIFO, and names with a newline or a backslash', async () => {
      const { project, hostDir } = makeProject();
      expect(sh(['mkfifo', join(hostDir, 'pipe')]).code).toBe(0);
      writeFileSync(join(hostDir, 'back\\slash'), 'x');
      writeFileSync(join(hostDir, 'new\nline'), 'x');
      const r = await build(['package', '--version', 'v1.0.0', '--out', 'dist', '--host-dir', hostDir, '--skip-sbom', '--host-binary', fakeHostBinary()], {
        cwd: project,
      });
      expectRefused(r, 'host/pipe: is a FIFO');
      expect(r.stderr).toContain('"host/back\\\\slash"');
      expect(r.stderr).toContain('"host/new\\nline"');
      expect(existsSync(join(project, 'dist', 'v1.0.0'))).toBe(false);
    });

    test('a .env file and a 0600 file in host/, naming each; nothing is written', async () => {
      const { r, out } = await packageTree({ ...SMALL_HOST_TREE, 'utils/.env': 'GITHUB_TOKEN=ghp_x', 'id_ed25519': { content: 'k', mode: 0o600 } });
      expectRefused(r, 'host/utils/.env: a .env file usually holds secrets');
      expect(r.stderr).toContain('host/id_ed25519: not readable by others (mode 0600)');
      expect(r.stderr).toContain('chmod o+r');
      expect(r.stderr).not.toContain('ghp_x');
      expect(existsSync(join(out, 'v1.0.0'))).toBe(false);
    });

    test('an unreadable file, naming it (run as an unprivileged user)', async () => {
      const { project, hostDir } = makeProject({ ...SMALL_HOST_TREE, 'secret.txt': { content: 'x', mode: 0o000 } });
      const hostBinary = fakeHostBinary(project);
      chmodSync(project, 0o777);
      const asNobody = process.getuid?.() === 0 ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'] : [];
      const proc = Bun.spawnSync(
        [...asNobody, join(DIST, 'containai-build'), 'package', '--version', 'v1.0.0', '--out', 'dist', '--skip-sbom', '--host-binary', hostBinary],
        { cwd: project, env: { PATH: process.env.PATH ?? '', NO_COLOR: '1', HOME: project }, stdout: 'pipe', stderr: 'pipe' },
      );
      const r = { code: proc.exitCode, stdout: proc.stdout.toString(), stderr: proc.stderr.toString() };
      expectRefused(r, 'host/secret.txt: cannot read');
      expect(existsSync(join(project, 'dist', 'v1.0.0'))).toBe(false);
      expect(readdirSync(join(project, 'dist'))).toEqual([]);
    });

    test('--skip-sbom when host/profile.env says PROFILE=prod', async () => {
      const { r, out } = await packageTree({ ...SMALL_HOST_TREE, 'profile.env': 'PROFILE=prod\nIMAGE_PREFIX=containai\nIMAGE_TAG=v1.0.0\nREGISTRY=ghcr.io/o\n' });
      expectRefused(r, '--skip-sbom is refused: host/profile.env says PROFILE=prod');
      expect(existsSync(out)).toBe(false);
    });

    test('no syft on PATH, with the exact message', async () => {
      const { r, out } = await packageTree(SMALL_HOST_TREE, [], { PATH: '/usr/bin:/bin' });
      expectRefused(r, `error: ${SYFT_MISSING}`);
      expect(existsSync(out)).toBe(false);
    });

    test('an --sbom that is not CycloneDX JSON', async () => {
      const dir = tempDir();
      writeFileSync(join(dir, 'not-json'), 'hello');
      writeFileSync(join(dir, 'spdx.json'), '{"spdxVersion":"SPDX-2.3"}');
      const notJson = await packageTree(SMALL_HOST_TREE, ['--sbom', join(dir, 'not-json')]);
      expectRefused(notJson.r, 'is not JSON');
      const spdx = await packageTree(SMALL_HOST_TREE, ['--sbom', join(dir, 'spdx.json')]);
      expectRefused(spdx.r, 'bomFormat: must be "CycloneDX"');
      expect(existsSync(spdx.out)).toBe(false);
    });

    test('an attestation that is not JSON lines', async () => {
      const dir = tempDir();
      writeFileSync(join(dir, 'att.jsonl'), '{"ok":1}\nnot json\n');
      const { r, out } = await packageTree(SMALL_HOST_TREE, ['--skip-sbom', '--attestation', join(dir, 'att.jsonl')]);
      expectRefused(r, `${join(dir, 'att.jsonl')}:2 is not JSON`);
      expect(existsSync(out)).toBe(false);
    });

    test('a missing host binary', async () => {
      const { project, hostDir } = makeProject();
      const r = await build(['package', '--version', 'v1.0.0', '--out', 'dist', '--host-dir', hostDir, '--skip-sbom', '--host-binary', join(project, 'nope')], {
        cwd: project,
      });
      expectRefused(r, `containai-host not found at ${join(project, 'nope')}`);
      expect(existsSync(join(project, 'dist', 'v1.0.0'))).toBe(false);
    });
  });

  describe('with syft', () => {
    test('runs syft on the staged payload and ships its SBOM with the serial and time pinned', async () => {
      const syft = fakeSyft();
      const env = { PATH: `${syft.bin}:${process.env.PATH}` };
      const { project, hostDir } = makeProject();
      const out = join(project, 'dist');
      const hostBinary = fakeHostBinary();
      const args = ['package', '--version', 'v3.0.0', '--host-dir', hostDir, '--host-binary', hostBinary];
      const r1 = await build([...args, '--out', join(out, '1')], { cwd: project, env: { ...env, SOURCE_DATE_EPOCH: '1700000000' } });
      expect(r1.code).toBe(0);
      const seen = readFileSync(syft.argsFile, 'utf8').split('\n');
      expect(seen[0]).toBe('scan');
      expect(seen[1]).toMatch(/^dir:.*\/payload$/);
      expect(seen.slice(2, 4)).toEqual(['-o', 'cyclonedx-json']);
      expect(seen).toContain('host');
      expect(seen).toContain('tools');
      const sbom = JSON.parse(readFileSync(join(out, '1', 'v3.0.0', 'sbom.json'), 'utf8'));
      expect(sbom.components).toEqual([{ type: 'file', name: 'health.sh' }]);
      expect(sbom.metadata.timestamp).toBe('2023-11-14T22:13:20.000Z');
      expect(sbom.serialNumber).toMatch(/^urn:uuid:[0-9a-f-]{36}$/);

      // The fake syft's second SBOM has another timestamp and serial number; the payload must not change.
      const r2 = await build([...args, '--out', join(out, '2')], { cwd: project, env: { ...env, SOURCE_DATE_EPOCH: '1700000000' } });
      expect(r2.code).toBe(0);
      expect(readFileSync(join(out, '2', 'v3.0.0', 'payload.tar.gz')).equals(readFileSync(join(out, '1', 'v3.0.0', 'payload.tar.gz')))).toBe(true);
    }, 30_000);

    test('syft runs with PATH, HOME, TMPDIR, LANG and SYFT_* only: no token or password reaches it', async () => {
      const syft = fakeSyft();
      const env = {
        PATH: `${syft.bin}:${process.env.PATH}`,
        HOME: '/home/builder',
        LANG: 'C.UTF-8',
        SYFT_LOG_LEVEL: 'warn',
        COSIGN_PASSWORD: 'cosign-password-value',
        GITHUB_TOKEN: 'ghs_tokenvalue',
        GHCR_PAT: 'ghcr-pat-value',
        ACTIONS_ID_TOKEN_REQUEST_TOKEN: 'oidc-request-token',
      };
      const { r } = await packageTree(SMALL_HOST_TREE, [], env);
      expect(r.code).toBe(0);
      const seen = Object.fromEntries(
        readFileSync(syft.envFile, 'utf8').trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
      );
      // The shell adds PWD, SHLVL and _ itself.
      const names = Object.keys(seen).filter((k) => !['PWD', 'OLDPWD', 'SHLVL', '_'].includes(k)).sort();
      expect(names.every((k) => ['PATH', 'HOME', 'TMPDIR', 'LANG'].includes(k) || k.startsWith('SYFT_'))).toBe(true);
      expect(seen).toMatchObject({ HOME: '/home/builder', LANG: 'C.UTF-8', SYFT_LOG_LEVEL: 'warn', SYFT_CHECK_FOR_APP_UPDATE: 'false' });
      const dump = readFileSync(syft.envFile, 'utf8');
      for (const secret of ['cosign-password-value', 'ghs_tokenvalue', 'ghcr-pat-value', 'oidc-request-token']) expect(dump).not.toContain(secret);
    });

    test('a failing syft is reported with its last line and nothing is written', async () => {
      const bin = tempDir('cai-syft-');
      writeFileSync(join(bin, 'syft'), '#!/bin/sh\necho "could not catalog: disk on fire" >&2\nexit 3\n', { mode: 0o755 });
      const { r, out } = await packageTree(SMALL_HOST_TREE, [], { PATH: `${bin}:${process.env.PATH}` });
      expectRefused(r, 'syft failed (exit 3): could not catalog: disk on fire');
      expect(existsSync(join(out, 'v1.0.0'))).toBe(false);
    });

    test('--sbom FILE is embedded byte for byte', async () => {
      const dir = tempDir();
      const text = '{ "bomFormat": "CycloneDX", "specVersion": "1.5", "components": [] }\n';
      writeFileSync(join(dir, 'bom.json'), text);
      const rel = await makeRelease({ args: ['--sbom', join(dir, 'bom.json')] });
      expect(readFileSync(rel.sbom, 'utf8')).toBe(text);
    });
  });
});

describe('containai-build sbom', () => {
  test('writes the SBOM of the payload tree to --out', async () => {
    const syft = fakeSyft();
    const { project, hostDir } = makeProject();
    const r = await build(['sbom', '--out', 'out/sbom.json', '--host-dir', hostDir, '--host-binary', fakeHostBinary()], {
      cwd: project,
      env: { PATH: `${syft.bin}:${process.env.PATH}` },
    });
    expect(r.code).toBe(0);
    expect(JSON.parse(readFileSync(join(project, 'out/sbom.json'), 'utf8')).bomFormat).toBe('CycloneDX');
    expect(readFileSync(syft.argsFile, 'utf8')).toContain('README.md');
    expect(readdirSync(join(project, 'out'))).toEqual(['sbom.json']);
  });

  test('without syft it says what to do, exit 1', async () => {
    const { project } = makeProject();
    const r = await build(['sbom'], { cwd: project, env: { PATH: '/usr/bin:/bin' } });
    expectRefused(r, SYFT_MISSING);
    expect(existsSync(join(project, 'sbom.json'))).toBe(false);
  });
});
