/**
 * `containai-host install --from oci://…` end to end (issue 14, stage 2): real
 * releases made by the compiled `containai-build package` and `sign` (a test
 * key), pushed by `containai-build publish` to Debian's docker-registry (htpasswd
 * and token auth), installed by the compiled containai-host with credentials
 * where a host keeps them (DOCKER_CONFIG). What the registry was asked is read
 * from its own access log: a refusal before the payload must show no request
 * for the payload blob. Every refusal checks that the install root is as it
 * was (current, releases/, the floor), with no staging or download left.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PAYLOAD_ARCHIVE } from '../../lib/bundle/layout.ts';
import { sha256File } from '../../lib/digest.ts';
import { addBadVersion } from '../../lib/gate/bad.ts';
import { RegistryClient } from '../../lib/oci/client.ts';
import { parseRegistryReference } from '../../lib/oci/reference.ts';
import { getManifest, putManifest } from '../../lib/oci/registry.ts';
import { canonicalBytes, MEDIA_TYPE_IMAGE_MANIFEST } from '../../lib/oci/types.ts';
import { installLayout } from '../../lib/release/layout.ts';
import { binaryPath, build, baseEnv, expectNoStack, host, removeDir, tempDir, type RunResult } from '../helpers/cli.ts';
import { accessLog, blobGets, settleLog, startTokenRegistry, storedBlob, type TokenRegistryService } from '../helpers/registry.ts';
import { startThrottleProxy } from '../helpers/registry-throttle.ts';
import { makeRelease, SMALL_HOST_TREE, writeTree, type Release } from '../helpers/release.ts';
import { makeKeyPair, writeKeyPair } from '../helpers/signing.ts';
import { startRegistry, waitFor, type RegistryService } from '../helpers/services.ts';

const dirs: string[] = [];
afterAll(() => dirs.forEach(removeDir));
function scratch(prefix = 'cai-oci-install-'): string {
  const dir = tempDir(prefix);
  dirs.push(dir);
  return dir;
}

let basic: RegistryService;
let token: TokenRegistryService;
let work: string;
let keys: { pub: string; key: string };
let trustDir: string;
const releases: Record<string, Release> = {};
/** A GITHUB_TOKEN set on every host run: it must never be sent to these registries, nor printed. */
const GITHUB_TOKEN = `ghp_sentinel${crypto.randomUUID().replaceAll('-', '')}`;

/** Releases built and signed as CI does; v1.2.0 signed with a key this host does not pin. */
beforeAll(async () => {
  [basic, token] = await Promise.all([startRegistry(), startTokenRegistry()]);
  work = scratch('cai-oci-releases-');
  keys = writeKeyPair(work, 'release', makeKeyPair('ecdsa'));
  const other = writeKeyPair(work, 'other', makeKeyPair('ecdsa'));
  trustDir = join(work, 'trust');
  mkdirSync(trustDir);
  const out = join(work, 'dist');
  // v1.3.0 carries 24 MB of incompressible data: a payload large enough to stop at 60%.
  const bigTree = join(work, 'big-host');
  writeTree(bigTree, SMALL_HOST_TREE);
  writeFileSync(join(bigTree, 'data.bin'), crypto.getRandomValues(new Uint8Array(24 * 1024 * 1024)));
  for (const [version, key, hostTree] of [['v1.0.0', keys.key], ['v1.1.0', keys.key], ['v1.2.0', other.key], ['v1.3.0', keys.key, bigTree]] as const) {
    const release = await makeRelease({ version, out, hostTree });
    const signed = await build(['sign', '--version', version, '--out', out, '--key', key]);
    if (signed.code !== 0) throw new Error(`sign ${version} failed:\n${signed.stderr}`);
    releases[version] = release;
  }
}, 180_000);

const POLICY = () => ['--key', keys.pub, '--no-public-good', '--trust-dir', trustDir, '--allow-nonroot'];

/** A DOCKER_CONFIG folder holding `docker login`'s record for the registry. */
function dockerConfig(service: { address: string; username: string }, password: string): string {
  const dir = scratch('cai-docker-config-');
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ auths: { [service.address]: { auth: Buffer.from(`${service.username}:${password}`).toString('base64') } } }), { mode: 0o600 });
  return dir;
}

