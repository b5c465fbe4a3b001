/**
 * `containai-host self-update` end to end with compiled agents: v1.0.0 and
 * v1.1.0 built for x64 by scripts/build.ts itself (from a temp root, so
 * dist/ is left alone), v1.1.0 for arm64 (bun's cross-compile), and release
 * folders whose containai-host.SHA256SUMS is signed with a test key by
 * lib/trust/sign.ts. Every refusal leaves the agent byte for byte as it was.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { closeSync, constants, copyFileSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { AGENT_SUMS_FILE, AGENT_SUMS_SIG_FILE, AGENT_SUMS_SIGSTORE_FILE, agentAssetName } from '../../lib/bundle/layout.ts';
import { tryLockExclusive, unlock } from '../../lib/release/sys.ts';
import { loadSigningKey } from '../../lib/trust/keys.ts';
import { signBlob } from '../../lib/trust/sign.ts';
import { baseEnv, expectNoStack, REPO_ROOT, removeDir, tempDir, type RunResult } from '../helpers/cli.ts';
import { makeKeyPair, makeTestCA, sha256Hex, writeKeyPair } from '../helpers/signing.ts';

const dirs: string[] = [];
function dir(prefix = 'cai-self-update-'): string {
  const d = tempDir(prefix);
  dirs.push(d);
  return d;
}

const builds = dir('cai-agent-builds-');
const agents: Record<'old' | 'new' | 'arm64', string> = { old: '', new: '', arm64: '' };
const keysDir = dir('cai-agent-keys-');
const releaseKey = writeKeyPair(keysDir, 'release', makeKeyPair());
const otherKey = writeKeyPair(keysDir, 'other', makeKeyPair());
const emptyTrust = join(keysDir, 'trust');
mkdirSync(emptyTrust);
const stateDir = join(keysDir, 'state');

/** scripts/build.ts run from a temp root that links to this checkout, so its dist/ is the temp one. */
function buildAgent(version: string, name: string): string {
  const root = join(builds, name);
  mkdirSync(join(root, 'scripts'), { recursive: true });
  copyFileSync(join(REPO_ROOT, 'scripts', 'build.ts'), join(root, 'scripts', 'build.ts'));
  for (const entry of ['cmd', 'lib', 'node_modules', 'package.json', 'tsconfig.json', 'bunfig.toml']) symlinkSync(join(REPO_ROOT, entry), join(root, entry));
  const r = Bun.spawnSync([process.execPath, join(root, 'scripts', 'build.ts'), 'containai-host'], { cwd: root, env: { ...process.env, CONTAINAI_BUILD_VERSION: version }, stderr: 'pipe' });
  if (r.exitCode !== 0) throw new Error(`build of ${version} failed: ${r.stderr.toString()}`);
  return join(root, 'dist', 'containai-host');
}

/** The same sources for arm64 (bun's cross-compile; the runtime is in bun's cache). */
function buildArm64(version: string): string {
  const out = join(builds, 'arm64', 'containai-host');
  const r = Bun.spawnSync(
    [process.execPath, 'build', '--compile', '--target=bun-linux-arm64', '--minify', '--external=cpu-features', '--no-compile-autoload-dotenv', '--no-compile-autoload-bunfig', `--define=__CONTAINAI_VERSION__=${JSON.stringify(version)}`, join(REPO_ROOT, 'cmd', 'containai-host.ts'), '--outfile', out],
    { cwd: REPO_ROOT, stderr: 'pipe', stdout: 'pipe' },
  );
  if (r.exitCode !== 0) throw new Error(`arm64 build failed: ${r.stderr.toString()}`);
  return out;
}

interface ReleaseOptions {
  x64: string;
  arm64?: string;
  /** Sign with this key instead of the release key. */
  key?: string;
  /** Cut the x64 agent after signing its sum. */
  truncateX64?: number;
}

