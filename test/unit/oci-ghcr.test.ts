/**
 * GITHUB_TOKEN for ghcr.io, against a loopback stand-in for GHCR (the real one
 * cannot be reached from a test): a front that speaks GHCR's auth (a 401 with
 * `Bearer realm="https://ghcr.io/token",service="ghcr.io"`, a token endpoint
 * that takes any user name with a token as the password, DENIED for a private
 * package without one) and hands what it accepts to a real docker-registry
 * behind it. The client is given a fetch that sends https://ghcr.io to the
 * stand-in and records what left the process, so the test sees that the
 * token goes to the realm only, over https, and never into a message.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sha256File } from '../../lib/digest.ts';
import { ContainaiError } from '../../lib/errors.ts';
import { publishRelease } from '../../lib/oci/publish.ts';
import { parseRegistryReference } from '../../lib/oci/reference.ts';
import { registryReleaseSource } from '../../lib/oci/release-source.ts';
import { redact } from '../../lib/secrets.ts';
import { removeDir, tempDir } from '../helpers/cli.ts';
import { makeRegistryRelease, type RegistryRelease } from '../helpers/registry-release.ts';
import { freePort, startRegistry, type RegistryService } from '../helpers/services.ts';
import { refusal } from '../helpers/refusal.ts';

const dirs: string[] = [];
afterAll(() => dirs.forEach(removeDir));
const scratch = (p: string) => {
  const d = tempDir(p);
  dirs.push(d);
  return d;
};

interface Sent {
  url: string;
  authorization?: string;
}

let registry: RegistryService;
let release: RegistryRelease;
let standIn: { port: number; issued: Map<string, string>; tokenAsks: Array<{ user?: string; password?: string; scope: string | null }>; stop(): void };
const USER_TOKEN = `ghp_${'x'.repeat(12)}${crypto.randomUUID().replaceAll('-', '')}`;

/** GHCR's auth in front of a real registry; a token is good for the package when it came from USER_TOKEN. */
async function startGhcrStandIn(): Promise<typeof standIn> {
  const port = await freePort();
  const issued = new Map<string, string>();
  const tokenAsks: Array<{ user?: string; password?: string; scope: string | null }> = [];
  const backend = `Basic ${Buffer.from(`${registry.username}:${registry.password}`).toString('base64')}`;
  const server = Bun.serve({
    hostname: '127.0.0.1',
    port,
    async fetch(request) {
      const url = new URL(request.url);
      if (url.pathname === '/token') {
        const basic = /^Basic (.+)$/.exec(request.headers.get('authorization') ?? '')?.[1];
        const [user, password] = basic ? Buffer.from(basic, 'base64').toString().split(':') : [];
        tokenAsks.push({ user, password, scope: url.searchParams.get('scope') });
        if (basic && password !== USER_TOKEN) return Response.json({ errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] }, { status: 401 });
        const token = `ghcr-registry-token-${crypto.randomUUID()}`;
        issued.set(token, basic ? 'user' : 'anonymous');
        return Response.json({ token });
      }
      if (!url.pathname.startsWith('/v2/')) return new Response('not found', { status: 404 });
      const bearer = /^Bearer (.+)$/.exec(request.headers.get('authorization') ?? '')?.[1];
      const who = bearer ? issued.get(bearer) : undefined;
      if (!who) {
        return Response.json({ errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] }, {
          status: 401,
          headers: { 'www-authenticate': `Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:acme/containai-release:pull"` },
        });
      }
      if (who !== 'user') return Response.json({ errors: [{ code: 'DENIED', message: 'requested access to the resource is denied' }] }, { status: 403 });
      const headers = new Headers({ authorization: backend });
      for (const name of ['accept', 'range']) {
        const value = request.headers.get(name);
        if (value) headers.set(name, value);
      }
      const answer = await fetch(`http://${registry.address}${url.pathname}${url.search}`, { method: request.method, headers, redirect: 'manual', decompress: false } as RequestInit);
      return new Response(answer.body, { status: answer.status, headers: answer.headers });
    },
  });
  return { port, issued, tokenAsks, stop: () => server.stop(true) };
}

/** A fetch that takes https://ghcr.io to the stand-in, and records every request that left. */
function ghcrFetch(sent: Sent[]): typeof fetch {
  return (async (input: string | URL | Request, init?: RequestInit) => {
    const url = new URL(input instanceof Request ? input.url : input.toString());
    const headers = new Headers(init?.headers);
    sent.push({ url: url.href, authorization: headers.get('authorization') ?? undefined });
    if (url.origin !== 'https://ghcr.io') throw new Error(`the client went to ${url.origin}, not https://ghcr.io`);
    return fetch(`http://127.0.0.1:${standIn.port}${url.pathname}${url.search}`, init);
  }) as typeof fetch;
}

