/**
 * Test stand-ins for GitHub Releases, and the bundles they serve.
 *
 * startReleaseServer() runs two HTTP servers on 127.0.0.1: "github" answers
 * /<owner>/<repo>/releases/download/<version>/<asset> with a 302 to "storage"
 * (another port, so another origin), as GitHub does with signed URLs, and
 * /direct/<same path> with the bytes themselves (a redirect back to the origin
 * lands there). Each can
 * be told to fail the first N requests, cut a body short, serve other bytes,
 * 404, or redirect somewhere else; both record the headers they received.
 *
 * makeTestBundle() builds a real bundle (payload with release.json and
 * SHA256SUMS, payload.sha256) byte by byte with test/helpers/archives.ts,
 * optionally damaged.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { expect } from 'bun:test';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { formatReleaseManifest, RELEASE_FILE } from '../../lib/bundle/manifest.ts';
import { buildTarGz, goodPayloadEntries, GOOD_FILES, sha256Hex, type TarSpec } from './archives.ts';

export interface RecordedRequest {
  host: 'github' | 'storage';
  method: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
}

export interface Behaviour {
  /** The first N requests to this host get `failWith`. */
  failFirst?: number;
  /** 'reset' destroys the connection; a number answers that status. */
  failWith?: 'reset' | number;
  /** Serve only this many bytes of the body, with the full Content-Length, then cut the connection. */
  truncateAt?: number;
  /** Serve these bytes instead of the asset. */
  wrongContent?: Uint8Array;
  notFound?: boolean;
  /** github: redirect here instead of to storage; storage: redirect here instead of serving. */
  redirectTo?: string;
}

export interface ReleaseServer {
  /** CONTAINAI_GITHUB_URL */
  url: string;
  storageUrl: string;
  requests: RecordedRequest[];
  github: Behaviour;
  storage: Behaviour;
  /** Serve the file at path as repo's asset of version. */
  publish(repo: string, version: string, assetPath: string): void;
  stop(): Promise<void>;
}

function listen(server: Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

export async function startReleaseServer(): Promise<ReleaseServer> {
  const assets = new Map<string, string>();
  const requests: RecordedRequest[] = [];
  const counts = { github: 0, storage: 0 };
  const state: Pick<ReleaseServer, 'github' | 'storage'> = { github: {}, storage: {} };

  const failIfAsked = (host: 'github' | 'storage', req: IncomingMessage, res: ServerResponse): boolean => {
    const b = state[host];
    counts[host]++;
    if (b.failFirst && counts[host] <= b.failFirst) {
      if (b.failWith === 'reset') req.socket.destroy();
      else {
        res.writeHead(typeof b.failWith === 'number' ? b.failWith : 503);
        res.end('try later');
      }
      return true;
    }
    if (b.notFound) {
      res.writeHead(404);
      res.end('Not Found');
      return true;
    }
    return false;
  };

  const record = (host: 'github' | 'storage', req: IncomingMessage) =>
    requests.push({ host, method: req.method ?? 'GET', path: req.url ?? '', headers: { ...req.headers } });

  let storageUrl = '';
  const github = createServer((req, res) => {
    record('github', req);
    if (failIfAsked('github', req, res)) return;
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const direct = path.startsWith('/direct/') ? assets.get(path.slice('/direct'.length)) : undefined;
    if (direct) {
      const body = readFileSync(direct);
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length });
      res.end(body);
      return;
    }
    if (!assets.has(path)) {
      res.writeHead(404);
      res.end('Not Found');
      return;
    }
    const location = state.github.redirectTo ?? `${storageUrl}/blob${path}?X-Signature=s3cr3t-signature&expires=1`;
    res.writeHead(302, { location });
    res.end();
  });
  const storage = createServer((req, res) => {
    record('storage', req);
    if (failIfAsked('storage', req, res)) return;
    const path = new URL(req.url ?? '/', 'http://x').pathname.replace(/^\/blob/, '');
    if (state.storage.redirectTo) {
      res.writeHead(302, { location: state.storage.redirectTo });
      res.end();
      return;
    }
    const file = assets.get(path);
    if (!file) {
      res.writeHead(404);
      res.end('Not Found');
      return;
    }
    const body = state.storage.wrongContent ? Buffer.from(state.storage.wrongContent) : readFileSync(file);
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length });
    const cut = state.storage.truncateAt;
    if (cut !== undefined && cut < body.length) {
      res.write(body.subarray(0, cut), () => res.destroy());
      return;
    }
    res.end(body);
  });
  const githubPort = await listen(github);
  const storagePort = await listen(storage);
  storageUrl = `http://127.0.0.1:${storagePort}`;
  return {
    url: `http://127.0.0.1:${githubPort}`,
    storageUrl,
    requests,
    get github() {
      return state.github;
    },
    set github(b) {
      state.github = b;
      counts.github = 0;
    },
    get storage() {
      return state.storage;
    },
    set storage(b) {
      state.storage = b;
      counts.storage = 0;
    },
    publish(repo, version, assetPath) {
      statSync(assetPath);
      assets.set(`/${repo}/releases/download/${version}/containai-${version}.tar.gz`, assetPath);
    },
    async stop() {
      for (const s of [github, storage]) {
        s.closeAllConnections();
        await new Promise((r) => s.close(r));
      }
    },
  };
}