/** A dist/<version>/ folder: the agents, containai-host.SHA256SUMS, its .sigstore.json and .sig. */
async function makeRelease(options: ReleaseOptions): Promise<string> {
  const rel = dir('cai-agent-release-');
  copyFileSync(options.x64, join(rel, agentAssetName('x64')));
  copyFileSync(options.arm64 ?? agents.arm64, join(rel, agentAssetName('arm64')));
  const sums = (['arm64', 'x64'] as const).map((a) => `${sha256Hex(readFileSync(join(rel, agentAssetName(a))))}  ${agentAssetName(a)}\n`).join('');
  writeFileSync(join(rel, AGENT_SUMS_FILE), sums);
  const signed = await signBlob(join(rel, AGENT_SUMS_FILE), await loadSigningKey(options.key ?? releaseKey.key));
  writeFileSync(join(rel, AGENT_SUMS_SIGSTORE_FILE), JSON.stringify(signed.bundle));
  writeFileSync(join(rel, AGENT_SUMS_SIG_FILE), `${signed.signatureBase64}\n`);
  if (options.truncateX64 !== undefined) truncateSync(join(rel, agentAssetName('x64')), options.truncateX64);
  return rel;
}

/** A host folder holding an agent, as /usr/local/sbin would. */
function hostWith(agent: string): { bin: string; binDir: string } {
  const binDir = join(dir('cai-agent-host-'), 'sbin');
  mkdirSync(binDir, { mode: 0o755 });
  const bin = join(binDir, 'containai-host');
  copyFileSync(agent, bin);
  return { bin, binDir };
}

async function runAgent(bin: string, args: string[], env: Record<string, string> = {}): Promise<RunResult> {
  const proc = Bun.spawn([bin, ...args], { env: { ...baseEnv(), CONTAINAI_STATE_DIR: stateDir, ...env }, stdout: 'pipe', stderr: 'pipe', stdin: 'ignore' });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  expectNoStack(stderr);
  return { code, stdout, stderr };
}

const update = (bin: string, rel: string, extra: string[] = [], env: Record<string, string> = {}) =>
  runAgent(bin, ['self-update', '--asset-dir', rel, '--key', releaseKey.pub, '--trust-dir', emptyTrust, ...extra], env);

/** The release version an agent says it is: `--version` prints `containai-host v1.1.0 (<commit>)`. */
async function versionOf(bin: string): Promise<string> {
  const line = (await runAgent(bin, ['--version'])).stdout.trim();
  const match = /^containai-host (\S+) \([^)]+\)$/.exec(line);
  if (!match) throw new Error(`${bin} --version printed ${JSON.stringify(line)}, not "containai-host <version> (<commit>)"`);
  return match[1] as string;
}

/** The agent is byte for byte what it was, nothing was kept as .previous, and no temp file is left. */
function expectUntouched(bin: string, binDir: string, original: string): void {
  expect(sha256Hex(readFileSync(bin))).toBe(sha256Hex(readFileSync(original)));
  expect(existsSync(`${bin}.previous`)).toBe(false);
  expect(readdirSync(binDir)).toEqual(['containai-host']);
}

beforeAll(() => {
  agents.old = buildAgent('v1.0.0', 'old');
  agents.new = buildAgent('v1.1.0', 'new');
  agents.arm64 = buildArm64('v1.1.0');
});
afterAll(() => dirs.forEach(removeDir));

