/**
 * publish and mirror as a user runs them (the compiled binaries), against
 * Debian's docker-registry, checked with a client no one here wrote (skopeo),
 * and a mirrored layout read inside a network namespace with no interfaces.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sha256File } from '../../lib/digest.ts';
import { build, expectNoStack, host, REPO_ROOT, removeDir, tempDir } from '../helpers/cli.ts';
import { accessLog, accessSince, startTokenRegistry, type TokenRegistryService } from '../helpers/registry.ts';
import { makeRegistryRelease, type RegistryRelease } from '../helpers/registry-release.ts';
import { requireService, startRegistry, type RegistryService } from '../helpers/services.ts';

const dirs: string[] = [];
afterAll(() => dirs.forEach(removeDir));
function scratch(prefix: string): string {
  const dir = tempDir(prefix);
  dirs.push(dir);
  return dir;
}

/** A DOCKER_CONFIG folder holding `docker login`'s record for the registry. */
function dockerConfig(service: { address: string; username: string; password: string }): string {
  const dir = scratch('cai-docker-config-');
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ auths: { [service.address]: { auth: Buffer.from(`${service.username}:${service.password}`).toString('base64') } } }), { mode: 0o600 });
  return dir;
}

async function spawn(argv: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const proc = Bun.spawn(argv, { stdout: 'pipe', stderr: 'pipe', env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: scratch('cai-home-'), ...env } });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, stdout, stderr };
}

function skopeo(args: string[], authfile?: string) {
  const bin = requireService('skopeo', 'skopeo');
  return spawn([bin, ...args], authfile ? { REGISTRY_AUTH_FILE: join(authfile, 'config.json') } : {});
}

let basic: RegistryService;
let token: TokenRegistryService;
let release: RegistryRelease;
beforeAll(async () => {
  [basic, token] = await Promise.all([startRegistry(), startTokenRegistry()]);
  release = await makeRegistryRelease({ version: 'v1.2.3', payloadBytes: 300 * 1024 });
});

describe('containai-build publish', () => {
  test('pushes the release with GHCR_PAT/GHCR_USER; skopeo sees our artifact; the password is never printed', async () => {
    const r = await build(['publish', '--version', 'v1.2.3', '--to', `oci://${basic.address}/acme/e2e`, '--channel', 'stable', '--out', release.out], {
      env: { GHCR_PAT: basic.password, GHCR_USER: basic.username, SOURCE_DATE_EPOCH: '1700000000' },
    });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^published v1\\.2\\.3 as oci://${basic.address}/acme/e2e@sha256:[0-9a-f]{64} \\(tags: v1\\.2\\.3, stable; referrers via tag-schema\\)\\n$`));
    expect(r.stderr).toContain('pushed: payload.tar.gz');
    for (const text of [r.stdout, r.stderr]) {
      expect(text).not.toContain(basic.password);
      expect(text).not.toContain(Buffer.from(`${basic.username}:${basic.password}`).toString('base64'));
    }

    const inspected = await skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${basic.address}/acme/e2e:stable`], dockerConfig(basic));
    expect(inspected.code).toBe(0);
    const manifest = JSON.parse(inspected.stdout);
    expect(manifest.artifactType).toBe('application/vnd.containai.release.v1+json');
    expect(manifest.config).toEqual({ mediaType: 'application/vnd.oci.empty.v1+json', digest: 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a', size: 2 });
    expect(manifest.layers.map((l: { annotations: Record<string, string> }) => l.annotations['org.opencontainers.image.title'])).toEqual([
      'SHA256SUMS', 'release.json', 'attestation.intoto.jsonl', 'SHA256SUMS.sigstore.json', 'SHA256SUMS.sig', 'payload.tar.gz',
      'containai-host-linux-x64', 'containai-host-linux-arm64', 'containai-host.SHA256SUMS', 'containai-host.SHA256SUMS.sigstore.json', 'containai-host.SHA256SUMS.sig',
    ]);
    expect(manifest.annotations['org.opencontainers.image.version']).toBe('v1.2.3');
    expect(manifest.annotations['org.opencontainers.image.created']).toBe('2023-11-14T22:13:20Z');
    const payloadLayer = manifest.layers.find((l: { annotations: Record<string, string> }) => l.annotations['org.opencontainers.image.title'] === 'payload.tar.gz');
    expect(payloadLayer.digest).toBe(`sha256:${await sha256File(release.payload)}`);
  });

  test('--json prints one document; wrong credentials are refused without being printed', async () => {
    const ok = await build(['publish', '--version', 'v1.2.3', '--to', `oci://${token.address}/acme/e2e`, '--out', release.out, '--json'], { env: { DOCKER_CONFIG: dockerConfig(token) } });
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ ok: true, version: 'v1.2.3', tags: ['v1.2.3'], referrers: { via: 'tag-schema' } });

    const wrong = 'definitely-wrong-password-42';
    const bad = await build(['publish', '--version', 'v1.2.3', '--to', `oci://${token.address}/acme/e2e`, '--out', release.out], { env: { GHCR_PAT: wrong, GHCR_USER: token.username } });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('refused the credentials from GHCR_PAT');
    expect(bad.stderr).toContain('hint:');
    expect(bad.stdout + bad.stderr).not.toContain(wrong);
    expectNoStack(bad.stderr);
  });

  test('a folder that is not a format-2 release is refused and nothing is pushed', async () => {
    const broken = await makeRegistryRelease({ version: 'v7.0.0' });
    writeFileSync(broken.sums, `${'0'.repeat(64)}  host/profile.env\n`);
    const noSums = await makeRegistryRelease({ version: 'v7.0.1' });
    removeDir(noSums.sums);
    const env = { GHCR_PAT: basic.password, GHCR_USER: basic.username };
    const mark = accessLog(basic).length;
    const notPayloads = await build(['publish', '--version', 'v7.0.0', '--to', `oci://${basic.address}/acme/broken`, '--out', broken.out], { env });
    expect(notPayloads.code).toBe(1);
    expect(notPayloads.stderr).toContain("SHA256SUMS is not the payload's");
    expect(notPayloads.stderr).toContain('nothing was pushed');
    const missing = await build(['publish', '--version', 'v7.0.1', '--to', `oci://${basic.address}/acme/broken`, '--out', noSums.out], { env });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('is not a format-2 release: SHA256SUMS is missing');
    const wrongVersion = await build(['publish', '--version', 'v1.2.3', '--to', `oci://${basic.address}/acme/broken`, '--out', broken.out], { env });
    expect(wrongVersion.code).toBe(1);
    expect(accessSince(basic, mark)).toEqual([]);
  });

  test('usage errors: a tag in --to, a bad channel, credentials in the reference', async () => {
    const cases = [
      ['--to', `oci://${basic.address}/acme/x:v1`],
      ['--to', `oci://${basic.address}/acme/x`, '--channel', 'no/slash'],
      ['--to', `oci://bot:hunter2-pw@${basic.address}/acme/x`],
    ];
    for (const extra of cases) {
      const r = await build(['publish', '--version', 'v1.2.3', '--out', release.out, ...extra]);
      expect(r.code).toBe(2);
      expect(r.stderr).not.toContain('hunter2-pw');
      expectNoStack(r.stderr);
    }
  });
});