// ---------------------------------------------------------------------------

export interface TestBundleOptions {
  /** Extra or replacement payload files (path under payload/ → content). */
  files?: Record<string, string | Uint8Array>;
  /** Files present in the payload but left out of SHA256SUMS. */
  unlisted?: Record<string, string>;
  /** Make one listed file's content differ from SHA256SUMS. */
  sumsMismatch?: boolean;
  /** Write a wrong payload.sha256. */
  payloadShaMismatch?: boolean;
  /** Extra bundle members (name → content). */
  members?: Record<string, string | Uint8Array>;
  /** Leave a member out of the bundle. */
  omit?: 'payload.sha256' | 'payload.tar.gz';
  /** The version payload/release.json names (default: the bundle's own); null leaves release.json out. */
  payloadVersion?: string | null;
}

/** Every file of a test payload and its content, release.json and VERSION included, as SHA256SUMS lists them. */
export function testPayloadFiles(version: string, extra: Record<string, string | Uint8Array> = {}, payloadVersion: string | null = version): Record<string, string | Uint8Array> {
  const release: Record<string, string> = payloadVersion === null ? {} : { [RELEASE_FILE]: formatReleaseManifest(payloadVersion) };
  return { ...GOOD_FILES, ...release, VERSION: `${version}\n`, ...extra };
}

/** Writes <dir>/containai-<version>.tar.gz and returns its path. */
export function makeTestBundle(dir: string, version: string, options: TestBundleOptions = {}): string {
  const files = testPayloadFiles(version, options.files, options.payloadVersion);
  const sums = Object.entries(files)
    .map(([path, body]) => ({ path, sha256: sha256Hex(typeof body === 'string' ? Buffer.from(body) : body) }))
    .sort((a, b) => Buffer.compare(Buffer.from(a.path), Buffer.from(b.path)));
  if (options.sumsMismatch && sums[0]) sums[0].sha256 = sha256Hex(Buffer.from('not this'));
  const entries: TarSpec[] = goodPayloadEntries();
  const present = new Set(entries.map((e) => e.name));
  const dirs = new Set<string>();
  for (const [path, body] of Object.entries({ ...files, ...options.unlisted })) {
    const parts = path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const d = `payload/${parts.slice(0, i).join('/')}/`;
      if (!present.has(d) && !dirs.has(d)) {
        dirs.add(d);
        entries.push({ name: d, type: 'dir' });
      }
    }
    const name = `payload/${path}`;
    const existing = entries.find((e) => e.name === name);
    if (existing) existing.body = body;
    else entries.push({ name, body, mode: path.startsWith('tools/') ? 0o755 : 0o644 });
  }
  entries.push({ name: 'payload/SHA256SUMS', body: sums.map((s) => `${s.sha256}  ${s.path}\n`).join('') });
  const payload = buildTarGz(entries);
  const members: TarSpec[] = [];
  if (options.omit !== 'payload.tar.gz') members.push({ name: 'payload.tar.gz', body: payload });
  if (options.omit !== 'payload.sha256') {
    const sha = options.payloadShaMismatch ? sha256Hex(Buffer.from('other')) : sha256Hex(payload);
    members.push({ name: 'payload.sha256', body: `${sha}  payload.tar.gz\n` });
  }
  for (const [name, body] of Object.entries(options.members ?? {})) members.push({ name, body });
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `containai-${version}.tar.gz`);
  writeFileSync(path, buildTarGz(members));
  return path;
}

// ---------------------------------------------------------------------------

/** The release current names, checked against its own SHA256SUMS by this test (not by the code under test). */
export function expectIntact(root: string, version: string): void {
  const target = readlinkSync(join(root, 'current'));
  expect(target).toMatch(new RegExp(`^releases/${version.replace(/\./g, '\\.')}(@\\d+)?$`));
  const dir = join(root, target);
  const sums = readFileSync(join(dir, 'SHA256SUMS'), 'utf8').trim().split('\n');
  for (const line of sums) {
    const [hash, path] = line.split(/ {2}/) as [string, string];
    expect(createHash('sha256').update(readFileSync(join(dir, path))).digest('hex'), path).toBe(hash);
  }
  const record = JSON.parse(readFileSync(join(dir, 'install.json'), 'utf8'));
  expect(record.version).toBe(version);
  expect(existsSync(join(dir, `containai-${version}.tar.gz`))).toBe(true);
  expect(readdirSync(join(root, 'releases')).filter((n) => n.startsWith('.'))).toEqual([]);
  expect(readdirSync(root).filter((n) => n.startsWith('.'))).toEqual([]);
}

