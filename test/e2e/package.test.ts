/**
 * containai-build package and sbom, run as CI runs them: what lands in dist/<version>/ (the
 * release's second format: the manifest first in the payload, the agents beside it), and what is
 * refused with nothing written.
 */
import { describe, expect, test } from 'bun:test';
import { chmodSync, existsSync, linkSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sha256Bytes } from '../../lib/digest.ts';
import { parseReleaseJson } from '../../lib/manifest/release-json.ts';
import { build, DIST, expectNoStack, type RunResult, tempDir } from '../helpers/cli.ts';
import {
  AGENT_MACHINE,
  attestationFor,
  elfStandIn,
  fakeAgents,
  makeProject,
  makeRelease,
  releaseSubjects,
  SMALL_HOST_TREE,
  type TreeSpec,
} from '../helpers/release.ts';

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
  const r = await build(['package', '--version', 'v1.0.0', '--out', out, '--host-dir', hostDir, '--agent-dir', fakeAgents(), ...args], {
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
  test('writes dist/<version>/ in the second format, and the system tar, gzip and sha256sum agree with it', async () => {
    const agentDir = fakeAgents();
    const rel = await makeRelease({ agentDir });
    expect(readdirSync(rel.dir).sort()).toEqual([
      'SHA256SUMS',
      'containai-host-linux-arm64',
      'containai-host-linux-x64',
      'containai-host.SHA256SUMS',
      'containai-v1.2.3.tar.gz',
      'payload.sha256',
      'payload.tar.gz',
      'release.json',
      'sbom.json',
    ]);
    expect(readdirSync(rel.out)).toEqual(['v1.2.3']); // no work folders left behind

    for (const f of [rel.payload, rel.bundle]) expect(sh(['gzip', '-t', f]).code).toBe(0);
    const listing = sh(['tar', '--numeric-owner', '--utc', '-tvzf', rel.payload]).out.trim().split('\n');
    const names = listing.map((l) => l.split(/\s+/).slice(5).join(' '));
    // The manifest first (a host reads it before any other byte), then every other entry byte-wise; no agent.
    expect(names).toEqual([
      'payload/',
      'payload/SHA256SUMS',
      'payload/release.json',
      'payload/README.md',
      'payload/host/',
      'payload/host/profile.env',
      'payload/host/utils/',
      'payload/host/utils/README.txt',
      'payload/host/utils/health.sh',
      'payload/host/utils/latest -> health.sh',
      'payload/sbom.json',
    ]);
    for (const line of listing) expect(line).toMatch(/^\S+ 0\/0 +\d+ 2023-11-14 22:13 /);
    expect(listing.find((l) => l.endsWith('health.sh'))).toStartWith('-rwxr-xr-x');
    expect(listing.find((l) => l.endsWith('README.txt'))).toStartWith('-rw-r--r--');
    expect(listing.find((l) => l.endsWith('host/'))).toStartWith('drwxr-xr-x');

    const x = extract(rel.payload);
    expect(sh(['sha256sum', '-c', '--strict', 'SHA256SUMS'], join(x, 'payload')).code).toBe(0);
    const listed = readFileSync(join(x, 'payload/SHA256SUMS'), 'utf8').trim().split('\n').map((l) => l.slice(66));
    expect(listed).toEqual(['README.md', 'host/profile.env', 'host/utils/README.txt', 'host/utils/health.sh', 'release.json', 'sbom.json']);
    // What is signed and attested sits beside the payload, byte for byte the payload's own.
    expect(readFileSync(rel.sums).equals(readFileSync(join(x, 'payload/SHA256SUMS')))).toBe(true);
    expect(readFileSync(rel.releaseJson).equals(readFileSync(join(x, 'payload/release.json')))).toBe(true);

    const payloadBytes = readFileSync(rel.payload);
    expect(readFileSync(rel.payloadSha256, 'utf8')).toBe(`${sha256Bytes(payloadBytes)}  payload.tar.gz\n`);
    expect(readFileSync(rel.sbom, 'utf8')).toBe(readFileSync(join(x, 'payload/sbom.json'), 'utf8'));

    // The agents: their own assets, 0755, the files given, listed in containai-host.SHA256SUMS.
    for (const arch of ['x64', 'arm64'] as const) {
      const name = `containai-host-linux-${arch}`;
      expect(statSync(rel.agents[arch]).mode & 0o7777).toBe(0o755);
      expect(readFileSync(rel.agents[arch]).equals(readFileSync(join(agentDir, name)))).toBe(true);
    }
    expect(readFileSync(rel.agentSums, 'utf8').split('\n').filter(Boolean).map((l) => l.slice(66))).toEqual([
      'containai-host-linux-arm64',
      'containai-host-linux-x64',
    ]);
    expect(sh(['sha256sum', '-c', '--strict', 'containai-host.SHA256SUMS'], rel.dir).code).toBe(0);

    // The bundle: flat, SHA256SUMS first, no agent.
    const bundleListing = sh(['tar', '--numeric-owner', '-tvzf', rel.bundle]).out.trim().split('\n');
    expect(bundleListing.map((l) => l.split(/\s+/).at(-1))).toEqual(['SHA256SUMS', 'payload.sha256', 'payload.tar.gz']);
    const b = extract(rel.bundle);
    expect(readFileSync(join(b, 'payload.tar.gz')).equals(payloadBytes)).toBe(true);
    expect(readFileSync(join(b, 'SHA256SUMS')).equals(readFileSync(rel.sums))).toBe(true);
  });

  test('release.json names the version and every entry: type, mode (executable bit only), link target, every parent a folder', async () => {
    const rel = await makeRelease({
      hostTree: {
        'bin/run': { content: '#!/bin/sh\n', mode: 0o775 },
        'conf/a.conf': { content: 'a=1\n', mode: 0o664 },
        'conf/deep/er/b.txt': 'b\n',
        'conf-link': { symlink: 'conf' },
        'bin/latest': { symlink: 'run' },
        'setuid': { content: 'x\n', mode: 0o4755 },
      },
    });
    const text = readFileSync(rel.releaseJson, 'utf8');
    const parsed = parseReleaseJson(text);
    expect(typeof parsed).not.toBe('string');
    expect(JSON.parse(text)).toEqual({
      format: 2,
      version: 'v1.2.3',
      entries: {
        'README.md': { type: 'file', mode: '0644' },
        SHA256SUMS: { type: 'file', mode: '0644' },
        host: { type: 'dir', mode: '0755' },
        'host/bin': { type: 'dir', mode: '0755' },
        'host/bin/latest': { type: 'symlink', target: 'run' },
        'host/bin/run': { type: 'file', mode: '0755' },
        'host/conf': { type: 'dir', mode: '0755' },
        'host/conf-link': { type: 'symlink', target: 'conf' },
        'host/conf/a.conf': { type: 'file', mode: '0644' },
        'host/conf/deep': { type: 'dir', mode: '0755' },
        'host/conf/deep/er': { type: 'dir', mode: '0755' },
        'host/conf/deep/er/b.txt': { type: 'file', mode: '0644' },
        'host/setuid': { type: 'file', mode: '0755' },
        'release.json': { type: 'file', mode: '0644' },
        'sbom.json': { type: 'file', mode: '0644' },
      },
    });
    // Keys sorted byte-wise: "host/conf-link" ('-' is 0x2d) before "host/conf/..." ('/' is 0x2f).
    const keys = Object.keys(JSON.parse(text).entries);
    expect(keys).toEqual([...keys].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))));
    // What release.json says is what the archive holds, mode for mode and link for link.
    const listing = sh(['tar', '--numeric-owner', '-tvzf', rel.payload]).out.trim().split('\n');
    expect(listing.find((l) => l.endsWith('payload/host/setuid'))).toStartWith('-rwxr-xr-x');
    expect(listing.find((l) => l.endsWith('payload/host/conf/a.conf'))).toStartWith('-rw-r--r--');
    expect(listing.some((l) => l.endsWith('payload/host/conf-link -> conf'))).toBe(true);
    expect(listing.filter((l) => !l.endsWith(' payload/')).length).toBe(keys.length);
  });

  test('--skip-sbom ships a valid CycloneDX document that says no components were catalogued', async () => {
    const rel = await makeRelease();
    const sbom = JSON.parse(readFileSync(rel.sbom, 'utf8'));
    expect(sbom.bomFormat).toBe('CycloneDX');
    expect(sbom.components).toEqual([]);
    expect(JSON.stringify(sbom.metadata.properties)).toContain('skipped');
  });

  test('the same inputs and SOURCE_DATE_EPOCH give byte-identical payload, manifest and bundle, whatever the mtimes and umask of the checkout', async () => {
    const agentDir = fakeAgents();
    const a = await makeRelease({ agentDir });
    // The same tree, checked out "elsewhere": other mtimes and group-writable modes.
    const { hostDir } = makeProject(SMALL_HOST_TREE);
    for (const f of ['profile.env', 'utils/README.txt']) chmodSync(join(hostDir, f), 0o664);
    chmodSync(join(hostDir, 'utils/health.sh'), 0o775);
    utimesSync(join(hostDir, 'profile.env'), 1, 1);
    const b = await makeRelease({ hostTree: hostDir, agentDir });
    for (const f of ['payload.tar.gz', 'SHA256SUMS', 'release.json', 'containai-host.SHA256SUMS', 'containai-v1.2.3.tar.gz']) {
      expect(readFileSync(join(b.dir, f)).equals(readFileSync(join(a.dir, f))), f).toBe(true);
    }

    const c = await makeRelease({ agentDir, env: { SOURCE_DATE_EPOCH: '1700000001' } });
    expect(readFileSync(c.payload).equals(readFileSync(a.payload))).toBe(false);
    // release.json holds no time (only the archive's mtimes and the skipped SBOM's date change).
    expect(readFileSync(c.releaseJson).equals(readFileSync(a.releaseJson))).toBe(true);
  });

  test('without SOURCE_DATE_EPOCH every entry carries 1980-01-01, so builds are still reproducible', async () => {
    const agentDir = fakeAgents();
    const a = await makeRelease({ agentDir, env: { SOURCE_DATE_EPOCH: undefined } });
    const b = await makeRelease({ agentDir, env: { SOURCE_DATE_EPOCH: undefined } });
    expect(sh(['tar', '--utc', '-tvzf', a.payload]).out).toContain('1980-01-01 00:00 payload/host/profile.env');
    expect(readFileSync(a.payload).equals(readFileSync(b.payload))).toBe(true);
    expect(readFileSync(a.bundle).equals(readFileSync(b.bundle))).toBe(true);
  });

  test('a second build replaces dist/<version>/ whole and leaves nothing else behind', async () => {
    const a = await makeRelease();
    writeFileSync(join(a.dir, 'stray-file'), 'from an old build');
    const b = await makeRelease({ out: a.out, hostTree: { ...SMALL_HOST_TREE, 'new.txt': 'new\n' } });
    expect(readdirSync(a.out)).toEqual(['v1.2.3']);
    expect(existsSync(join(b.dir, 'stray-file'))).toBe(false);
    expect(sh(['tar', '-tzf', b.payload]).out).toContain('payload/host/new.txt');
  });

  test('--json prints one document with the payload and SHA256SUMS hashes and the steps', async () => {
    const rel = await makeRelease({ args: ['--json'] });
    const doc = JSON.parse(rel.result.stdout);
    expect(doc.ok).toBe(true);
    expect(doc.payload.sha256).toBe(sha256Bytes(readFileSync(rel.payload)));
    expect(doc.sums).toEqual({ path: rel.sums, sha256: sha256Bytes(readFileSync(rel.sums)) });
    expect(doc.agents).toEqual(rel.agents);
    expect(doc.bundle).toBe(rel.bundle);
    expect(doc.steps.map((s: { name: string }) => s.name)).toEqual(['stage', 'sbom', 'manifest', 'archive', 'agents', 'bundle']);
  });

  test('--attestation (naming SHA256SUMS), --cosign-asset and --trusted-root join dist/<version>/ and the bundle, in the format order', async () => {
    const agentDir = fakeAgents();
    // The build is reproducible: a first run gives the digests the attestation names.
    const first = await makeRelease({ agentDir });
    const dir = tempDir();
    writeFileSync(join(dir, 'att.jsonl'), attestationFor(releaseSubjects(first)));
    writeFileSync(join(dir, 'cosign'), '#!/bin/sh\n', { mode: 0o644 });
    writeFileSync(join(dir, 'root.json'), '{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1"}');
    const rel = await makeRelease({
      agentDir,
      args: ['--attestation', join(dir, 'att.jsonl'), '--cosign-asset', join(dir, 'cosign'), '--trusted-root', join(dir, 'root.json')],
    });
    const listing = sh(['tar', '-tvzf', rel.bundle]).out;
    expect(listing.trim().split('\n').map((l) => l.split(/\s+/).at(-1))).toEqual([
      'SHA256SUMS',
      'attestation.intoto.jsonl',
      'trusted_root.json',
      'payload.sha256',
      'payload.tar.gz',
      'cosign',
    ]);
    expect(listing).toMatch(/-rwxr-xr-x 0\/0 .* cosign/);
    expect(readFileSync(join(rel.dir, 'attestation.intoto.jsonl')).equals(readFileSync(join(dir, 'att.jsonl')))).toBe(true);
    expect(readFileSync(join(rel.dir, 'trusted_root.json')).equals(readFileSync(join(dir, 'root.json')))).toBe(true);
    expect(statSync(join(rel.dir, 'cosign')).mode & 0o777).toBe(0o755);
  });
  describe('refuses bad input and writes nothing', () => {
    test.each(['../escape', 'a/b', 'has space', '..', '.hidden'])('--version %p', async (version) => {
      const { project, hostDir } = makeProject();
      const out = join(project, 'dist');
      const r = await build(['package', '--version', version, '--out', out, '--host-dir', hostDir, '--skip-sbom', '--agent-dir', fakeAgents()], {
        cwd: project,
      });
      expectRefused(r, 'not a safe version name');
      expect(existsSync(out)).toBe(false);
      expect(existsSync(join(project, 'escape'))).toBe(false);
    });

    test('a missing host/', async () => {
      const project = tempDir('cai-project-');
      const r = await build(['package', '--version', 'v1.0.0', '--out', 'dist', '--skip-sbom', '--agent-dir', fakeAgents()], { cwd: project });
      expectRefused(r, 'host/ not found');
      expect(existsSync(join(project, 'dist', 'v1.0.0'))).toBe(false);
    });

    test('a symlink in host/ that points outside it, naming the path; an older release stays as it was', async () => {
      const rel = await makeRelease({ version: 'v1.0.0' });
      const before = readdirSync(rel.dir).map((f) => [f, readFileSync(join(rel.dir, f))] as const);
      const { project, hostDir } = makeProject({ ...SMALL_HOST_TREE, 'utils/passwd': { symlink: '../../../etc/passwd' } });
      const r = await build(['package', '--version', 'v1.0.0', '--out', rel.out, '--host-dir', hostDir, '--skip-sbom', '--agent-dir', fakeAgents()], {
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
      const r = await build(['package', '--version', 'v1.0.0', '--out', 'dist', '--host-dir', hostDir, '--skip-sbom', '--agent-dir', fakeAgents()], {
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
      const agentDir = join(project, 'agents');
      mkdirSync(agentDir);
      fakeAgents(agentDir);
      chmodSync(project, 0o777);
      const asNobody = process.getuid?.() === 0 ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'] : [];
      const proc = Bun.spawnSync(
        [...asNobody, join(DIST, 'containai-build'), 'package', '--version', 'v1.0.0', '--out', 'dist', '--skip-sbom', '--agent-dir', agentDir],
        { cwd: project, env: { PATH: process.env.PATH ?? '', NO_COLOR: '1', HOME: project }, stdout: 'pipe', stderr: 'pipe' },
      );
      const r = { code: proc.exitCode, stdout: proc.stdout.toString(), stderr: proc.stderr.toString() };
      expectRefused(r, 'host/secret.txt: cannot read');
      // Not even the dist/ folder this run made is left.
      expect(existsSync(join(project, 'dist'))).toBe(false);
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

    test('an attestation that does not name this release\'s SHA256SUMS, saying which digests it names', async () => {
      const dir = tempDir();
      const other = '1'.repeat(64);
      writeFileSync(join(dir, 'att.jsonl'), attestationFor({ 'payload.tar.gz': other }));
      const { r, out } = await packageTree(SMALL_HOST_TREE, ['--skip-sbom', '--attestation', join(dir, 'att.jsonl')]);
      expectRefused(r, "does not attest this release's SHA256SUMS");
      expect(r.stderr).toContain(`it names only payload.tar.gz sha256:${other}`);
      expect(existsSync(out)).toBe(false);
    });

    test('a dangling link, or one through another link, in host/: a host would refuse the release, so package does', async () => {
      const { r, out } = await packageTree({ ...SMALL_HOST_TREE, 'dangling': { symlink: 'nowhere' }, 'd': { symlink: 'utils' }, 'via': { symlink: 'd/health.sh' } });
      expectRefused(r, 'the payload would not install: ');
      expect(r.stderr).toContain('host/dangling -> nowhere: the link names nothing in the release');
      expect(r.stderr).toContain('host/via -> d/health.sh: the link passes through the link host/d');
      expect(existsSync(out)).toBe(false);
    });
  });

  describe('the agents', () => {
    test('with no --agent-dir the real agents beside containai-build ship: 64-bit ELF executables of their architecture that print the version line', async () => {
      const { project } = makeProject();
      const out = join(project, 'dist');
      const r = await build(['package', '--version', 'v2.0.0', '--out', out, '--skip-sbom'], { cwd: project });
      expect(r.code).toBe(0);
      const dir = join(out, 'v2.0.0');
      for (const [arch, machine] of [['x64', 62], ['arm64', 183]] as const) {
        const path = join(dir, `containai-host-linux-${arch}`);
        expect(readFileSync(path).equals(readFileSync(join(DIST, `containai-host-linux-${arch}`)))).toBe(true);
        const header = readFileSync(path).subarray(0, 64);
        expect(header.readUInt32BE(0)).toBe(0x7f454c46); // \x7fELF
        expect(header[4]).toBe(2); // ELFCLASS64
        expect(header[5]).toBe(1); // little-endian
        expect(header.readUInt16LE(16)).toBe(2); // ET_EXEC
        expect(header.readUInt16LE(18)).toBe(machine);
        expect(statSync(path).mode & 0o777).toBe(0o755);
        // A hard link where it can be: 114 MB each are not copied on the same file system.
        if (statSync(path).dev === statSync(DIST).dev) expect(statSync(path).ino).toBe(statSync(join(DIST, `containai-host-linux-${arch}`)).ino);
      }
      const line = sh([join(DIST, 'containai-host'), '--version']).out.trim();
      expect(line).toMatch(/^containai-host [A-Za-z0-9._+-]+ \(([0-9a-f]{4,}|unknown)\)$/);
      expect(sh([join(dir, 'containai-host-linux-x64'), '--version']).out.trim()).toBe(line);
      // The arm64 agent runs under qemu-user (Debian's qemu-user and libc6-arm64-cross).
      const arm = sh(['qemu-aarch64', '-L', '/usr/aarch64-linux-gnu', join(dir, 'containai-host-linux-arm64'), '--version']);
      expect(arm.code).toBe(0);
      expect(arm.out.trim()).toBe(line);
      // containai-build says the same version and commit.
      expect(sh([join(DIST, 'containai-build'), '--version']).out.trim()).toBe(line.replace(/^containai-host /, 'containai-build '));
      expect(sh(['sha256sum', '-c', '--strict', 'containai-host.SHA256SUMS'], dir).code).toBe(0);
    }, 60_000);

    test('a missing agent: named, with how to build it; nothing is written', async () => {
      const { project, hostDir } = makeProject();
      const agents = fakeAgents();
      Bun.spawnSync(['rm', join(agents, 'containai-host-linux-arm64')]);
      const r = await build(['package', '--version', 'v1.0.0', '--out', 'dist', '--host-dir', hostDir, '--skip-sbom', '--agent-dir', agents], { cwd: project });
      expectRefused(r, `the agent containai-host-linux-arm64 is not in --agent-dir ${agents}`);
      expect(r.stderr).toContain('bun scripts/build.ts');
      expect(existsSync(join(project, 'dist'))).toBe(false);
    });

    test('no agents beside containai-build and no --agent-dir', async () => {
      const { project, hostDir } = makeProject();
      // containai-build alone in a folder (a hard link: the same binary, elsewhere).
      const bin = tempDir('cai-lonely-');
      try {
        linkSync(join(DIST, 'containai-build'), join(bin, 'containai-build'));
      } catch {
        Bun.spawnSync(['cp', join(DIST, 'containai-build'), join(bin, 'containai-build')]);
      }
      const proc = Bun.spawnSync([join(bin, 'containai-build'), 'package', '--version', 'v1.0.0', '--out', 'dist', '--host-dir', hostDir, '--skip-sbom'], {
        cwd: project,
        env: { PATH: process.env.PATH ?? '', NO_COLOR: '1' },
        stdout: 'pipe',
        stderr: 'pipe',
      });
      const r = { code: proc.exitCode, stdout: proc.stdout.toString(), stderr: proc.stderr.toString() };
      expectRefused(r, `the agent containai-host-linux-x64 is not in the folder of containai-build (${bin})`);
      expect(r.stderr).toContain('or pass --agent-dir DIR');
      expect(existsSync(join(project, 'dist'))).toBe(false);
    });

    const shapes = [
      ['the arm64 agent under the x64 name', 'x64', { machine: AGENT_MACHINE.arm64 }, 'is an ELF for aarch64 (e_machine 183), not for linux-x64 (e_machine 62)'],
      ['the x64 agent under the arm64 name', 'arm64', { machine: AGENT_MACHINE.x64 }, 'is an ELF for x86-64 (e_machine 62), not for linux-arm64 (e_machine 183)'],
      ['a 32-bit ELF', 'x64', { machine: AGENT_MACHINE.x64, elfClass: 1 }, 'is a 32-bit ELF, not a 64-bit one'],
      ['a big-endian ELF', 'arm64', { machine: AGENT_MACHINE.arm64, data: 2 }, 'is a big-endian ELF'],
      ['a shared library', 'x64', { machine: AGENT_MACHINE.x64, type: 3 }, 'is a shared library, not an executable'],
    ] as const;
    test.each(shapes)('%s is refused before anything is written; an older release stays as it was', async (_what, arch, shape, text) => {
      const agentDir = fakeAgents();
      const older = await makeRelease({ version: 'v1.0.0', agentDir });
      const before = readdirSync(older.dir).map((f) => [f, readFileSync(join(older.dir, f))] as const);
      const bad = fakeAgents();
      writeFileSync(join(bad, `containai-host-linux-${arch}`), elfStandIn(shape, 'not the agent\n'), { mode: 0o755 });
      const { project, hostDir } = makeProject();
      const r = await build(['package', '--version', 'v1.0.0', '--out', older.out, '--host-dir', hostDir, '--skip-sbom', '--agent-dir', bad], { cwd: project });
      expectRefused(r, `the agent ${join(bad, `containai-host-linux-${arch}`)} ${text}`);
      expect(r.stderr).toContain('a wrong-architecture agent must never ship under this name');
      expect(readdirSync(older.out)).toEqual(['v1.0.0']);
      for (const [f, bytes] of before) expect(readFileSync(join(older.dir, f)).equals(bytes), f).toBe(true);
    });

    test('a file that is not ELF, and an agent that is a symlink (even to the right file), are refused', async () => {
      const script = fakeAgents();
      writeFileSync(join(script, 'containai-host-linux-x64'), '#!/bin/sh\necho I am not the agent\n', { mode: 0o755 });
      const { project, hostDir } = makeProject();
      const r1 = await build(['package', '--version', 'v1.0.0', '--out', 'dist', '--host-dir', hostDir, '--skip-sbom', '--agent-dir', script], { cwd: project });
      expectRefused(r1, 'is not an ELF executable (no ELF header)');

      const real = fakeAgents();
      const linked = tempDir('cai-linked-');
      for (const arch of ['x64', 'arm64']) symlinkSync(join(real, `containai-host-linux-${arch}`), join(linked, `containai-host-linux-${arch}`));
      const r2 = await build(['package', '--version', 'v1.0.0', '--out', 'dist', '--host-dir', hostDir, '--skip-sbom', '--agent-dir', linked], { cwd: project });
      expectRefused(r2, `the agent ${join(linked, 'containai-host-linux-x64')} is a symlink; the agent ships only as a regular file`);
      expect(existsSync(join(project, 'dist'))).toBe(false);
    });
  });

  describe('with syft', () => {
    test('runs syft on the staged payload and ships its SBOM with the serial and time pinned', async () => {
      const syft = fakeSyft();
      const env = { PATH: `${syft.bin}:${process.env.PATH}` };
      const { project, hostDir } = makeProject();
      const out = join(project, 'dist');
      const args = ['package', '--version', 'v3.0.0', '--host-dir', hostDir, '--agent-dir', fakeAgents()];
      const r1 = await build([...args, '--out', join(out, '1')], { cwd: project, env: { ...env, SOURCE_DATE_EPOCH: '1700000000' } });
      expect(r1.code).toBe(0);
      const seen = readFileSync(syft.argsFile, 'utf8').split('\n');
      expect(seen[0]).toBe('scan');
      expect(seen[1]).toMatch(/^dir:.*\/payload$/);
      expect(seen.slice(2, 4)).toEqual(['-o', 'cyclonedx-json']);
      expect(seen).toContain('host');
      // The agent is not in the payload any more: syft sees host/, README.md and nothing else.
      expect(seen).not.toContain('tools');
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
    const r = await build(['sbom', '--out', 'out/sbom.json', '--host-dir', hostDir], {
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
