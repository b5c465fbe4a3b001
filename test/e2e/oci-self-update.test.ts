/**
 * `containai-host self-update --from oci://…` (and `--from oci-layout:DIR`)
 * end to end: compiled agents v1.0.0 and v1.1.0 (scripts/build.ts run from a
 * temp root), v1.1.0 packaged, signed and published as a release artifact by
 * the compiled containai-build, and the running v1.0.0 agent replacing itself
 * with the one of the artifact's layers. containai-host.SHA256SUMS is judged
 * by the same code as the asset-folder path; the registry's access log shows
 * what was fetched (the x64 agent, never the arm64 one or the payload), and a
 * refusal fetched no agent at all. Every refusal leaves the agent as it was.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { agentAssetName, PAYLOAD_ARCHIVE } from '../../lib/bundle/layout.ts';
import { baseEnv, build, expectNoStack, REPO_ROOT, removeDir, tempDir, type RunResult } from '../helpers/cli.ts';
import { accessLog, blobGets, settleLog } from '../helpers/registry.ts';
import { AGENT_MACHINE, elfStandIn, makeRelease } from '../helpers/release.ts';
import { makeKeyPair, sha256Hex, writeKeyPair } from '../helpers/signing.ts';
import { requireService, startRegistry, type RegistryService } from '../helpers/services.ts';

const dirs: string[] = [];
afterAll(() => dirs.forEach(removeDir));
function scratch(prefix = 'cai-oci-agent-'): string {
  const d = tempDir(prefix);
  dirs.push(d);
  return d;
}

/** scripts/build.ts run from a temp root that links to this checkout, so its dist/ is the temp one. */
function buildAgent(version: string): string {
  const root = scratch('cai-agent-build-');
  mkdirSync(join(root, 'scripts'));
  copyFileSync(join(REPO_ROOT, 'scripts', 'build.ts'), join(root, 'scripts', 'build.ts'));
  for (const entry of ['cmd', 'lib', 'node_modules', 'package.json', 'tsconfig.json', 'bunfig.toml']) symlinkSync(join(REPO_ROOT, entry), join(root, entry));
  const r = Bun.spawnSync([process.execPath, join(root, 'scripts', 'build.ts'), 'containai-host'], { cwd: root, env: { ...process.env, CONTAINAI_BUILD_VERSION: version }, stderr: 'pipe' });
  if (r.exitCode !== 0) throw new Error(`build of ${version} failed: ${r.stderr.toString()}`);
  return join(root, 'dist', 'containai-host');
}

let basic: RegistryService;
let oldAgent: string;
let keys: { pub: string; key: string };
let emptyTrust: string;
let stateDir: string;
let dockerConfig: string;
const published: Record<'good' | 'other', { digest: string; layers: Record<string, string> }> = {} as never;

/** v1.1.0 packaged around the new agent (arm64: a stand-in, this host never takes it), signed with `key`, published. */
async function publishAgentRelease(newAgent: string, key: string, repo: string): Promise<{ digest: string; layers: Record<string, string> }> {
  const agentDir = scratch('cai-agents-');
  copyFileSync(newAgent, join(agentDir, agentAssetName('x64')));
  writeFileSync(join(agentDir, agentAssetName('arm64')), elfStandIn({ machine: AGENT_MACHINE.arm64 }, 'arm64 stand-in\n'), { mode: 0o755 });
  const release = await makeRelease({ version: 'v1.1.0', out: join(scratch(), 'dist'), agentDir });
  const signed = await build(['sign', '--version', 'v1.1.0', '--out', release.out, '--key', key]);
  if (signed.code !== 0) throw new Error(`sign failed:\n${signed.stderr}`);
  const r = await build(['publish', '--version', 'v1.1.0', '--to', `oci://${basic.address}/${repo}`, '--channel', 'stable', '--out', release.out, '--json'], { env: { GHCR_PAT: basic.password, GHCR_USER: basic.username } });
  if (r.code !== 0) throw new Error(`publish failed:\n${r.stderr}`);
  const digest = JSON.parse(r.stdout).digest as string;
  const skopeo = Bun.spawnSync([requireService('skopeo', 'skopeo'), 'inspect', '--raw', '--tls-verify=false', `docker://${basic.address}/${repo}@${digest}`], { env: { ...baseEnv(), REGISTRY_AUTH_FILE: join(dockerConfig, 'config.json') } });
  const manifest = JSON.parse(skopeo.stdout.toString());
  return { digest, layers: Object.fromEntries(manifest.layers.map((l: { digest: string; annotations: Record<string, string> }) => [l.annotations['org.opencontainers.image.title'], l.digest])) };
}

beforeAll(async () => {
  basic = await startRegistry();
  const work = scratch('cai-oci-agent-keys-');
  keys = writeKeyPair(work, 'release', makeKeyPair('ecdsa'));
  const other = writeKeyPair(work, 'other', makeKeyPair('ecdsa'));
  emptyTrust = join(work, 'trust');
  mkdirSync(emptyTrust);
  stateDir = join(work, 'state');
  dockerConfig = join(work, 'docker');
  mkdirSync(dockerConfig);
  writeFileSync(join(dockerConfig, 'config.json'), JSON.stringify({ auths: { [basic.address]: { auth: Buffer.from(`${basic.username}:${basic.password}`).toString('base64') } } }), { mode: 0o600 });
  oldAgent = buildAgent('v1.0.0');
  const newAgent = buildAgent('v1.1.0');
  published.good = await publishAgentRelease(newAgent, keys.key, 'acme/agent');
  published.other = await publishAgentRelease(newAgent, other.key, 'acme/agent-other');
}, 240_000);