/** `containai-build publish` of one release (the channel tag moved to it). */
async function publish(service: { address: string; username: string; password: string }, repo: string, version: string, channel = 'stable'): Promise<string> {
  const release = releases[version] as Release;
  const r = await build(['publish', '--version', version, '--to', `oci://${service.address}/${repo}`, '--channel', channel, '--out', release.out, '--json'], {
    env: { GHCR_PAT: service.password, GHCR_USER: service.username },
  });
  if (r.code !== 0) throw new Error(`publish ${version} failed:\n${r.stderr}`);
  return JSON.parse(r.stdout).digest as string;
}

interface HostEnv {
  dockerConfig?: string;
}

function install(root: string, from: string, extra: string[] = [], env: HostEnv = {}): Promise<RunResult> {
  return host(['install', '--from', from, '--install-root', root, ...POLICY(), ...extra], {
    env: { HOME: scratch('cai-home-'), DOCKER_CONFIG: env.dockerConfig, GITHUB_TOKEN },
  });
}

/** The layer digests of a published release, by title. */
async function layers(service: RegistryService | TokenRegistryService, repo: string, digest: string): Promise<Record<string, string>> {
  const client = new RegistryClient(parseRegistryReference(`oci://${service.address}/${repo}`), { credentials: { username: service.username, password: service.password, source: 'test' } });
  const manifest = JSON.parse(new TextDecoder().decode((await getManifest(client, digest)).bytes));
  return Object.fromEntries(manifest.layers.map((l: { digest: string; annotations: Record<string, string> }) => [l.annotations['org.opencontainers.image.title'], l.digest]));
}

/** What an install root holds that a refusal must leave alone: current, previous, releases/, the floor. */
function rootState(root: string): Record<string, unknown> {
  const link = (name: string) => (lstatSync(join(root, name), { throwIfNoEntry: false })?.isSymbolicLink() ? readlinkSync(join(root, name)) : undefined);
  const floor = join(root, 'state', 'floor.json');
  return {
    current: link('current'),
    previous: link('previous'),
    releases: existsSync(join(root, 'releases')) ? readdirSync(join(root, 'releases')).sort() : [],
    floor: existsSync(floor) ? readFileSync(floor, 'utf8') : undefined,
  };
}

function expectRefusedUnchanged(r: RunResult, root: string, before: Record<string, unknown>): void {
  expect(r.code, r.stderr).toBe(1);
  expectNoStack(r.stderr);
  expect(r.stderr).toContain('hint:');
  expect(rootState(root)).toEqual(before);
  expect(readdirSync(join(root, 'releases')).filter((n) => n.startsWith('.staging'))).toEqual([]);
  const downloads = join(root, 'state', 'downloads');
  expect(existsSync(downloads) ? readdirSync(downloads) : []).toEqual([]);
}

function events(root: string): Array<Record<string, unknown>> {
  return readFileSync(join(root, 'state', 'events.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
}

/** Every secret's absence from what a user sees and what the host wrote. */
function expectNoSecrets(secrets: string[], outputs: RunResult[], root: string): void {
  const files: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      const info = lstatSync(path);
      if (info.isDirectory()) walk(path);
      else if (info.isFile() && info.size < 1 << 20) files.push(path);
    }
  };
  if (existsSync(join(root, 'state'))) walk(join(root, 'state'));
  for (const release of existsSync(join(root, 'releases')) ? readdirSync(join(root, 'releases')) : []) {
    if (existsSync(join(root, 'releases', release, '.containai'))) walk(join(root, 'releases', release, '.containai'));
  }
  expect(files.some((f) => f.endsWith('events.jsonl'))).toBe(true);
  for (const secret of secrets) {
    for (const out of outputs) {
      expect(out.stdout).not.toContain(secret);
      expect(out.stderr).not.toContain(secret);
    }
    for (const file of files) expect(readFileSync(file, 'utf8')).not.toContain(secret);
  }
}

/** An install root whose current is `version`, installed from the registry. */
async function rootWith(version: string, service: RegistryService, repo: string, config: string): Promise<string> {
  await publish(service, repo, version, `only-${version.replaceAll('.', '-')}`);
  const root = join(scratch(), 'opt');
  const r = await install(root, `oci://${service.address}/${repo}:${version}`, [], { dockerConfig: config });
  expect(r.code, r.stderr).toBe(0);
  return root;
}

