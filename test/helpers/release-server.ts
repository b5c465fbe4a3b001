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
 * makeTestBundle() builds a bundle of the current format byte by byte
 * (test/helpers/craft.ts), optionally bent one way; expectIntact() checks an
 * installed release against its own manifest, apart from the code under test.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { expect } from 'bun:test';
import { createHash } from 'node:crypto';
import { lstatSync, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { craftRelease, type CraftSpec } from './craft.ts';
import type { TestKeyPair } from './signing.ts';

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
  /** Extra or replacement payload files (path under payload/ → content), listed in the manifest. */
  files?: Record<string, string | Uint8Array>;
  /** Files present in the payload but listed nowhere (neither release.json nor SHA256SUMS). */
  unlisted?: Record<string, string>;
  /** Make one listed file's content (README.md) differ from its line in SHA256SUMS. */
  sumsMismatch?: boolean;
  /** Extra or replaced bundle members (name → content). */
  members?: Record<string, string | Uint8Array>;
  /** Leave a member out of the bundle. */
  omit?: 'payload.sha256' | 'payload.tar.gz';
  /** The version payload/release.json names (default: the bundle's own); null leaves release.json out of the payload and of SHA256SUMS. */
  payloadVersion?: string | null;
  /** release.json's text instead of the one made from the tree (SHA256SUMS lists it as it is). */
  releaseJson?: string;
  /** Sign SHA256SUMS with this key (SHA256SUMS.sigstore.json and SHA256SUMS.sig); unsigned otherwise. */
  key?: TestKeyPair;
}

/** The payload tree of a test release (the current format: no agent inside): a plain file, an executable, links inside, the version. */
export function testTree(version: string, extra: Record<string, string | Uint8Array> = {}): CraftSpec {
  const tree: CraftSpec = {
    'README.md': '# ContainAI\n',
    'host/profile.env': 'IMAGE_PREFIX=containai\n',
    'host/utils/run.sh': { content: '#!/bin/sh\necho hello\n', mode: 0o755 },
    'host/utils/latest': { symlink: 'run.sh' },
    'host/readme-link': { symlink: '../README.md' },
    VERSION: `${version}\n`,
  };
  for (const [path, body] of Object.entries(extra)) tree[path] = typeof body === 'string' ? body : { content: body, mode: 0o644 };
  return tree;
}

/**
 * Writes <dir>/containai-<version>.tar.gz, a bundle of the current format (test/helpers/craft.ts:
 * SHA256SUMS first, the payload opening with SHA256SUMS and release.json), optionally bent one way,
 * and returns its path. Unsigned unless a key is given: install it with --allow-unsigned.
 */
export function makeTestBundle(dir: string, version: string, options: TestBundleOptions = {}): string {
  const crafted = craftRelease(dir, {
    version,
    tree: testTree(version, options.files),
    key: options.key,
    releaseJsonVersion: options.payloadVersion ?? undefined,
    editReleaseJson: options.releaseJson === undefined ? undefined : () => options.releaseJson as string,
    editSums: options.payloadVersion === null ? (text) => text.split('\n').filter((line) => !line.endsWith('  release.json')).join('\n') : undefined,
    editPayload: (entries) => {
      let out = entries;
      if (options.payloadVersion === null) out = out.filter((e) => e.name !== 'payload/release.json');
      if (options.sumsMismatch) out = out.map((e) => (e.name === 'payload/README.md' ? { ...e, body: 'not this\n' } : e));
      for (const [path, body] of Object.entries(options.unlisted ?? {})) out = [...out, { name: `payload/${path}`, body, mode: 0o644 }];
      return out;
    },
    members: options.members,
    omit: options.omit ? [options.omit] : undefined,
  });
  return crafted.bundle;
}

// ---------------------------------------------------------------------------

const KEPT_FILES = ['install.json', 'attestation.intoto.jsonl', 'SHA256SUMS.sigstore.json', 'SHA256SUMS.sig'];

/** Every entry under a release folder but .containai/, as release.json lists entries: type and mode, or link target. */
export function entriesOnDisk(dir: string): Record<string, { type: string; mode?: string; target?: string }> {
  const out: Record<string, { type: string; mode?: string; target?: string }> = {};
  const walk = (rel: string) => {
    for (const name of readdirSync(join(dir, rel))) {
      const path = rel ? `${rel}/${name}` : name;
      if (path === '.containai') continue;
      const info = lstatSync(join(dir, path));
      const mode = (info.mode & 0o7777).toString(8).padStart(4, '0');
      if (info.isSymbolicLink()) out[path] = { type: 'symlink', target: readlinkSync(join(dir, path)) };
      else if (info.isDirectory()) {
        out[path] = { type: 'dir', mode };
        walk(path);
      } else out[path] = { type: info.isFile() ? 'file' : 'other', mode };
    }
  };
  walk('');
  return out;
}

/**
 * A release folder checked by this test against its own manifest, independently of the code under
 * test: every file SHA256SUMS lists has its digest, release.json names the version and exactly the
 * entries on disk (type, mode, link target), and .containai/ holds install.json (format 2, the
 * version, the sha256 of this SHA256SUMS) and signature material only: no kept bundle.
 */
export function expectReleaseTree(dir: string, version: string): void {
  const sums = readFileSync(join(dir, 'SHA256SUMS'));
  const listed = sums.toString('utf8').trim().split('\n');
  for (const line of listed) {
    const [hash, path] = line.split(/ {2}/) as [string, string];
    expect(createHash('sha256').update(readFileSync(join(dir, path))).digest('hex'), `${version}: ${path}`).toBe(hash);
  }
  const releaseJson = JSON.parse(readFileSync(join(dir, 'release.json'), 'utf8'));
  expect(releaseJson).toMatchObject({ format: 2, version });
  const onDisk = entriesOnDisk(dir);
  expect(onDisk).toEqual(releaseJson.entries);
  const files = Object.entries(onDisk).filter(([, e]) => e.type === 'file').map(([p]) => p).filter((p) => p !== 'SHA256SUMS');
  expect(files.sort()).toEqual(listed.map((l) => l.slice(66)).sort());
  const record = JSON.parse(readFileSync(join(dir, '.containai', 'install.json'), 'utf8'));
  expect(record).toMatchObject({ format: 2, version, manifestSha256: createHash('sha256').update(sums).digest('hex') });
  for (const name of readdirSync(join(dir, '.containai'))) expect(KEPT_FILES, `.containai/${name}`).toContain(name);
}

/** The release current names, checked against its own manifest by this test (not by the code under test), and nothing left over. */
export function expectIntact(root: string, version: string): void {
  const target = readlinkSync(join(root, 'current'));
  expect(target).toMatch(new RegExp(`^releases/${version.replace(/\./g, '\\.')}(@\\d+)?$`));
  expectReleaseTree(join(root, target), version);
  expect(readdirSync(join(root, 'releases')).filter((n) => n.startsWith('.'))).toEqual([]);
  expect(readdirSync(root).filter((n) => n.startsWith('.'))).toEqual([]);
}
