/**
 * lib/oci against real registries (Debian's docker-registry 2.8): Basic auth
 * (htpasswd), token auth (its token server issues JWTs signed with a test
 * key), and a pull-through proxy in front of the token registry. What a
 * registry was asked is read from its access log.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PAYLOAD_ARCHIVE, SUMS_FILE } from '../../lib/bundle/layout.ts';
import { sha256File } from '../../lib/digest.ts';
import { ContainaiError } from '../../lib/errors.ts';
import { partialPath } from '../../lib/oci/blob-download.ts';
import { RegistryClient } from '../../lib/oci/client.ts';
import { publishRelease, type PublishResult } from '../../lib/oci/publish.ts';
import { parseRegistryReference } from '../../lib/oci/reference.ts';
import { listReferrers } from '../../lib/oci/referrers.ts';
import { getManifest, putManifest, uploadBlob } from '../../lib/oci/registry.ts';
import { EMPTY_CONFIG } from '../../lib/oci/referrers.ts';
import { LayoutReader } from '../../lib/oci/layout.ts';
import { mirrorReleases } from '../../lib/oci/mirror.ts';
import { layoutReleaseSource, registryReleaseSource, type RegistryReleaseSource } from '../../lib/oci/release-source.ts';
import { canonicalBytes, EMPTY_CONFIG_BYTES, ImageIndexSchema, MEDIA_TYPE_IMAGE_MANIFEST, digestHex, referrersTag } from '../../lib/oci/types.ts';
import { REPO_ROOT, removeDir, tempDir } from '../helpers/cli.ts';
import { accessSince, accessLog, settleLog, startProxyRegistry, startTokenRegistry, type AccessEntry } from '../helpers/registry.ts';
import { makeRegistryRelease, type RegistryRelease } from '../helpers/registry-release.ts';
import { startRegistry, waitFor, type RegistryService } from '../helpers/services.ts';
import { refusal } from '../helpers/refusal.ts';

const dirs: string[] = [];
afterAll(() => dirs.forEach(removeDir));
function scratch(prefix: string): string {
  const dir = tempDir(prefix);
  dirs.push(dir);
  return dir;
}

const credsOf = (s: { username: string; password: string }) => ({ username: s.username, password: s.password, source: 'test' });

async function publish(service: RegistryService, repo: string, release: RegistryRelease, channel = 'stable', env: NodeJS.ProcessEnv = {}): Promise<PublishResult> {
  return publishRelease({ version: release.version, releaseDir: release.dir, to: parseRegistryReference(`oci://${service.address}/${repo}`, '--to'), channel, credentials: credsOf(service), env: { PATH: process.env.PATH, ...env } });
}

function source(address: string, ref: string, options: { creds?: { username: string; password: string }; dir?: string } = {}): RegistryReleaseSource {
  return registryReleaseSource(parseRegistryReference(`oci://${address}/${ref}`), { downloadDir: options.dir ?? scratch('cai-dl-'), credentials: options.creds ? credsOf(options.creds) : null });
}

async function drain(iterable: AsyncIterable<Uint8Array>): Promise<{ bytes: number; sha256: string }> {
  const hasher = new Bun.CryptoHasher('sha256');
  let bytes = 0;
  for await (const chunk of iterable) {
    hasher.update(chunk);
    bytes += chunk.byteLength;
  }
  return { bytes, sha256: hasher.digest('hex') };
}

const blobGets = (log: AccessEntry[], digest: string) => log.filter((e) => e.method === 'GET' && e.path.endsWith(`/blobs/${digest}`));

/** Where distribution keeps a blob's bytes on disk. */
function storedBlob(service: { dir: string }, digest: string): string {
  const hex = digestHex(digest);
  return join(service.dir, 'data', 'docker', 'registry', 'v2', 'blobs', 'sha256', hex.slice(0, 2), hex, 'data');
}

