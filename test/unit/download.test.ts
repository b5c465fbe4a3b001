/**
 * lib/github/download.ts against loopback servers that misbehave: one that compresses, one that
 * sends a gzip bomb, one that drips, one that declares more than the disk holds, and a redirect
 * away and back to the origin. Small rate windows keep the drip short; nothing here sleeps for
 * timing (the servers answer on their own clock, the client decides).
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { existsSync, mkdirSync, readFileSync, statfsSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { ContainaiError } from '../../lib/errors.ts';
import { downloadReleaseAsset, type DownloadOptions } from '../../lib/github/download.ts';
import { removeDir, tempDir } from '../helpers/cli.ts';
import { makeTestBundle, startReleaseServer } from '../helpers/release-server.ts';
import { refusal } from '../helpers/refusal.ts';

const work = tempDir('cai-dl-unit-');
const servers: Server[] = [];
afterAll(async () => {
  for (const s of servers) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
  removeDir(work);
});

interface Served {
  url: string;
  requests: IncomingMessage[];
}

async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<Served> {
  const requests: IncomingMessage[] = [];
  const server = createServer((req, res) => {
    requests.push(req);
    handler(req, res);
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests };
}

let n = 0;
function options(url: string, extra: Partial<DownloadOptions> = {}): DownloadOptions {
  const dir = join(work, `d${n++}`);
  mkdirSync(dir);
  return { baseUrl: url, repo: 'acme/app', version: 'v1.0.0', asset: 'containai-v1.0.0.tar.gz', dest: join(dir, 'bundle.tar.gz'), retries: 2, backoffMs: 1, ...extra };
}

const BYTES = Buffer.from('the release bundle, as published\n'.repeat(1000));

describe('content encoding', () => {
  test('identity is asked for, so a server that compresses when it may sends the bytes as published', async () => {
    const server = await serve((req, res) => {
      const gzip = /gzip/.test(String(req.headers['accept-encoding'] ?? ''));
      const body = gzip ? gzipSync(BYTES) : BYTES;
      res.writeHead(200, { 'content-length': body.length, ...(gzip ? { 'content-encoding': 'gzip' } : {}) });
      res.end(body);
    });
    const o = options(server.url);
    const result = await downloadReleaseAsset(o);
    expect(result.bytes).toBe(BYTES.length);
    expect(readFileSync(o.dest).equals(BYTES)).toBe(true);
    expect(server.requests[0]?.headers['accept-encoding']).toBe('identity');
  });

  test('an answer encoded anyway is refused once, clearly, and nothing is written', async () => {
    const body = gzipSync(BYTES);
    const server = await serve((_req, res) => {
      res.writeHead(200, { 'content-length': body.length, 'content-encoding': 'gzip' });
      res.end(body);
    });
    const o = options(server.url);
    const e = await refusal(downloadReleaseAsset(o));
    expect(e.message).toContain('encoded (Content-Encoding: gzip)');
    expect(e.hint).toContain('no Content-Encoding');
    expect(server.requests.length).toBe(1);
    expect(existsSync(o.dest)).toBe(false);
  });

  test('a gzip bomb is never inflated: refused before a byte reaches the disk', async () => {
    const bomb = gzipSync(Buffer.alloc(256 * 1024 ** 2), { level: 9 });
    expect(bomb.length).toBeLessThan(1024 ** 2);
    const server = await serve((_req, res) => {
      res.writeHead(200, { 'content-length': bomb.length, 'content-encoding': 'gzip' });
      res.end(bomb);
    });
    const o = options(server.url, { maxBytes: 16 * 1024 ** 2 });
    const e = await refusal(downloadReleaseAsset(o));
    expect(e.message).toContain('Content-Encoding: gzip');
    expect(existsSync(o.dest)).toBe(false);
  });
});

describe('a minimum rate', () => {
  test('a server that drips is cut off after each window; the message counts the attempts that ran', async () => {
    const server = await serve((_req, res) => {
      res.writeHead(200, { 'content-length': 100_000 });
      const drip = setInterval(() => (res.destroyed ? clearInterval(drip) : res.write('x')), 10);
      res.on('close', () => clearInterval(drip));
    });
    const o = options(server.url, { minBytesPerSecond: 4096, rateWindowMs: 300, deadlineMs: 60_000 });
    const started = Date.now();
    const e = await refusal(downloadReleaseAsset(o));
    expect(e.code).toBe('NETWORK');
    expect(e.message).toContain('in 3 attempts');
    expect(e.message).toContain('slower than 4 KiB/s over 0.3 s');
    expect(server.requests.length).toBe(3);
    expect(Date.now() - started).toBeLessThan(30_000);
  });

  test('when the deadline stops the retries, the message says how many attempts really ran', async () => {
    const server = await serve((_req, res) => {
      res.writeHead(503);
      res.end('later');
    });
    const o = options(server.url, { retries: 20, backoffMs: 200, deadlineMs: 500 });
    const e = await refusal(downloadReleaseAsset(o));
    expect(e.message).toContain(`in ${server.requests.length} attempt`);
    expect(server.requests.length).toBeLessThan(21);
    expect(e.message).toContain('deadline left no time for more');
  });
});

describe('free space', () => {
  test('a download larger than the free space of the destination is refused before it is written', async () => {
    const server = await serve((_req, res) => {
      res.writeHead(200, { 'content-length': 2 ** 45 });
      res.write('x');
    });
    const o = options(server.url, { maxBytes: 2 ** 50 });
    const e = await refusal(downloadReleaseAsset(o));
    expect(e.code).toBe('STATE');
    expect(e.message).toMatch(/not enough free space for .*: it is 33554432 MiB, and .* has \d+ MiB free \(keeping 64 MiB spare\)/);
    expect(existsSync(o.dest)).toBe(false);
  });

  test('without a Content-Length, the space is checked as the bytes come', async () => {
    const chunk = Buffer.alloc(1024 ** 2, 1);
    const server = await serve((_req, res) => {
      res.writeHead(200, { 'transfer-encoding': 'chunked' });
      let sent = 0;
      const more = () => {
        while (sent < 256 && !res.destroyed) {
          sent++;
          if (!res.write(chunk)) return void res.once('drain', more);
        }
        res.end();
      };
      more();
    });
    const o = options(server.url);
    const st = statfsSync(join(o.dest, '..'));
    const free = st.bavail * st.bsize;
    const e = await refusal(downloadReleaseAsset({ ...o, freeSpaceMarginBytes: free - 8 * 1024 ** 2 }));
    expect(e.code).toBe('STATE');
    expect(e.message).toContain('not enough free space');
    expect(statSync(o.dest).size).toBeLessThan(128 * 1024 ** 2);
  });
});

describe('redirects', () => {
  test('a redirect away and back to the origin: the second request to the origin carries no Authorization', async () => {
    const server = await startReleaseServer();
    try {
      const asset = makeTestBundle(join(work, 'assets'), 'v1.0.0');
      server.publish('acme/app', 'v1.0.0', asset);
      server.storage = { redirectTo: `${server.url}/direct/acme/app/releases/download/v1.0.0/containai-v1.0.0.tar.gz` };
      const token = 'ghp_RedirectBackTokenMustNotReturn0000';
      const o = options(server.url, { token });
      const result = await downloadReleaseAsset(o);
      expect(readFileSync(o.dest).equals(readFileSync(asset))).toBe(true);
      expect(result.from).toBe(`${server.url}/direct/acme/app/releases/download/v1.0.0/containai-v1.0.0.tar.gz`);
      expect(server.requests.map((r) => [r.host, r.path.split('?')[0], r.headers.authorization])).toEqual([
        ['github', '/acme/app/releases/download/v1.0.0/containai-v1.0.0.tar.gz', `Bearer ${token}`],
        ['storage', '/blob/acme/app/releases/download/v1.0.0/containai-v1.0.0.tar.gz', undefined],
        ['github', '/direct/acme/app/releases/download/v1.0.0/containai-v1.0.0.tar.gz', undefined],
      ]);
    } finally {
      await server.stop();
    }
  });
});