describe('install --from oci:// with htpasswd auth (credentials from DOCKER_CONFIG)', () => {
  test('installs the signed release the tag names and verifies it; at most 8 requests, no agent layer fetched; no secret printed or written', async () => {
    const digest = await publish(basic, 'acme/app', 'v1.0.0');
    const byTitle = await layers(basic, 'acme/app', digest);
    const config = dockerConfig(basic, basic.password);
    const root = join(scratch(), 'opt');
    const mark = accessLog(basic).length;
    const r = await install(root, `oci://${basic.address}/acme/app:stable`, ['--json'], { dockerConfig: config });
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc).toMatchObject({ ok: true, outcome: 'installed', version: 'v1.0.0', format: 2, source: `oci://${basic.address}/acme/app:stable@${digest}` });
    expect(readlinkSync(join(root, 'current'))).toBe('releases/v1.0.0');
    const record = JSON.parse(readFileSync(join(root, 'releases/v1.0.0/.containai/install.json'), 'utf8'));
    expect(record).toMatchObject({ format: 2, version: 'v1.0.0', source: `oci://${basic.address}/acme/app:stable@${digest}`, signer: { kind: 'key' } });
    expect(readFileSync(join(root, 'releases/v1.0.0/SHA256SUMS'), 'utf8')).toBe(readFileSync((releases['v1.0.0'] as Release).sums, 'utf8'));

    const log = await settleLog(basic, mark, 7);
    expect(log.length).toBeLessThanOrEqual(8);
    expect(blobGets(log, byTitle[PAYLOAD_ARCHIVE] as string)).toHaveLength(1);
    for (const agent of ['containai-host-linux-x64', 'containai-host-linux-arm64']) expect(blobGets(log, byTitle[agent] as string)).toEqual([]);
    expect(readdirSync(join(root, 'state', 'downloads'))).toEqual([]);

    const verified = await host(['install', '--verify-only', '--install-root', root, ...POLICY()]);
    expect(verified.code, verified.stderr).toBe(0);
    expect(verified.stdout).toContain('v1.0.0 verifies: signer key');

    const basicAuth = Buffer.from(`${basic.username}:${basic.password}`).toString('base64');
    expectNoSecrets([basic.password, basicAuth, GITHUB_TOKEN], [r, verified], root);
  });

  test('wrong credentials in config.json are refused, and neither the password nor its base64 is printed, in --json or events.jsonl', async () => {
    await publish(basic, 'acme/app', 'v1.0.0');
    const wrong = `wrong-${crypto.randomUUID()}`;
    const config = dockerConfig(basic, wrong);
    const root = join(scratch(), 'opt');
    const human = await install(root, `oci://${basic.address}/acme/app:stable`, [], { dockerConfig: config });
    expect(human.code).toBe(1);
    expect(human.stderr).toContain('refused the credentials from $DOCKER_CONFIG/config.json');
    expect(human.stderr).toContain('hint: check that the credentials in $DOCKER_CONFIG/config.json may pull from');
    expectNoStack(human.stderr);
    const json = await install(root, `oci://${basic.address}/acme/app:stable`, ['--json'], { dockerConfig: config });
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toMatchObject({ ok: false });
    expect(existsSync(join(root, 'current'))).toBe(false);
    expect(events(root).map((e) => e.outcome)).toEqual(['failed', 'failed']);
    expectNoSecrets([wrong, Buffer.from(`${basic.username}:${wrong}`).toString('base64'), GITHUB_TOKEN], [human, json], root);

    // No credentials at all: the hint says where a host takes them from.
    const none = await install(join(scratch(), 'opt'), `oci://${basic.address}/acme/app:stable`);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('refused the credentials (none were found)');
    expect(none.stderr).toContain('docker login');
  });
});