describe('Basic auth (htpasswd)', () => {
  let basic: RegistryService;
  let release: RegistryRelease;
  let published: PublishResult;
  beforeAll(async () => {
    basic = await startRegistry();
    release = await makeRegistryRelease({ version: 'v1.2.3', payloadBytes: 256 * 1024 });
    published = await publish(basic, 'acme/basic', release);
  });

  test('publish, then read back: the small parts are the release files, the payload its bytes, version and channel one digest', async () => {
    expect(published.tags).toEqual(['v1.2.3', 'stable']);
    for (const tag of ['v1.2.3', 'stable']) {
      const src = source(basic.address, `acme/basic:${tag}`, { creds: basic });
      const parts = await src.open();
      expect(src.digest).toBe(published.digest);
      expect(src.location).toBe(`oci://${basic.address}/acme/basic:${tag}@${published.digest}`);
      expect(Buffer.from(parts.sums).equals(readFileSync(release.sums))).toBe(true);
      expect(Buffer.from(parts.releaseJson ?? []).equals(readFileSync(release.releaseJson))).toBe(true);
      expect(parts.signatures.attestation).toBe(readFileSync(join(release.dir, 'attestation.intoto.jsonl'), 'utf8'));
      expect(parts.signatures.sigstoreBundle).toBe(readFileSync(join(release.dir, 'SHA256SUMS.sigstore.json'), 'utf8'));
      expect(parts.signatures.sig).toBe(readFileSync(join(release.dir, 'SHA256SUMS.sig'), 'utf8'));
      expect((await drain(src.payload())).sha256).toBe(await sha256File(release.payload));
      await src.close();
    }
  });

  test('a manifest of another artifactType is refused by open(), before any layer is asked for', async () => {
    const client = new RegistryClient(parseRegistryReference(`oci://${basic.address}/acme/other`), { credentials: credsOf(basic), actions: 'pull,push' });
    const config = await uploadBlob(client, EMPTY_CONFIG, () => EMPTY_CONFIG_BYTES);
    expect(['uploaded', 'exists']).toContain(config);
    const image = canonicalBytes({ schemaVersion: 2, mediaType: MEDIA_TYPE_IMAGE_MANIFEST, artifactType: 'application/vnd.example.other', config: EMPTY_CONFIG, layers: [] });
    await putManifest(client, 'latest', image, MEDIA_TYPE_IMAGE_MANIFEST);
    const mark = accessLog(basic).length;
    const err = await refusal(source(basic.address, 'acme/other:latest', { creds: basic }).open());
    expect(err.message).toContain('is not a containai release: its artifactType is "application/vnd.example.other"');
    expect((await settleLog(basic, mark, 2)).filter((e) => e.path.includes('/blobs/'))).toEqual([]);
  });

  test('without credentials the registry refuses, and says how to log in', async () => {
    const err = await refusal(source(basic.address, 'acme/basic:stable').open());
    expect(err.message).toContain('refused the credentials (none were found)');
    expect(err.hint).toContain('docker login');
  });

  test('a re-publish with SOURCE_DATE_EPOCH is byte-identical and uploads nothing', async () => {
    const again = await makeRegistryRelease({ version: 'v3.0.0' });
    const first = await publish(basic, 'acme/repeat', again, 'stable', { SOURCE_DATE_EPOCH: '1700000000', GITHUB_SHA: 'a'.repeat(40) });
    const second = await publish(basic, 'acme/repeat', again, 'stable', { SOURCE_DATE_EPOCH: '1700000000', GITHUB_SHA: 'a'.repeat(40) });
    expect(second.digest).toBe(first.digest);
    expect(first.uploaded).toBe(12);
    expect(second).toMatchObject({ uploaded: 0, skipped: 12 });
    expect(second.referrers.digests).toEqual(first.referrers.digests);
    const manifest = JSON.parse(new TextDecoder().decode((await getManifest(new RegistryClient(parseRegistryReference(`oci://${basic.address}/acme/repeat`), { credentials: credsOf(basic) }), 'v3.0.0')).bytes));
    expect(manifest.annotations).toEqual({
      'org.opencontainers.image.version': 'v3.0.0',
      'org.opencontainers.image.revision': 'a'.repeat(40),
      'org.opencontainers.image.created': '2023-11-14T22:13:20Z',
    });
  });

  test('referrers through the sha256-<hex> tag schema (distribution 2.8 has no referrers API)', async () => {
    expect(published.referrers.via).toBe('tag-schema');
    const client = new RegistryClient(parseRegistryReference(`oci://${basic.address}/acme/basic`), { credentials: credsOf(basic) });
    const index = ImageIndexSchema.parse(JSON.parse(new TextDecoder().decode((await getManifest(client, referrersTag(published.digest))).bytes)));
    expect(index.manifests.map((m) => m.annotations?.['org.opencontainers.image.title'])).toEqual([
      'attestation.intoto.jsonl',
      'SHA256SUMS.sigstore.json',
      'SHA256SUMS.sig',
      'containai-host.SHA256SUMS.sigstore.json',
      'containai-host.SHA256SUMS.sig',
    ]);
    const listed = await listReferrers(client, published.digest, 'application/vnd.dev.sigstore.bundle.v0.3+json');
    expect(listed.via).toBe('tag-schema');
    expect(listed.referrers).toHaveLength(2);
    for (const referrer of index.manifests) {
      const manifest = JSON.parse(new TextDecoder().decode((await getManifest(client, referrer.digest)).bytes));
      expect(manifest.subject).toEqual({ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: published.digest, size: expect.any(Number) });
      expect(manifest.artifactType).toBe(referrer.artifactType);
    }
  });

  test('a layer swapped for another blob in the registry: SHA256SUMS refused in open(), the payload refused at its end', async () => {
    const swapped = await makeRegistryRelease({ version: 'v9.9.9', payloadBytes: 64 * 1024 });
    const pushed = await publish(basic, 'acme/swapped', swapped);
    const manifest = JSON.parse(new TextDecoder().decode((await getManifest(new RegistryClient(parseRegistryReference(`oci://${basic.address}/acme/swapped`), { credentials: credsOf(basic) }), pushed.digest)).bytes));
    const layer = (title: string) => manifest.layers.find((l: { annotations: Record<string, string> }) => l.annotations['org.opencontainers.image.title'] === title);

    const sumsPath = storedBlob(basic, layer(SUMS_FILE).digest);
    const sums = readFileSync(sumsPath);
    writeFileSync(sumsPath, Buffer.from(sums.toString().replace(/^./, (c) => (c === '0' ? '1' : '0'))));
    const err = await refusal(source(basic.address, 'acme/swapped:v9.9.9', { creds: basic }).open());
    expect(err.code).toBe('VERIFY');
    expect(err.message).toContain('SHA256SUMS');
    expect(err.message).toContain('does not match its digest');
    writeFileSync(sumsPath, sums);

    const payloadPath = storedBlob(basic, layer(PAYLOAD_ARCHIVE).digest);
    const payload = readFileSync(payloadPath);
    const other = Buffer.from(payload);
    other[other.length - 100] = (other[other.length - 100] as number) ^ 0xff;
    writeFileSync(payloadPath, other);
    const dir = scratch('cai-dl-');
    const src = source(basic.address, 'acme/swapped:v9.9.9', { creds: basic, dir });
    await src.open();
    const payloadErr = await refusal(drain(src.payload()));
    expect(payloadErr.code).toBe('VERIFY');
    expect(payloadErr.message).toContain('payload.tar.gz');
    expect(existsSync(partialPath(dir, layer(PAYLOAD_ARCHIVE).digest))).toBe(false);
    writeFileSync(payloadPath, payload);
  });

  test("a download that starts removes other blobs' partial files (abandoned downloads), and nothing else", async () => {
    const dir = scratch('cai-dl-');
    const stale = join(dir, `sha256-${'0'.repeat(64)}.partial`);
    writeFileSync(stale, 'an abandoned download');
    writeFileSync(join(dir, 'notes.txt'), 'not ours');
    const src = source(basic.address, 'acme/basic:stable', { creds: basic, dir });
    await src.open();
    expect(existsSync(stale)).toBe(true);
    expect((await drain(src.payload())).sha256).toBe(await sha256File(release.payload));
    expect(existsSync(stale)).toBe(false);
    expect(readdirSync(dir)).toEqual(['notes.txt']);
  });

  test('a run killed at 60% leaves the partial file; the next run asks only for the rest (access log) and the result verifies', async () => {
    const big = await makeRegistryRelease({ version: 'v4.0.0', payloadBytes: 24 * 1024 * 1024 });
    const pushed = await publish(basic, 'acme/resume', big);
    const payloadDigest = `sha256:${await sha256File(big.payload)}`;
    const total = statSync(big.payload).size;
    const dir = scratch('cai-dl-');
    const config = scratch('cai-docker-');
    writeFileSync(join(config, 'config.json'), JSON.stringify({ auths: { [basic.address]: { auth: Buffer.from(`${basic.username}:${basic.password}`).toString('base64') } } }));

    const child = Bun.spawn([process.execPath, join(REPO_ROOT, 'test/helpers/registry-child.ts'), 'download', `oci://${basic.address}/acme/resume:v4.0.0`, dir, '0.6'], {
      env: { PATH: process.env.PATH, HOME: config, DOCKER_CONFIG: config },
      stdout: 'pipe',
      stderr: 'pipe',
    });
    const reader = child.stdout.getReader();
    let said = '';
    while (!said.includes('STOPPED')) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`the download child ended early: ${await new Response(child.stderr).text()}`);
      said += new TextDecoder().decode(value);
    }
    child.kill('SIGKILL');
    await child.exited;
    const partial = partialPath(dir, payloadDigest);
    const left = statSync(partial).size;
    expect(left).toBeGreaterThanOrEqual(Math.floor(total * 0.6));
    expect(left).toBeLessThan(total);

    // The killed run's GET is logged when the registry notices the connection is gone.
    await waitFor('the killed download in the access log', () => blobGets(accessLog(basic), payloadDigest).length === 1);
    const mark = accessLog(basic).length;
    const src = source(basic.address, 'acme/resume:v4.0.0', { creds: basic, dir });
    await src.open();
    expect(src.digest).toBe(pushed.digest);
    expect((await drain(src.payload())).sha256).toBe(digestHex(payloadDigest));
    const log = await settleLog(basic, mark, 1);
    const gets = blobGets(log, payloadDigest);
    expect(gets).toHaveLength(1);
    expect(gets[0]).toMatchObject({ status: 206, bytes: total - left });
    expect(existsSync(partial)).toBe(false);
  });
});