beforeAll(async () => {
  registry = await startRegistry();
  release = await makeRegistryRelease({ version: 'v1.4.0', payloadBytes: 64 * 1024 });
  await publishRelease({
    version: release.version,
    releaseDir: release.dir,
    to: parseRegistryReference(`oci://${registry.address}/acme/containai-release`, '--to'),
    channel: 'stable',
    credentials: { username: registry.username, password: registry.password, source: 'test' },
  });
  standIn = await startGhcrStandIn();
});
afterAll(() => standIn.stop());

const REF = parseRegistryReference('oci://ghcr.io/acme/containai-release:stable');

async function readRelease(env: NodeJS.ProcessEnv, sent: Sent[]): Promise<string> {
  // HOME too: a developer's own ~/.docker/config.json must not take part.
  const source = registryReleaseSource(REF, { downloadDir: scratch('cai-ghcr-dl-'), env: { HOME: scratch('cai-ghcr-home-'), ...env }, fetch: ghcrFetch(sent) });
  try {
    await source.open();
    const hasher = new Bun.CryptoHasher('sha256');
    for await (const chunk of source.payload()) hasher.update(chunk);
    return hasher.digest('hex');
  } finally {
    await source.close();
  }
}

describe('GITHUB_TOKEN for ghcr.io', () => {
  test('is sent as the password of a Basic login to the token realm, over https, and only there; the registry sees the bearer token it issued', async () => {
    const sent: Sent[] = [];
    const asks = standIn.tokenAsks.length;
    expect(await readRelease({ GITHUB_TOKEN: USER_TOKEN, GITHUB_ACTOR: 'octo-bot' }, sent)).toBe(await sha256File(release.payload));
    expect(standIn.tokenAsks.slice(asks)).toEqual([{ user: 'octo-bot', password: USER_TOKEN, scope: 'repository:acme/containai-release:pull' }]);
    const basicOfToken = `Basic ${Buffer.from(`octo-bot:${USER_TOKEN}`).toString('base64')}`;
    for (const request of sent) {
      expect(request.url.startsWith('https://ghcr.io/')).toBe(true);
      if (request.authorization === basicOfToken) expect(new URL(request.url).pathname).toBe('/token');
      else if (request.authorization) expect(request.authorization).toMatch(/^Bearer ghcr-registry-token-/);
    }
    // The token the realm issued is a secret too: no message can carry it.
    const issued = sent.find((s) => s.authorization?.startsWith('Bearer '))?.authorization?.slice('Bearer '.length) ?? '';
    expect(issued).not.toBe('');
    expect(redact(`token ${issued} and ${USER_TOKEN}`)).toBe('token [REDACTED] and [REDACTED]');
  });

  test('without it, a private package is denied, and the hint names GITHUB_TOKEN and docker login', async () => {
    const err = await refusal(readRelease({}, []));
    expect(err.message).toContain('denied access (none were found)');
    expect(err.hint).toContain('GITHUB_TOKEN');
    expect(err.hint).toContain('docker login');
  });

  test('a wrong token is refused by the realm, named by where it came from, never shown', async () => {
    const wrong = `ghp_wrong${crypto.randomUUID().replaceAll('-', '')}`;
    const err = await refusal(readRelease({ GITHUB_TOKEN: wrong }, []));
    expect(err.message).toContain('refused the credentials from GITHUB_TOKEN');
    expect(`${err.message} ${err.hint}`).not.toContain(wrong);
    expect(redact(wrong)).toBe('[REDACTED]');
  });

  test("Docker's config.json comes first: its ghcr.io login is used, not GITHUB_TOKEN", async () => {
    const config = scratch('cai-ghcr-docker-');
    writeFileSync(join(config, 'config.json'), JSON.stringify({ auths: { 'ghcr.io': { auth: Buffer.from(`from-config:${USER_TOKEN}`).toString('base64') } } }));
    const asks = standIn.tokenAsks.length;
    await readRelease({ DOCKER_CONFIG: config, GITHUB_TOKEN: 'ghp_not-this-one-1234567890' }, []);
    expect(standIn.tokenAsks.slice(asks).map((a) => a.user)).toEqual(['from-config']);
  });

  test('is never sent to another registry', async () => {
    const sent: Sent[] = [];
    const other = registryReleaseSource(parseRegistryReference(`oci://${registry.address}/acme/containai-release:stable`), {
      downloadDir: scratch('cai-ghcr-dl-'),
      env: { HOME: scratch('cai-ghcr-home-'), GITHUB_TOKEN: USER_TOKEN },
      fetch: (async (input: string | URL | Request, init?: RequestInit) => {
        sent.push({ url: String(input), authorization: new Headers(init?.headers).get('authorization') ?? undefined });
        return fetch(input, init);
      }) as typeof fetch,
    });
    const err = await refusal(other.open());
    expect(err.message).toContain('refused the credentials (none were found)');
    expect(sent.length).toBeGreaterThan(0);
    expect(sent.every((s) => s.authorization === undefined)).toBe(true);
  });
});