describe('install --from oci:// with token auth', () => {
  test('a public repository installs anonymously through the bearer-token flow; a private one needs config.json, and then installs', async () => {
    await publish(token, 'acme/app', 'v1.0.0');
    await publish(token, 'private/app', 'v1.0.0');
    const at = token.tokenRequests.length;
    const anonymous = await install(join(scratch(), 'opt'), `oci://${token.address}/acme/app:stable`);
    expect(anonymous.code, anonymous.stderr).toBe(0);
    expect(anonymous.stdout).toContain('v1.0.0 is current (releases/v1.0.0');
    expect(token.tokenRequests.slice(at)).toEqual([{ user: undefined, scopes: ['repository:acme/app:pull'], granted: [{ name: 'acme/app', actions: ['pull'] }] }]);

    const root = join(scratch(), 'opt');
    const refused = await install(root, `oci://${token.address}/private/app:stable`);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('refused the credentials (none were found)');
    expect(existsSync(join(root, 'current'))).toBe(false);

    const config = dockerConfig(token, token.password);
    const allowed = await install(root, `oci://${token.address}/private/app:stable`, ['--json'], { dockerConfig: config });
    expect(allowed.code, allowed.stderr).toBe(0);
    expect(JSON.parse(allowed.stdout)).toMatchObject({ outcome: 'installed', version: 'v1.0.0' });
    expect(token.tokenRequests.at(-1)).toMatchObject({ user: token.username, granted: [{ name: 'private/app', actions: ['pull'] }] });
    expectNoSecrets([token.password, Buffer.from(`${token.username}:${token.password}`).toString('base64'), GITHUB_TOKEN], [refused, allowed], root);
  });
});