describe('token auth', () => {
  test('anonymous pulls and authenticated pushes both go through the bearer token flow; a private repository needs credentials', async () => {
    const token = await startTokenRegistry();
    const release = await makeRegistryRelease({ version: 'v1.5.0' });
    const before = token.tokenRequests.length;
    const pushed = await publish(token, 'acme/token', release);
    expect(token.tokenRequests.slice(before)).toEqual([{ user: token.username, scopes: ['repository:acme/token:pull,push'], granted: [{ name: 'acme/token', actions: ['pull', 'push'] }] }]);

    const anonymous = source(token.address, 'acme/token:stable');
    const at = token.tokenRequests.length;
    await anonymous.open();
    expect(anonymous.digest).toBe(pushed.digest);
    expect((await drain(anonymous.payload())).sha256).toBe(await sha256File(release.payload));
    expect(token.tokenRequests.slice(at)).toEqual([{ user: undefined, scopes: ['repository:acme/token:pull'], granted: [{ name: 'acme/token', actions: ['pull'] }] }]);

    const secret = await publish(token, 'private/token', release);
    const refused = await refusal(source(token.address, 'private/token:stable').open());
    expect(refused.message).toContain('refused the credentials (none were found)');
    const allowed = source(token.address, 'private/token:stable', { creds: token });
    await allowed.open();
    expect(allowed.digest).toBe(secret.digest);
  });

  test('wrong credentials are refused by the token server, and never printed', async () => {
    const token = await startTokenRegistry();
    const err = await refusal(source(token.address, 'acme/token:stable', { creds: { username: token.username, password: 'wrong-password-123' } }).open());
    expect(err.message).toContain('refused the credentials from test');
    expect(`${err.message} ${err.hint}`).not.toContain('wrong-password-123');
  });

  test('an opened source whose payload() is never called requests no payload blob; an install is at most 8 requests', async () => {
    const token = await startTokenRegistry();
    const release = await makeRegistryRelease({ version: 'v1.6.0', payloadBytes: 128 * 1024 });
    await publish(token, 'acme/count', release);
    const payloadDigest = `sha256:${await sha256File(release.payload)}`;

    let mark = accessLog(token).length;
    const refusedByPolicy = source(token.address, 'acme/count:stable');
    await refusedByPolicy.open();
    await refusedByPolicy.close();
    let log = await settleLog(token, mark, 7);
    expect(blobGets(log, payloadDigest)).toHaveLength(0);
    // 401 challenge, the manifest, SHA256SUMS, release.json, three signature files.
    expect(log.map((e) => `${e.method} ${e.status}`)).toEqual(['GET 401', 'GET 200', 'GET 200', 'GET 200', 'GET 200', 'GET 200', 'GET 200']);

    mark = accessLog(token).length;
    const installed = source(token.address, 'acme/count:stable');
    await installed.open();
    await drain(installed.payload());
    log = await settleLog(token, mark, 8);
    expect(log.length).toBeLessThanOrEqual(8);
    expect(blobGets(log, payloadDigest)).toHaveLength(1);
  });

  test('a tag that has not moved costs one HEAD', async () => {
    const token = await startTokenRegistry();
    const src = source(token.address, 'acme/count:stable');
    const mark = accessLog(token).length;
    const digest = await src.resolve();
    const log = await settleLog(token, mark, 2);
    // A new process's first request meets the token challenge; the tag itself is one HEAD.
    expect(log.map((e) => `${e.method} ${e.status}`)).toEqual(['HEAD 401', 'HEAD 200']);
    const again = accessLog(token).length;
    expect(await src.resolve()).toBe(digest);
    expect((await settleLog(token, again, 1)).map((e) => `${e.method} ${e.status}`)).toEqual(['HEAD 200']);
  });
});

