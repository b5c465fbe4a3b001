/**
 * Site mirrors and air-gapped hosts, end to end with the compiled binaries
 * and real signed releases (issue 14, stage 2):
 *
 * - a pull-through cache (Debian's docker-registry with `proxy: remoteurl:`)
 *   in front of the token registry: what hosts installing through it cost the
 *   upstream, counted in the upstream's access log;
 * - an OCI image layout written by `containai-host mirror`, and one written
 *   by `skopeo copy` (a client no one here wrote), each installed inside
 *   `unshare -n`: a network namespace with no interfaces, where the registry
 *   the layout came from cannot be reached.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { existsSync, mkdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PAYLOAD_ARCHIVE } from '../../lib/bundle/layout.ts';
import { binaryPath, build, baseEnv, expectNoStack, removeDir, tempDir, type RunResult } from '../helpers/cli.ts';
import { accessLog, accessSince, blobGets, startProxyRegistry, storedBlob, type ProxyRegistryService } from '../helpers/registry.ts';
import { makeRelease, type Release } from '../helpers/release.ts';
import { makeKeyPair, writeKeyPair } from '../helpers/signing.ts';
import { requireService, startRegistry, waitFor, type RegistryService } from '../helpers/services.ts';

const dirs: string[] = [];
afterAll(() => dirs.forEach(removeDir));
function scratch(prefix = 'cai-oci-mirror-'): string {
  const dir = tempDir(prefix);
  dirs.push(dir);
  return dir;
}

let proxy: ProxyRegistryService;
let basic: RegistryService;
let keys: { pub: string; key: string };
let trustDir: string;
let release: Release;

beforeAll(async () => {
  [proxy, basic] = await Promise.all([startProxyRegistry(), startRegistry()]);
  const work = scratch('cai-oci-mirror-release-');
  keys = writeKeyPair(work, 'release', makeKeyPair('ecdsa'));
  trustDir = join(work, 'trust');
  mkdirSync(trustDir);
  release = await makeRelease({ version: 'v2.0.0', out: join(work, 'dist') });
  const signed = await build(['sign', '--version', 'v2.0.0', '--out', release.out, '--key', keys.key]);
  if (signed.code !== 0) throw new Error(`sign failed:\n${signed.stderr}`);
}, 120_000);

const POLICY = () => ['--key', keys.pub, '--no-public-good', '--trust-dir', trustDir, '--allow-nonroot'];

async function publish(service: { address: string; username: string; password: string }, repo: string): Promise<{ digest: string; layers: Record<string, string> }> {
  const r = await build(['publish', '--version', 'v2.0.0', '--to', `oci://${service.address}/${repo}`, '--channel', 'stable', '--out', release.out, '--json'], {
    env: { GHCR_PAT: service.password, GHCR_USER: service.username },
  });
  if (r.code !== 0) throw new Error(`publish failed:\n${r.stderr}`);
  const digest = JSON.parse(r.stdout).digest as string;
  // What skopeo sees is what the registry serves: the layer digests by title.
  const inspected = await spawn([requireService('skopeo', 'skopeo'), 'inspect', '--raw', '--tls-verify=false', `docker://${service.address}/${repo}@${digest}`], { REGISTRY_AUTH_FILE: authFile(service) });
  const manifest = JSON.parse(inspected.stdout);
  return { digest, layers: Object.fromEntries(manifest.layers.map((l: { digest: string; annotations: Record<string, string> }) => [l.annotations['org.opencontainers.image.title'], l.digest])) };
}

function authFile(service: { address: string; username: string; password: string }): string {
  const path = join(scratch('cai-auth-'), 'config.json');
  writeFileSync(path, JSON.stringify({ auths: { [service.address]: { auth: Buffer.from(`${service.username}:${service.password}`).toString('base64') } } }), { mode: 0o600 });
  return path;
}

async function spawn(argv: string[], env: Record<string, string> = {}): Promise<RunResult> {
  const proc = Bun.spawn(argv, { env: { ...baseEnv(), HOME: scratch('cai-home-'), ...env }, stdout: 'pipe', stderr: 'pipe', stdin: 'ignore' });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, stdout, stderr };
}

const host = (args: string[], env: Record<string, string> = {}) => spawn([binaryPath('containai-host'), ...args], env);
/** The compiled host inside a network namespace with no interfaces. */
const offlineHost = (args: string[]) => spawn([requireService('unshare', 'util-linux'), '-n', binaryPath('containai-host'), ...args]);