describe('self-update from a release folder', () => {
  test('a newer agent replaces the running one, answers --version, the old one is kept as .previous, and the event is logged', async () => {
    const { bin, binDir } = hostWith(agents.old);
    const rel = await makeRelease({ x64: agents.new });
    const r = await update(bin, rel, ['--json']);
    expect(r.stderr).toContain('→ smoke test: the new agent answers --version');
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc).toMatchObject({ ok: true, outcome: 'updated', version: 'v1.1.0', from: 'v1.0.0', binary: bin, previous: `${bin}.previous`, signer: expect.stringMatching(/^key [0-9a-f]{64}$/) });
    expect(await versionOf(bin)).toBe('v1.1.0');
    expect(await versionOf(`${bin}.previous`)).toBe('v1.0.0');
    expect(statSync(bin).mode & 0o777).toBe(statSync(agents.old).mode & 0o777);
    expect(readdirSync(binDir).sort()).toEqual(['containai-host', 'containai-host.previous']);
    const events = readFileSync(join(stateDir, 'events.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(events.at(-1)).toMatchObject({ action: 'self-update', outcome: 'ok', version: 'v1.1.0', from: 'v1.0.0', binary: bin, source: rel });

    // The same release again changes nothing.
    const again = await update(bin, rel);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain(`unchanged: ${bin} is v1.1.0 already`);
    expect(await versionOf(`${bin}.previous`)).toBe('v1.0.0');

    // --rollback puts the old one back, and the new one becomes .previous; twice is back again.
    const back = await runAgent(bin, ['self-update', '--rollback', '--json']);
    expect(back.code).toBe(0);
    expect(JSON.parse(back.stdout)).toMatchObject({ ok: true, outcome: 'rolled-back', version: 'v1.0.0', from: 'v1.1.0' });
    expect(await versionOf(bin)).toBe('v1.0.0');
    expect(await versionOf(`${bin}.previous`)).toBe('v1.1.0');
    expect((await runAgent(bin, ['self-update', '--rollback'])).code).toBe(0);
    expect(await versionOf(bin)).toBe('v1.1.0');
  });

  test("an attestation from the release workflow over containai-host.SHA256SUMS (the CI path) verifies under --repo", async () => {
    const rel = await makeRelease({ x64: agents.new });
    for (const f of [AGENT_SUMS_SIGSTORE_FILE, AGENT_SUMS_SIG_FILE]) rmSync(join(rel, f));
    const ca = makeTestCA();
    const root = join(rel, '..', 'ci-root.json');
    writeFileSync(root, JSON.stringify(ca.trustedRoot));
    writeFileSync(join(rel, 'attestation.intoto.jsonl'), `${JSON.stringify(ca.attest(sha256Hex(readFileSync(join(rel, AGENT_SUMS_FILE)))))}\n`);
    const { bin } = hostWith(agents.old);
    const policy = ['--asset-dir', rel, '--trusted-root', root, '--trust-dir', emptyTrust];
    const wrongRepo = await runAgent(bin, ['self-update', ...policy, '--repo', 'acme/other']);
    expect(wrongRepo.code).toBe(1);
    expect(wrongRepo.stderr).toContain('is not https://github.com/acme/other (--repo)');
    const r = await runAgent(bin, ['self-update', ...policy, '--repo', 'acme/widgets', '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).signer).toBe('https://github.com/acme/widgets/.github/workflows/release.yml@refs/tags/v1.0.0');
    expect(await versionOf(bin)).toBe('v1.1.0');
  });

  test('with --install-root the event goes to that root\'s state/events.jsonl', async () => {
    const { bin } = hostWith(agents.old);
    const root = dir('cai-agent-root-');
    const r = await update(bin, await makeRelease({ x64: agents.new }), ['--install-root', root]);
    expect(r.code).toBe(0);
    const line = JSON.parse(readFileSync(join(root, 'state', 'events.jsonl'), 'utf8').trim());
    expect(line).toMatchObject({ action: 'self-update', outcome: 'ok', version: 'v1.1.0' });
  });

  test('signed by another key: refused, saying the key is not pinned; the agent is unchanged', async () => {
    const { bin, binDir } = hostWith(agents.old);
    const r = await update(bin, await makeRelease({ x64: agents.new, key: otherKey.key }));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/error: .*does not verify with any pinned key.*; it was signed by key sha256:[0-9a-f]{16}…, which this host does not pin/);
    expectUntouched(bin, binDir, agents.old);
    const events = readFileSync(join(stateDir, 'events.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(events.at(-1)).toMatchObject({ action: 'self-update', outcome: 'refused', binary: bin });
  });

  test('a truncated agent is refused against its signed sum; the agent is unchanged', async () => {
    const { bin, binDir } = hostWith(agents.old);
    const r = await update(bin, await makeRelease({ x64: agents.new, truncateX64: 1_000_000 }));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/containai-host-linux-x64 does not match its signed sum \(got sha256:[0-9a-f]{64}, 1000000 bytes; signed sha256:[0-9a-f]{64}\)/);
    expectUntouched(bin, binDir, agents.old);
  });

  test('the arm64 build under the x64 name (its sum signed) is refused before it is run; the agent is unchanged', async () => {
    const { bin, binDir } = hostWith(agents.old);
    const r = await update(bin, await makeRelease({ x64: agents.arm64 }));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('containai-host-linux-x64 is built for arm64, not for this x64 host');
    expectUntouched(bin, binDir, agents.old);
  });

  test('a downgrade is refused (asked by --version: before any download); --allow-downgrade takes it', async () => {
    const { bin, binDir } = hostWith(agents.new);
    const rel = await makeRelease({ x64: agents.old });
    const r = await update(bin, rel);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('refusing a downgrade: v1.0.0 is older than v1.1.0, the agent here');
    expect(r.stderr).toContain('--allow-downgrade');
    expectUntouched(bin, binDir, agents.new);
    const early = await update(bin, rel, ['--version', 'v1.0.0']);
    expect(early.code).toBe(1);
    expect(early.stderr).not.toContain('fetch containai-host.SHA256SUMS');
    expectUntouched(bin, binDir, agents.new);
    const forced = await update(bin, rel, ['--allow-downgrade']);
    expect(forced.code).toBe(0);
    expect(await versionOf(bin)).toBe('v1.0.0');
  });

  test('an agent that says another version than --version asks is refused', async () => {
    const { bin, binDir } = hostWith(agents.old);
    const r = await update(bin, await makeRelease({ x64: agents.new }), ['--version', 'v1.2.0']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('the new agent says it is v1.1.0, not v1.2.0 (--version)');
    expectUntouched(bin, binDir, agents.old);
  });

  test('a second self-update of the same folder waits for none: it says one is running', async () => {
    const { bin, binDir } = hostWith(agents.old);
    const fd = openSync(binDir, constants.O_RDONLY | constants.O_DIRECTORY);
    expect(tryLockExclusive(fd)).toBe(true);
    try {
      const r = await update(bin, await makeRelease({ x64: agents.new }));
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`another self-update of an agent in ${binDir} is running`);
    } finally {
      unlock(fd);
      closeSync(fd);
    }
    expectUntouched(bin, binDir, agents.old);
  });

  test('rotation: a trust dir pinning the old and the new key takes agents signed by either; with the old removed, one signed only by it is refused, saying why', async () => {
    const trust = join(dir('cai-agent-rotation-'), 'trust');
    mkdirSync(trust, { mode: 0o755 });
    copyFileSync(releaseKey.pub, join(trust, 'release-2025.pub'));
    copyFileSync(otherKey.pub, join(trust, 'release-2026.pub'));
    const byOld = await makeRelease({ x64: agents.new });
    const byNew = await makeRelease({ x64: agents.new, key: otherKey.key });
    for (const rel of [byOld, byNew]) {
      const { bin } = hostWith(agents.old);
      const r = await runAgent(bin, ['self-update', '--asset-dir', rel, '--trust-dir', trust]);
      expect(r.code).toBe(0);
      expect(await versionOf(bin)).toBe('v1.1.0');
    }
    rmSync(join(trust, 'release-2025.pub'));
    const { bin, binDir } = hostWith(agents.old);
    const refused = await runAgent(bin, ['self-update', '--asset-dir', byOld, '--trust-dir', trust]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('which this host does not pin (a key removed after a rotation no longer verifies the releases it alone signed)');
    expectUntouched(bin, binDir, agents.old);
  });

  // self-update --from oci:// itself is tested against a real registry in oci-self-update.test.ts.
  test('--from with --asset-dir is a usage error (exit 2); --rollback with nothing to roll back changes nothing', async () => {
    const { bin, binDir } = hostWith(agents.old);
    const r = await runAgent(bin, ['self-update', '--from', 'oci://ghcr.io/acme/containai:stable', '--asset-dir', binDir]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('give one source: --asset-dir or --from');
    const none = await runAgent(bin, ['self-update', '--rollback']);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('there is no');
    expectUntouched(bin, binDir, agents.old);
  });

  test('a kill at any moment leaves a working agent at the path, and the next run cleans up and finishes', async () => {
    const rel = await makeRelease({ x64: agents.new });
    const oldSum = sha256Hex(readFileSync(agents.old));
    const newSum = sha256Hex(readFileSync(agents.new));
    const { bin, binDir } = hostWith(agents.old);
    // How long a whole run takes here, to spread the kills over it.
    const started = performance.now();
    expect((await update(bin, rel)).code).toBe(0);
    const span = performance.now() - started;
    const seen = new Set<string>();
    for (let i = 0; i < 16; i++) {
      copyFileSync(agents.old, `${bin}.reset`);
      Bun.spawnSync(['mv', '-f', `${bin}.reset`, bin]);
      rmSync(`${bin}.previous`, { force: true });
      const proc = Bun.spawn([bin, 'self-update', '--asset-dir', rel, '--key', releaseKey.pub, '--trust-dir', emptyTrust], {
        env: { ...baseEnv(), CONTAINAI_STATE_DIR: stateDir },
        stdout: 'ignore',
        stderr: 'ignore',
      });
      const at = (i / 15) * span * 1.1;
      const timer = setTimeout(() => proc.kill('SIGKILL'), at);
      await proc.exited;
      clearTimeout(timer);
      const sum = sha256Hex(readFileSync(bin));
      expect([oldSum, newSum]).toContain(sum);
      expect(['v1.0.0', 'v1.1.0']).toContain(await versionOf(bin));
      seen.add(sum === newSum ? 'new' : 'old');
    }
    // Kills early in the run leave the old agent, late ones the new: both were seen.
    expect([...seen].sort()).toEqual(['new', 'old']);
    const finish = await update(bin, rel);
    expect(finish.code).toBe(0);
    expect(await versionOf(bin)).toBe('v1.1.0');
    expect(readdirSync(binDir).filter((n) => n.startsWith('.'))).toEqual([]);
  });
});

describe('self-update from GitHub Releases', () => {
  let server: Server;
  let url = '';
  const assets = new Map<string, string>();
  beforeAll(async () => {
    server = createServer((req, res) => {
      const file = assets.get(new URL(req.url ?? '/', 'http://x').pathname);
      if (!file) {
        res.writeHead(404);
        res.end('Not Found');
        return;
      }
      const body = readFileSync(file);
      res.writeHead(200, { 'content-length': body.length });
      res.end(body);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  test('the agent and its signed sums are downloaded (no attestation asset: a 404 is no attestation), verified and put in place', async () => {
    const rel = await makeRelease({ x64: agents.new });
    for (const name of readdirSync(rel)) assets.set(`/acme/containai/releases/download/v1.1.0/${name}`, join(rel, name));
    const { bin } = hostWith(agents.old);
    const r = await runAgent(bin, ['self-update', '--repo', 'acme/containai', '--version', 'v1.1.0', '--key', releaseKey.pub, '--trust-dir', emptyTrust], { CONTAINAI_GITHUB_URL: url });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`updated: ${bin} is v1.1.0 (was v1.0.0`);
    expect(await versionOf(bin)).toBe('v1.1.0');
    const missing = await runAgent(bin, ['self-update', '--repo', 'acme/containai', '--version', 'v9.9.9', '--key', releaseKey.pub, '--trust-dir', emptyTrust], { CONTAINAI_GITHUB_URL: url });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('has no asset containai-host.SHA256SUMS');
  });
});
