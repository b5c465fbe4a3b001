/**
 * install from a release server (GitHub Releases stand-in on 127.0.0.1): the
 * token goes to the release host only, never to the storage host it redirects
 * to, never into any output; failures are retried, bad content refused, and
 * nothing is lost or half-written whatever the server does.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'bun:test';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { host, removeDir, REPO_ROOT, tempDir } from '../helpers/cli.ts';
import { expectIntact, makeTestBundle, startReleaseServer, type ReleaseServer } from '../helpers/release-server.ts';

const TOKEN = 'ghp_TestTokenThatMustNeverLeak1234567890';
const REPO = 'acme/containai';
let server: ReleaseServer;
let work: string;

beforeAll(async () => {
  server = await startReleaseServer();
  work = tempDir('cai-download-');
  for (const v of ['v1.0.0', 'v1.1.0']) server.publish(REPO, v, makeTestBundle(join(work, 'assets'), v));
});
afterAll(async () => {
  await server.stop();
  removeDir(work);
});
beforeEach(() => {
  server.github = {};
  server.storage = {};
  server.requests.length = 0;
});

let roots = 0;
async function download(root: string, version: string, extra: string[] = [], env: Record<string, string> = {}) {
  return host(['install', '--version', version, '--repo', REPO, '--install-root', root, '--allow-unsigned', '--allow-nonroot', ...extra], {
    env: { CONTAINAI_GITHUB_URL: server.url, GITHUB_TOKEN: TOKEN, ...env },
  });
}
async function rootWithV1(): Promise<string> {
  const root = join(work, `root${roots++}`);
  const r = await download(root, 'v1.0.0');
  expect(r.code, r.stderr).toBe(0);
  server.requests.length = 0;
  return root;
}
function expectNoToken(...texts: string[]) {
  for (const t of texts) {
    expect(t).not.toContain(TOKEN);
    expect(t).not.toContain(Buffer.from(TOKEN).toString('base64'));
    expect(t).not.toContain('s3cr3t-signature');
  }
}

describe('download from GitHub Releases', () => {
  test('the token goes to the release host; the storage host gets no Authorization; nothing prints it', async () => {
    const root = await rootWithV1();
    const r = await download(root, 'v1.1.0', ['--json']);
    expect(r.code, r.stderr).toBe(0);
    expectIntact(root, 'v1.1.0');
    const github = server.requests.filter((q) => q.host === 'github');
    const storage = server.requests.filter((q) => q.host === 'storage');
    expect(github.length).toBe(1);
    expect(github[0]?.headers.authorization).toBe(`Bearer ${TOKEN}`);
    expect(github[0]?.path).toBe(`/${REPO}/releases/download/v1.1.0/containai-v1.1.0.tar.gz`);
    expect(storage.length).toBe(1);
    expect(storage[0]?.headers.authorization).toBeUndefined();
    expectNoToken(r.stdout, r.stderr, readFileSync(join(root, 'current', '.containai', 'install.json'), 'utf8'), readFileSync(join(root, 'state', 'events.jsonl'), 'utf8'));
    expect(JSON.parse(readFileSync(join(root, 'current', '.containai', 'install.json'), 'utf8')).source).toBe(`${server.storageUrl}/blob/${REPO}/releases/download/v1.1.0/containai-v1.1.0.tar.gz`);
  });

  test.each([
    ['503 twice', { failFirst: 2, failWith: 503 }],
    ['the connection reset twice', { failFirst: 2, failWith: 'reset' }],
  ] as const)('a server that fails the first requests (%s) is retried', async (_name, behaviour) => {
    const root = await rootWithV1();
    server.github = { ...behaviour };
    const r = await download(root, 'v1.1.0');
    expect(r.code, r.stderr).toBe(0);
    expect(server.requests.filter((q) => q.host === 'github').length).toBe(3);
    expectIntact(root, 'v1.1.0');
  });

  test('a body cut short is retried, and refused when it never completes', async () => {
    const root = await rootWithV1();
    server.storage = { truncateAt: 100 };
    const r = await download(root, 'v1.1.0');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/ended after 100 of|broke off after/);
    expectNoToken(r.stdout, r.stderr);
    expect(server.requests.filter((q) => q.host === 'storage').length).toBe(5);
    expectIntact(root, 'v1.0.0');
  }, 30_000);

  test('wrong content is refused by the bundle checks', async () => {
    const root = await rootWithV1();
    server.storage = { wrongContent: new Uint8Array(2000).map((_, i) => (i * 31) & 0xff) };
    const r = await download(root, 'v1.1.0');
    expect(r.code).toBe(1);
    expectIntact(root, 'v1.0.0');
    expect(readdirSync(join(root, 'releases'))).toEqual(['v1.0.0']);
  });

  test('a 404 names the release and the repository', async () => {
    const root = await rootWithV1();
    const r = await download(root, 'v3.0.0');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`release v3.0.0 of ${REPO} has no asset containai-v3.0.0.tar.gz`);
    expectNoToken(r.stderr);
    expectIntact(root, 'v1.0.0');
  });

  test('a redirect to plain http elsewhere is refused before anything is fetched from it', async () => {
    const root = await rootWithV1();
    server.github = { redirectTo: 'http://downloads.example.invalid/containai.tar.gz' };
    const r = await download(root, 'v1.1.0');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('redirect to plain http');
    expectNoToken(r.stderr);
    expectIntact(root, 'v1.0.0');
  });

  test('a bundle of the first format downloads, verifies and installs, its bundle kept in .containai/', async () => {
    const fixtures = join(REPO_ROOT, 'test', 'fixtures', 'format1');
    server.publish(REPO, 'v0.9.0', join(fixtures, 'containai-v0.9.0.tar.gz'));
    const root = join(work, `root${roots++}`);
    const r = await download(root, 'v0.9.0', ['--key', join(fixtures, 'key.pub')]);
    expect(r.code, r.stderr).toBe(0);
    expect(readlinkSync(join(root, 'current'))).toBe('releases/v0.9.0');
    expect(readdirSync(join(root, 'releases', 'v0.9.0', '.containai')).sort()).toEqual(['containai-v0.9.0.tar.gz', 'install.json']);
    const record = JSON.parse(readFileSync(join(root, 'current', '.containai', 'install.json'), 'utf8'));
    expect(record).toMatchObject({ format: 1, version: 'v0.9.0', signer: { kind: 'key' } });
    expect(record.source).toBe(`${server.storageUrl}/blob/${REPO}/releases/download/v0.9.0/containai-v0.9.0.tar.gz`);
    expect(readdirSync(join(root, 'releases'))).toEqual(['v0.9.0']);
    const verify = await host(['install', '--verify-only', '--install-root', root, '--key', join(fixtures, 'key.pub')]);
    expect(verify.code, verify.stderr).toBe(0);
  });

  test('CONTAINAI_GITHUB_URL must be https unless it is a loopback test server', async () => {
    const root = await rootWithV1();
    const r = await download(root, 'v1.1.0', [], { CONTAINAI_GITHUB_URL: 'http://github.example.com' });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('must be https://');
    expect(readlinkSync(join(root, 'current'))).toBe('releases/v1.0.0');
  });
});
