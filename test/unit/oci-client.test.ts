/**
 * The registry client against small fake servers, for what a real registry
 * here cannot show: a blob redirected to storage on another origin, a
 * redirect to plain http, a token realm over plain http, the referrers API
 * (distribution 2.8 has none), a connection cut mid-blob, a registry that
 * ignores Range, and bytes that do not match their digest.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { existsSync, writeFileSync } from 'node:fs';
import { ContainaiError } from '../../lib/errors.ts';
import { downloadBlob, partialPath } from '../../lib/oci/blob-download.ts';
import { RegistryClient } from '../../lib/oci/client.ts';
import { parseRegistryReference } from '../../lib/oci/reference.ts';
import { attachReferrers, EMPTY_CONFIG, listReferrers, referrerManifest } from '../../lib/oci/referrers.ts';
import { fetchSmallBlob } from '../../lib/oci/registry.ts';
import { digestOf, MEDIA_TYPE_IMAGE_INDEX, MEDIA_TYPE_IMAGE_MANIFEST, type Descriptor } from '../../lib/oci/types.ts';
import { removeDir, tempDir } from '../helpers/cli.ts';
import { refusal } from '../helpers/refusal.ts';

const servers: Array<{ stop: (force?: boolean) => void }> = [];
const dirs: string[] = [];
afterAll(() => {
  servers.forEach((s) => s.stop(true));
  dirs.forEach(removeDir);
});

interface Seen {
  method: string;
  path: string;
  headers: Headers;
}

function serve(handler: (request: Request, url: URL) => Response | Promise<Response>): { origin: string; seen: Seen[] } {
  const seen: Seen[] = [];
  const server = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    fetch(request) {
      const url = new URL(request.url);
      seen.push({ method: request.method, path: `${url.pathname}${url.search}`, headers: request.headers });
      return handler(request, url);
    },
  });
  servers.push(server);
  return { origin: `http://127.0.0.1:${server.port}`, seen };
}

const SECRET = 'fake-registry-password-1';
const creds = { username: 'bot', password: SECRET, source: 'test' };
const basicOk = (r: Request) => r.headers.get('authorization') === `Basic ${Buffer.from(`bot:${SECRET}`).toString('base64')}`;
const challenge = () => new Response('{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}', { status: 401, headers: { 'www-authenticate': 'Basic realm="fake"' } });

function blob(bytes: Uint8Array): Descriptor {
  return { mediaType: 'application/octet-stream', digest: digestOf(bytes), size: bytes.byteLength };
}

function client(origin: string, options: ConstructorParameters<typeof RegistryClient>[1] = {}) {
  return new RegistryClient(parseRegistryReference(`oci://${origin.replace('http://', '')}/acme/rel`), { credentials: creds, backoffMs: 1, ...options });
}

async function collect(iterable: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  for await (const c of iterable) chunks.push(c);
  return Buffer.concat(chunks);
}

describe('redirects and credentials', () => {
  test('Basic auth on a 401 challenge; Authorization never follows a redirect to another origin', async () => {
    const bytes = new TextEncoder().encode('signed storage bytes');
    const storage = serve(() => new Response(bytes));
    const registry = serve((request, url) => {
      if (!basicOk(request)) return challenge();
      if (url.pathname.includes('/blobs/')) return new Response(null, { status: 307, headers: { location: `${storage.origin}/bucket/blob?X-Signature=storage-sig-secret` } });
      return new Response('no', { status: 404 });
    });
    const got = await fetchSmallBlob(client(registry.origin), blob(bytes), 1024, 'a blob');
    expect(Buffer.from(got).toString()).toBe('signed storage bytes');
    expect(registry.seen.map((s) => s.headers.get('authorization') !== null)).toEqual([false, true]);
    expect(storage.seen).toHaveLength(1);
    expect(storage.seen[0]?.headers.get('authorization')).toBeNull();
  });

  test('a redirect to plain http off loopback is refused, and its query string (a signed URL) is not printed', async () => {
    const registry = serve(() => new Response(null, { status: 302, headers: { location: 'http://storage.example.invalid/b?sig=do-not-print' } }));
    const err = await refusal(fetchSmallBlob(client(registry.origin, { credentials: undefined }), blob(new Uint8Array(1)), 10, 'a blob'));
    expect(err.message).toContain('refused (plain http)');
    expect(err.message).not.toContain('do-not-print');
  });

  test('a token realm over plain http off loopback is refused before anything is sent', async () => {
    const registry = serve(() => new Response('', { status: 401, headers: { 'www-authenticate': 'Bearer realm="http://auth.example.invalid/token",service="x"' } }));
    const err = await refusal(fetchSmallBlob(client(registry.origin), blob(new Uint8Array(1)), 10, 'a blob'));
    expect(err.message).toContain('over http');
    expect(err.message).toContain('refused');
  });

  test('wrong credentials: one retry with them, then a refusal naming where they came from, without them', async () => {
    const registry = serve(() => challenge());
    const err = await refusal(fetchSmallBlob(client(registry.origin), blob(new Uint8Array(1)), 10, 'a blob'));
    expect(err.message).toContain('refused the credentials from test');
    expect(err.message).not.toContain(SECRET);
    expect(registry.seen).toHaveLength(2);
  });
});

describe('referrers', () => {
  test('a registry with the referrers API keeps the list itself: no sha256-<hex> tag is written', async () => {
    const manifests = new Map<string, { bytes: Uint8Array; subject?: string }>();
    const registry = serve(async (request, url) => {
      const put = /\/manifests\/(.+)$/.exec(url.pathname);
      if (request.method === 'PUT' && put) {
        const bytes = new Uint8Array(await request.arrayBuffer());
        const subject = (JSON.parse(new TextDecoder().decode(bytes)) as { subject?: { digest: string } }).subject?.digest;
        manifests.set(digestOf(bytes), { bytes, subject });
        return new Response(null, { status: 201, headers: subject ? { 'oci-subject': subject, 'docker-content-digest': digestOf(bytes) } : {} });
      }
      const referrers = /\/referrers\/(sha256:[0-9a-f]{64})$/.exec(url.pathname);
      if (referrers) {
        const list = [...manifests].filter(([, m]) => m.subject === referrers[1]).map(([digest, m]) => ({ mediaType: MEDIA_TYPE_IMAGE_MANIFEST, digest, size: m.bytes.byteLength, artifactType: 'application/vnd.test' }));
        return Response.json({ schemaVersion: 2, mediaType: MEDIA_TYPE_IMAGE_INDEX, manifests: list }, { headers: { 'content-type': MEDIA_TYPE_IMAGE_INDEX } });
      }
      return new Response('', { status: 404 });
    });
    const c = client(registry.origin, { credentials: undefined });
    const subject: Descriptor = { mediaType: MEDIA_TYPE_IMAGE_MANIFEST, digest: digestOf('release'), size: 7 };
    const layer = blob(new TextEncoder().encode('sig'));
    const referrer = referrerManifest(subject, layer, 'application/vnd.test', '2026-01-01T00:00:00Z');
    const attached = await attachReferrers(c, subject, [referrer]);
    expect(attached.via).toBe('referrers-api');
    expect(registry.seen.some((s) => s.path.includes('sha256-'))).toBe(false);
    const listed = await listReferrers(c, subject.digest);
    expect(listed).toMatchObject({ via: 'referrers-api', referrers: [{ digest: referrer.descriptor.digest }] });
    expect(JSON.parse(new TextDecoder().decode(referrer.bytes)).config).toEqual(EMPTY_CONFIG);
  });
});

describe('blob download', () => {
  const payload = new Uint8Array(3 * 1024 * 1024).map((_, i) => (i * 7919) % 251);
  const descriptor = blob(payload);

  function blobServer(behave: (request: Request, from: number, attempt: number) => Response) {
    let attempt = 0;
    return serve((request) => {
      const from = Number(/bytes=(\d+)-/.exec(request.headers.get('range') ?? '')?.[1] ?? 0);
      return behave(request, from, attempt++);
    });
  }

  test('a connection cut mid-blob is resumed with a range request; the bytes come out whole and in order', async () => {
    const registry = blobServer((_, from, attempt) => {
      if (attempt === 0) {
        // Half the blob, then the stream ends: the client sees a body shorter than the blob.
        return new Response(payload.subarray(0, 1_000_000), { status: 200 });
      }
      return new Response(payload.subarray(from), { status: 206, headers: { 'content-range': `bytes ${from}-${payload.byteLength - 1}/${payload.byteLength}` } });
    });
    const dir = tempDir('cai-dl-');
    dirs.push(dir);
    const got = await collect(downloadBlob(client(registry.origin, { credentials: undefined }), descriptor, { dir, label: 'payload.tar.gz' }));
    expect(digestOf(got)).toBe(descriptor.digest);
    expect(registry.seen.map((s) => s.headers.get('range'))).toEqual([null, 'bytes=1000000-']);
    expect(existsSync(partialPath(dir, descriptor.digest))).toBe(false);
  });

  test('a partial file from an earlier run is handed onward first; a registry that ignores Range is skipped forward', async () => {
    const registry = blobServer(() => new Response(payload, { status: 200 }));
    const dir = tempDir('cai-dl-');
    dirs.push(dir);
    writeFileSync(partialPath(dir, descriptor.digest), payload.subarray(0, 123_456));
    let resumedAt = -1;
    const got = await collect(downloadBlob(client(registry.origin, { credentials: undefined }), descriptor, { dir, label: 'payload.tar.gz', onResume: (n) => (resumedAt = n) }));
    expect(resumedAt).toBe(123_456);
    expect(digestOf(got)).toBe(descriptor.digest);
    expect(registry.seen[0]?.headers.get('range')).toBe('bytes=123456-');
  });

  test('bytes that do not match the digest: the iteration throws after the last byte and the download file is removed', async () => {
    const swapped = payload.slice();
    swapped[2_000_000] = (swapped[2_000_000] as number) ^ 1;
    const registry = blobServer(() => new Response(swapped));
    const dir = tempDir('cai-dl-');
    dirs.push(dir);
    let seen = 0;
    const err = await refusal(
      (async () => {
        for await (const chunk of downloadBlob(client(registry.origin, { credentials: undefined }), descriptor, { dir, label: 'payload.tar.gz' })) seen += chunk.byteLength;
      })(),
    );
    expect(err.code).toBe('VERIFY');
    expect(err.message).toContain('does not match its digest');
    expect(seen).toBe(payload.byteLength);
    expect(existsSync(partialPath(dir, descriptor.digest))).toBe(false);
  });

  test('more bytes than the descriptor says are refused', async () => {
    const registry = blobServer(() => new Response(Buffer.concat([payload, Buffer.from('extra')])));
    const dir = tempDir('cai-dl-');
    dirs.push(dir);
    const err = await refusal(collect(downloadBlob(client(registry.origin, { credentials: undefined }), descriptor, { dir, label: 'payload.tar.gz' })));
    expect(err.code).toBe('VERIFY');
  });
});