describe('containai-host mirror', () => {
  let published: string;
  beforeAll(async () => {
    const r = await build(['publish', '--version', 'v1.2.3', '--to', `oci://${token.address}/acme/mirror`, '--channel', 'stable', '--out', release.out, '--json'], { env: { GHCR_PAT: token.password, GHCR_USER: token.username } });
    expect(r.code).toBe(0);
    published = JSON.parse(r.stdout).digest;
  });

  test('writes an OCI image layout with the release and its referrers, read with no network at all (unshare -n)', async () => {
    const out = join(scratch('cai-mirror-'), 'layout');
    const r = await host(['mirror', '--from', `oci://${token.address}/acme/mirror:stable`, '--to', out]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`mirrored stable (${published})`);
    expect(JSON.parse(readFileSync(join(out, 'oci-layout'), 'utf8'))).toEqual({ imageLayoutVersion: '1.0.0' });
    const index = JSON.parse(readFileSync(join(out, 'index.json'), 'utf8'));
    expect(index.manifests[0]).toMatchObject({ digest: published, annotations: { 'org.opencontainers.image.ref.name': 'stable' } });
    expect(index.manifests.slice(1).map((m: { artifactType: string }) => m.artifactType).sort()).toEqual([
      'application/vnd.containai.attestations.v1+jsonl',
      'application/vnd.containai.signature.v1+base64',
      'application/vnd.containai.signature.v1+base64',
      'application/vnd.dev.sigstore.bundle.v0.3+json',
      'application/vnd.dev.sigstore.bundle.v0.3+json',
    ]);
    expect(readdirSync(out).sort()).toEqual(['blobs', 'index.json', 'oci-layout']);

    const unshare = requireService('unshare', 'util-linux');
    const read = await spawn([unshare, '-n', process.execPath, join(REPO_ROOT, 'test/helpers/registry-child.ts'), 'read-layout', out, 'stable', token.address]);
    expect(read.stderr).toBe('');
    expect(read.code).toBe(0);
    const got = JSON.parse(read.stdout);
    expect(got).toMatchObject({ network: 'unreachable', location: `oci-layout:${out}@${published}`, payloadSha256: await sha256File(release.payload), signatures: ['attestation', 'sigstoreBundle', 'sig'] });
    expect(got.sums).toBe(readFileSync(release.sums, 'utf8'));

    // Again: every blob already there is re-hashed, nothing fetched.
    const again = await host(['mirror', '--from', `oci://${token.address}/acme/mirror:stable`, '--to', out, '--json']);
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ ok: true, fetched: 0 });
  });

  test("skopeo's copy to an OCI layout is read by our layout reader", async () => {
    const out = join(scratch('cai-skopeo-'), 'layout');
    const copied = await skopeo(['copy', '--src-tls-verify=false', `docker://${token.address}/acme/mirror:stable`, `oci:${out}:stable`]);
    expect(copied.code).toBe(0);
    const read = await spawn([process.execPath, join(REPO_ROOT, 'test/helpers/registry-child.ts'), 'read-layout', out, 'stable']);
    expect(read.code).toBe(0);
    expect(JSON.parse(read.stdout)).toMatchObject({ location: `oci-layout:${out}@${published}`, payloadSha256: await sha256File(release.payload) });
  });

  test('a folder that is neither empty nor a layout is refused untouched; a tag that is not a release is refused', async () => {
    const busy = scratch('cai-busy-');
    writeFileSync(join(busy, 'notes.txt'), 'keep me\n');
    const r = await host(['mirror', '--from', `oci://${token.address}/acme/mirror:stable`, '--to', busy]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('neither empty nor an OCI image layout');
    expect(readdirSync(busy)).toEqual(['notes.txt']);

    const referrersIndex = `sha256-${published.slice('sha256:'.length)}`;
    const out = join(scratch('cai-mirror-'), 'layout');
    const notOurs = await host(['mirror', '--from', `oci://${token.address}/acme/mirror:${referrersIndex}`, '--to', out]);
    expect(notOurs.code).toBe(1);
    expect(notOurs.stderr).toContain('not valid');
    expect(existsSync(out)).toBe(false);
    expectNoStack(notOurs.stderr);
  });
});