describe('refusals: nothing changes, and the payload is asked for only after the manifest verified', () => {
  let config: string;
  beforeAll(() => {
    config = dockerConfig(basic, basic.password);
  });

  test('a release signed with another key: refused after its small layers; the access log shows no request for the payload blob', async () => {
    const root = await rootWith('v1.0.0', basic, 'acme/refusals', config);
    const digest = await publish(basic, 'acme/other-key', 'v1.2.0');
    const payload = (await layers(basic, 'acme/other-key', digest))[PAYLOAD_ARCHIVE] as string;
    const before = rootState(root);
    const mark = accessLog(basic).length;
    const r = await install(root, `oci://${basic.address}/acme/other-key:stable`, [], { dockerConfig: config });
    expectRefusedUnchanged(r, root, before);
    expect(r.stderr).toMatch(/SHA256SUMS.*(signature|key)/i);
    const log = await settleLog(basic, mark, 4);
    expect(blobGets(log, payload)).toEqual([]);
    expect(log.filter((e) => e.path.includes('/blobs/')).length).toBeGreaterThan(0);
    expect(events(root).at(-1)).toMatchObject({ action: 'install', outcome: 'refused' });
  });

  test("a layer swapped for another blob: the payload layer re-pointed at another release's payload is refused by the signed manifest; stored bytes changed under a digest are refused by the digest", async () => {
    const root = await rootWith('v1.0.0', basic, 'acme/refusals', config);
    const newer = await publish(basic, 'acme/swap', 'v1.1.0');
    const older = await publish(basic, 'acme/swap', 'v1.0.0', 'old');
    const newLayers = await layers(basic, 'acme/swap', newer);
    const oldLayers = await layers(basic, 'acme/swap', older);
    const client = new RegistryClient(parseRegistryReference(`oci://${basic.address}/acme/swap`), { credentials: { username: basic.username, password: basic.password, source: 'test' }, actions: 'pull,push' });

    // v1.1.0's signed SHA256SUMS and release.json, with v1.0.0's (genuine, signed) payload blob as its payload layer.
    const manifest = JSON.parse(new TextDecoder().decode((await getManifest(client, newer)).bytes));
    const oldPayloadSize = statSync((releases['v1.0.0'] as Release).payload).size;
    for (const layer of manifest.layers) {
      if (layer.annotations['org.opencontainers.image.title'] === PAYLOAD_ARCHIVE) Object.assign(layer, { digest: oldLayers[PAYLOAD_ARCHIVE], size: oldPayloadSize });
    }
    await putManifest(client, 'swapped', canonicalBytes(manifest), MEDIA_TYPE_IMAGE_MANIFEST);
    let before = rootState(root);
    const swapped = await install(root, `oci://${basic.address}/acme/swap:swapped`, [], { dockerConfig: config });
    expectRefusedUnchanged(swapped, root, before);
    expect(swapped.stderr).toContain('SHA256SUMS: is not the SHA256SUMS whose signature was verified');

    // The registry serves other bytes for the payload's digest (its storage changed), in the gzip header's MTIME,
    // which no decompressor checks: every file inside still matches SHA256SUMS, and the blob's digest refuses it.
    const path = storedBlob(basic, newLayers[PAYLOAD_ARCHIVE] as string);
    const original = readFileSync(path);
    const changed = Buffer.from(original);
    changed[4] = (changed[4] as number) ^ 0x01;
    writeFileSync(path, changed);
    try {
      before = rootState(root);
      const r = await install(root, `oci://${basic.address}/acme/swap:stable`, [], { dockerConfig: config });
      expectRefusedUnchanged(r, root, before);
      expect(r.stderr).toContain(`payload.tar.gz from ${basic.address}/acme/swap does not match its digest (expected ${newLayers[PAYLOAD_ARCHIVE]}`);
    } finally {
      writeFileSync(path, original);
    }

    // And a small layer (SHA256SUMS) changed in storage: refused before the payload is asked for.
    const sumsPath = storedBlob(basic, newLayers.SHA256SUMS as string);
    const sums = readFileSync(sumsPath);
    writeFileSync(sumsPath, Buffer.from(sums.toString().replace(/^./, (c) => (c === '0' ? '1' : '0'))));
    try {
      before = rootState(root);
      const mark = accessLog(basic).length;
      const r = await install(root, `oci://${basic.address}/acme/swap:stable`, [], { dockerConfig: config });
      expectRefusedUnchanged(r, root, before);
      expect(r.stderr).toContain('SHA256SUMS');
      expect(r.stderr).toContain('does not match its digest');
      expect(blobGets(await settleLog(basic, mark, 3), newLayers[PAYLOAD_ARCHIVE] as string)).toEqual([]);
    } finally {
      writeFileSync(sumsPath, sums);
    }
  });

  test('a tag moved to an older release is refused by the floor before the payload is asked for, and installs with --allow-downgrade', async () => {
    const root = await rootWith('v1.1.0', basic, 'acme/moved', config);
    const older = await publish(basic, 'acme/moved', 'v1.0.0', 'stable');
    const payload = (await layers(basic, 'acme/moved', older))[PAYLOAD_ARCHIVE] as string;
    const before = rootState(root);
    const mark = accessLog(basic).length;
    const r = await install(root, `oci://${basic.address}/acme/moved:stable`, [], { dockerConfig: config });
    expectRefusedUnchanged(r, root, before);
    expect(r.stderr).toContain('refusing a downgrade');
    expect(r.stderr).toContain('--allow-downgrade');
    expect(blobGets(await settleLog(basic, mark, 3), payload)).toEqual([]);

    const allowed = await install(root, `oci://${basic.address}/acme/moved:stable`, ['--allow-downgrade'], { dockerConfig: config });
    expect(allowed.code, allowed.stderr).toBe(0);
    expect(readlinkSync(join(root, 'current'))).toBe('releases/v1.0.0');
    expect(readlinkSync(join(root, 'previous'))).toBe('releases/v1.1.0');
  });

  test('a version on the bad list (state/bad.json) is refused, read from the verified release.json, before the payload is asked for', async () => {
    const root = await rootWith('v1.0.0', basic, 'acme/bad', config);
    await addBadVersion(installLayout(root), { version: 'v1.1.0', at: '2026-01-02T03:04:05.000Z', reason: 'probe "proxy answers" failed', trialId: 't1' });
    const digest = await publish(basic, 'acme/bad', 'v1.1.0', 'stable');
    const payload = (await layers(basic, 'acme/bad', digest))[PAYLOAD_ARCHIVE] as string;
    const before = rootState(root);
    const mark = accessLog(basic).length;
    const r = await install(root, `oci://${basic.address}/acme/bad:stable`, [], { dockerConfig: config });
    expectRefusedUnchanged(r, root, before);
    expect(r.stderr).toContain('refusing v1.1.0: v1.1.0 failed its health gate at 2026-01-02T03:04:05.000Z: probe "proxy answers" failed');
    expect(blobGets(await settleLog(basic, mark, 3), payload)).toEqual([]);
  });

  test('a tag (and a version annotation) naming another version is not trusted: the verified release.json names what is installed', async () => {
    const digest = await publish(basic, 'acme/names', 'v1.1.0');
    const client = new RegistryClient(parseRegistryReference(`oci://${basic.address}/acme/names`), { credentials: { username: basic.username, password: basic.password, source: 'test' }, actions: 'pull,push' });
    const manifest = JSON.parse(new TextDecoder().decode((await getManifest(client, digest)).bytes));
    manifest.annotations['org.opencontainers.image.version'] = 'v9.9.9';
    const relabelled = await putManifest(client, 'v9.9.9', canonicalBytes(manifest), MEDIA_TYPE_IMAGE_MANIFEST);

    const root = join(scratch(), 'opt');
    const r = await install(root, `oci://${basic.address}/acme/names:v9.9.9`, ['--json'], { dockerConfig: config });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ version: 'v1.1.0', source: `oci://${basic.address}/acme/names:v9.9.9@${relabelled.digest}` });
    expect(readlinkSync(join(root, 'current'))).toBe('releases/v1.1.0');
    expect(existsSync(join(root, 'releases/v9.9.9'))).toBe(false);
    expect(JSON.parse(readFileSync(join(root, 'state', 'floor.json'), 'utf8'))).toMatchObject({ highest: 'v1.1.0' });

    // Asked for by the name the tag claims, it is refused: the signed release.json says otherwise.
    const other = join(scratch(), 'opt');
    const named = await install(other, `oci://${basic.address}/acme/names:v9.9.9`, ['--version', 'v9.9.9'], { dockerConfig: config });
    expect(named.code).toBe(1);
    expect(named.stderr).toContain('this is release v1.1.0 (its release.json), not v9.9.9');
    expect(existsSync(join(other, 'current'))).toBe(false);
  });
});