describe('pull-through proxy (a site mirror)', () => {
  test('hosts installing through the mirror: the blobs are fetched upstream for the first host only, however many hosts', async () => {
    const proxy = await startProxyRegistry();
    const release = await makeRegistryRelease({ version: 'v2.0.0', payloadBytes: 512 * 1024 });
    const pushed = await publish(proxy.upstream, 'acme/site', release);
    const manifest = JSON.parse(new TextDecoder().decode((await getManifest(new RegistryClient(parseRegistryReference(`oci://${proxy.upstream.address}/acme/site`), { credentials: credsOf(proxy.upstream) }), pushed.digest)).bytes));
    const read = ['SHA256SUMS', 'release.json', 'attestation.intoto.jsonl', 'SHA256SUMS.sigstore.json', 'SHA256SUMS.sig', 'payload.tar.gz'];
    const layers: Array<{ digest: string; size: number }> = manifest.layers.filter((l: { annotations: Record<string, string> }) => read.includes(l.annotations['org.opencontainers.image.title'] ?? ''));
    expect(layers).toHaveLength(6);
    const install = async () => {
      const src = source(proxy.address, 'acme/site:v2.0.0');
      await src.open();
      expect(src.digest).toBe(pushed.digest);
      expect((await drain(src.payload())).sha256).toBe(await sha256File(release.payload));
    };

    const first = accessLog(proxy.upstream).length;
    await install();
    // The mirror keeps a blob once it has stored it; wait for that, so the next host finds it cached.
    await waitFor('the mirror to store every blob', () => layers.every((l) => existsSync(storedBlob(proxy, l.digest)) && statSync(storedBlob(proxy, l.digest)).size === l.size));
    const firstHost = accessSince(proxy.upstream, first);
    for (const layer of layers) {
      // distribution 2.8's proxy fetches a blob it does not have twice: once to stream it, once to store it.
      const n = blobGets(firstHost.filter((e) => e.status === 200), layer.digest).length;
      expect(n).toBeGreaterThanOrEqual(1);
      expect(n).toBeLessThanOrEqual(2);
    }

    const later = accessLog(proxy.upstream).length;
    await install();
    await install();
    const laterHosts = accessSince(proxy.upstream, later);
    for (const layer of layers) expect(blobGets(laterHosts, layer.digest)).toHaveLength(0);
    // What the later hosts still ask upstream is whether the tag moved: HEADs of the manifest, no bytes.
    expect(laterHosts.every((e) => e.method === 'HEAD' || e.path === '/v2/')).toBe(true);
  });

  test('through the mirror (no auth on it), an unmoved tag is exactly one HEAD', async () => {
    const proxy = await startProxyRegistry();
    const mark = accessLog(proxy).length;
    await source(proxy.address, 'acme/site:v2.0.0').resolve();
    expect((await settleLog(proxy, mark, 1)).map((e) => `${e.method} ${e.status}`)).toEqual(['HEAD 200']);
  });
});