/** A host folder holding the old agent, as /usr/local/sbin would. */
function hostWithOldAgent(): { bin: string; binDir: string } {
  const binDir = join(scratch('cai-agent-host-'), 'sbin');
  mkdirSync(binDir, { mode: 0o755 });
  const bin = join(binDir, 'containai-host');
  copyFileSync(oldAgent, bin);
  return { bin, binDir };
}

async function run(argv: string[]): Promise<RunResult> {
  const proc = Bun.spawn(argv, { env: { ...baseEnv(), HOME: scratch('cai-home-'), CONTAINAI_STATE_DIR: stateDir, DOCKER_CONFIG: dockerConfig }, stdout: 'pipe', stderr: 'pipe', stdin: 'ignore' });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  expectNoStack(stderr);
  return { code, stdout, stderr };
}

const POLICY = () => ['--key', keys.pub, '--trust-dir', emptyTrust];

function expectUntouched(bin: string, binDir: string): void {
  expect(sha256Hex(readFileSync(bin))).toBe(sha256Hex(readFileSync(oldAgent)));
  expect(readdirSync(binDir)).toEqual(['containai-host']);
}

describe('self-update --from a registry', () => {
  test("the running agent takes this host's agent from the release artifact: only that layer is fetched, verified by the signed containai-host.SHA256SUMS", async () => {
    const { bin, binDir } = hostWithOldAgent();
    const from = `oci://${basic.address}/acme/agent:stable`;
    const mark = accessLog(basic).length;
    const r = await run([bin, 'self-update', '--from', from, ...POLICY(), '--json']);
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc).toMatchObject({ ok: true, outcome: 'updated', version: 'v1.1.0', from: 'v1.0.0', source: `${from}@${published.good.digest}`, signer: expect.stringContaining('key') });
    expect((await run([bin, '--version'])).stdout).toMatch(/^containai-host v1\.1\.0 /);
    expect(sha256Hex(readFileSync(`${bin}.previous`))).toBe(sha256Hex(readFileSync(oldAgent)));
    expect(readdirSync(binDir).sort()).toEqual(['containai-host', 'containai-host.previous']);

    const log = await settleLog(basic, mark, 5);
    expect(blobGets(log, published.good.layers[agentAssetName('x64')] as string).map((e) => e.status)).toEqual([200]);
    for (const never of [agentAssetName('arm64'), PAYLOAD_ARCHIVE, 'SHA256SUMS']) expect(blobGets(log, published.good.layers[never] as string)).toEqual([]);
    const events = readFileSync(join(stateDir, 'events.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(events.at(-1)).toMatchObject({ action: 'self-update', outcome: 'ok', version: 'v1.1.0', source: `${from}@${published.good.digest}` });
    for (const secret of [basic.password, Buffer.from(`${basic.username}:${basic.password}`).toString('base64')]) {
      expect(r.stdout + r.stderr + readFileSync(join(stateDir, 'events.jsonl'), 'utf8')).not.toContain(secret);
    }

    // Again: the agent here is that version already; nothing changes.
    const again = await run([bin, 'self-update', '--from', from, ...POLICY()]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain('unchanged');
  });

  test('a containai-host.SHA256SUMS signed by a key this host does not pin is refused before any agent byte is asked for; the agent is untouched', async () => {
    const { bin, binDir } = hostWithOldAgent();
    const mark = accessLog(basic).length;
    const r = await run([bin, 'self-update', '--from', `oci://${basic.address}/acme/agent-other:stable`, ...POLICY()]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('containai-host.SHA256SUMS');
    expect(r.stderr).toContain('hint:');
    expectUntouched(bin, binDir);
    const log = await settleLog(basic, mark, 3);
    for (const arch of ['x64', 'arm64'] as const) expect(blobGets(log, published.other.layers[agentAssetName(arch)] as string)).toEqual([]);
  });

  test('from an OCI layout written by mirror, inside unshare -n (no network at all)', async () => {
    const layout = join(scratch(), 'layout');
    const mirrored = await run([join(REPO_ROOT, 'dist', 'containai-host'), 'mirror', '--from', `oci://${basic.address}/acme/agent:stable`, '--to', layout]);
    expect(mirrored.code, mirrored.stderr).toBe(0);
    const { bin } = hostWithOldAgent();
    const r = await run([requireService('unshare', 'util-linux'), '-n', bin, 'self-update', '--from', `oci-layout:${layout}:stable`, ...POLICY(), '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ outcome: 'updated', version: 'v1.1.0', source: `oci-layout:${layout}@${published.good.digest}` });
    expect((await run([bin, '--version'])).stdout).toMatch(/^containai-host v1\.1\.0 /);
    expect(existsSync(`${bin}.previous`)).toBe(true);
  });
});