describe('an interrupted download resumes', () => {
  test('killed at 60% of the payload blob: the next run asks the registry only for the rest (one 206 in the access log), and the result verifies', async () => {
    const config = dockerConfig(basic, basic.password);
    const digest = await publish(basic, 'acme/resume', 'v1.3.0');
    const payload = (await layers(basic, 'acme/resume', digest))[PAYLOAD_ARCHIVE] as string;
    const total = statSync((releases['v1.3.0'] as Release).payload).size;
    const stopAt = Math.floor(total * 0.6);
    // A registry that stalls: the proxy passes everything through, then holds the payload's answer at 60%.
    const proxy = await startThrottleProxy(basic.address);
    proxy.holdBlobsAfter(stopAt);
    const root = join(scratch(), 'opt');
    const partial = join(root, 'state', 'downloads', `sha256-${payload.slice('sha256:'.length)}.partial`);
    const proc = Bun.spawn([binaryPath('containai-host'), 'install', '--from', `oci://${proxy.address}/acme/resume:stable`, '--install-root', root, ...POLICY()], {
      // The host's credentials are keyed by the registry it names: here the proxy's address.
      env: { ...baseEnv(), HOME: scratch('cai-home-'), DOCKER_CONFIG: dockerConfig({ address: proxy.address, username: basic.username }, basic.password) },
      stdout: 'ignore',
      stderr: 'pipe',
    });
    const said = new Response(proc.stderr).text();
    await waitFor('60% of the payload on disk', () => proc.exitCode !== null || (existsSync(partial) && statSync(partial).size >= stopAt), 60_000);
    if (proc.exitCode !== null) throw new Error(`the install ended (${proc.exitCode}) before 60%:\n${await said}`);
    proc.kill('SIGKILL');
    await proc.exited;
    proxy.release();
    const left = statSync(partial).size;
    expect(left).toBe(stopAt);
    expect(existsSync(join(root, 'current'))).toBe(false);
    // The killed run's GET is logged once the registry's answer to the proxy ends.
    await waitFor('the killed download in the access log', () => blobGets(accessLog(basic), payload).length === 1);

    const mark = accessLog(basic).length;
    const r = await install(root, `oci://${basic.address}/acme/resume:stable`, ['--json'], { dockerConfig: config });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ outcome: 'installed', version: 'v1.3.0' });
    const gets = blobGets(await settleLog(basic, mark, 7), payload);
    expect(gets).toHaveLength(1);
    expect(gets[0]).toMatchObject({ status: 206, bytes: total - left });
    expect(existsSync(partial)).toBe(false);
    expect(readdirSync(join(root, 'releases')).filter((n) => n.startsWith('.staging'))).toEqual([]);
    const verified = await host(['install', '--verify-only', '--install-root', root, ...POLICY()]);
    expect(verified.code, verified.stderr).toBe(0);
    expect(await sha256File(join(root, 'current', 'host', 'data.bin'))).toBe(await sha256File(join(work, 'big-host', 'data.bin')));
    proxy.stop();
  });
});