describe('a pull-through mirror in front of the registry', () => {
  test("hosts installing through the mirror fetch each blob upstream for the first host only: distribution 2.8's proxy makes that one pull two GETs; five later hosts cost no blob at all", async () => {
    const { digest, layers } = await publish(proxy.upstream, 'acme/site');
    // The blobs an install reads: the small layers and the payload (never the agents).
    const read = ['SHA256SUMS', 'release.json', 'SHA256SUMS.sigstore.json', 'SHA256SUMS.sig', PAYLOAD_ARCHIVE].map((t) => layers[t] as string);
    expect(read.every(Boolean)).toBe(true);
    const from = `oci://${proxy.address}/acme/site:stable`;

    const first = accessLog(proxy.upstream).length;
    const one = await host(['install', '--from', from, '--install-root', join(scratch(), 'opt'), ...POLICY(), '--json']);
    expect(one.code, one.stderr).toBe(0);
    expect(JSON.parse(one.stdout)).toMatchObject({ version: 'v2.0.0', source: `${from}@${digest}` });
    // The mirror stores a blob in the background after serving it: wait for that, as a site's later hosts would find it.
    await waitFor('the mirror to store every blob', () => read.every((d) => existsSync(storedBlob(proxy, d))));
    await waitFor('the upstream log', () => read.every((d) => blobGets(accessSince(proxy.upstream, first), d).length >= 2));
    const firstHost = accessSince(proxy.upstream, first);
    for (const blob of read) {
      // distribution 2.8 (proxyblobstore.ServeBlob) fetches a blob it lacks twice: one GET streamed to the client,
      // one stored by a goroutine of its own. One pull per blob for the site, as two upstream requests.
      expect(blobGets(firstHost, blob).map((e) => e.status)).toEqual([200, 200]);
    }
    expect(blobGets(firstHost, layers['containai-host-linux-x64'] as string)).toEqual([]);

    const later = accessLog(proxy.upstream).length;
    const hosts = await Promise.all([1, 2, 3, 4, 5].map(() => host(['install', '--from', from, '--install-root', join(scratch(), 'opt'), ...POLICY()])));
    for (const r of hosts) {
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain('v2.0.0 is current');
    }
    const laterHosts = accessSince(proxy.upstream, later);
    for (const blob of read) expect(blobGets(laterHosts, blob)).toEqual([]);
    // What each later host still costs upstream: whether the tag moved, one HEAD of the manifest, no bytes.
    expect(laterHosts.map((e) => `${e.method} ${e.path} ${e.status}`)).toEqual(Array(5).fill(`HEAD /v2/acme/site/manifests/stable 200`));
  });
});

describe('air-gapped hosts: an OCI layout installed with no network at all', () => {
  let published: { digest: string; layers: Record<string, string> };
  beforeAll(async () => {
    published = await publish(basic, 'acme/air');
  });

  async function installOffline(layout: string, expected: string): Promise<void> {
    const root = join(scratch(), 'opt');
    // The namespace has no way out: the registry the layout came from cannot be reached from it.
    const online = await offlineHost(['install', '--from', `oci://${basic.address}/acme/air:stable`, '--install-root', root, ...POLICY()]);
    expect(online.code).toBe(1);
    expect(online.stderr).toContain('did not answer properly');
    expectNoStack(online.stderr);

    const r = await offlineHost(['install', '--from', `oci-layout:${layout}:stable`, '--install-root', root, ...POLICY(), '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ outcome: 'installed', version: 'v2.0.0', source: `oci-layout:${layout}@${expected}` });
    expect(readlinkSync(join(root, 'current'))).toBe('releases/v2.0.0');
    expect(JSON.parse(readFileSync(join(root, 'releases/v2.0.0/.containai/install.json'), 'utf8'))).toMatchObject({ source: `oci-layout:${layout}@${expected}`, signer: { kind: 'key' } });
    const verified = await offlineHost(['install', '--verify-only', '--install-root', root, ...POLICY()]);
    expect(verified.code, verified.stderr).toBe(0);
    expect(verified.stdout).toContain('v2.0.0 verifies');
  }

  test('written by containai-host mirror', async () => {
    const layout = join(scratch(), 'layout');
    const mirrored = await host(['mirror', '--from', `oci://${basic.address}/acme/air:stable`, '--to', layout], { DOCKER_CONFIG: join(authFile(basic), '..') });
    expect(mirrored.code, mirrored.stderr).toBe(0);
    expect(mirrored.stdout).toContain(`mirrored stable (${published.digest})`);
    await installOffline(layout, published.digest);

    // A layout whose payload blob was changed on disk is refused, and nothing is installed.
    const blob = join(layout, 'blobs', 'sha256', (published.layers[PAYLOAD_ARCHIVE] as string).slice('sha256:'.length));
    const bytes = readFileSync(blob);
    bytes[4] = (bytes[4] as number) ^ 1;
    writeFileSync(blob, bytes);
    const root = join(scratch(), 'opt');
    const refused = await offlineHost(['install', '--from', `oci-layout:${layout}:stable`, '--install-root', root, ...POLICY()]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('does not match its digest');
    expect(existsSync(join(root, 'current'))).toBe(false);
  });

  test('written by skopeo copy', async () => {
    const layout = join(scratch(), 'skopeo');
    const copied = await spawn([requireService('skopeo', 'skopeo'), 'copy', '--src-tls-verify=false', `docker://${basic.address}/acme/air:stable`, `oci:${layout}:stable`], { REGISTRY_AUTH_FILE: authFile(basic) });
    expect(copied.code, copied.stderr).toBe(0);
    expect(statSync(join(layout, 'index.json')).isFile()).toBe(true);
    await installOffline(layout, published.digest);
  });
});