describe('mirror into an OCI layout', () => {
  test('without a tag: every release tag of the repository, referrers kept; the layout source names one', async () => {
    const basic = await startRegistry();
    const one = await makeRegistryRelease({ version: 'v5.0.0' });
    const two = await makeRegistryRelease({ version: 'v5.1.0' });
    await publish(basic, 'acme/all', one);
    const latest = await publish(basic, 'acme/all', two);
    const out = join(scratch('cai-mirror-'), 'layout');
    const result = await mirrorReleases({ from: parseRegistryReference(`oci://${basic.address}/acme/all`), to: out, credentials: credsOf(basic) });
    expect(result.releases.map((r) => r.tag).sort()).toEqual(['stable', 'v5.0.0', 'v5.1.0']);
    expect(result.releases.find((r) => r.tag === 'stable')).toMatchObject({ digest: latest.digest, version: 'v5.1.0', referrers: 5 });

    const ambiguous = await refusal(layoutReleaseSource(out).open());
    expect(ambiguous.code).toBe('USAGE');
    expect(ambiguous.hint).toContain('stable');
    const src = layoutReleaseSource(out, { tag: 'stable' });
    const parts = await src.open();
    expect(src.digest).toBe(latest.digest);
    expect(Buffer.from(parts.sums).equals(readFileSync(two.sums))).toBe(true);
    expect((await drain(src.payload())).sha256).toBe(await sha256File(two.payload));
    const layout = await LayoutReader.open(out);
    expect(await layout.referrers(latest.digest)).toHaveLength(5);

    // A blob changed on disk is refused when read.
    const payloadLayer = src.artifact?.layers.get(PAYLOAD_ARCHIVE);
    if (!payloadLayer) throw new Error('no payload layer');
    const path = join(out, 'blobs', 'sha256', digestHex(payloadLayer.digest));
    const bytes = readFileSync(path);
    bytes[bytes.length - 1] = (bytes[bytes.length - 1] as number) ^ 1;
    writeFileSync(path, bytes);
    const tampered = layoutReleaseSource(out, { tag: 'stable' });
    await tampered.open();
    expect((await refusal(drain(tampered.payload()))).code).toBe('VERIFY');
  });
});
