/**
 * Registries for the OCI tests, all Debian's docker-registry (distribution
 * 2.8) on loopback:
 *
 * - startRegistry() (services.ts): htpasswd (Basic) auth;
 * - startTokenRegistry(): distribution's `auth: token`, with a small token
 *   server here that issues ES256 JWTs signed with a test key whose
 *   certificate is the registry's rootcertbundle (the way a real token server
 *   works: anonymous pull tokens, push for a user with a password);
 * - startProxyRegistry(upstream): a second registry in pull-through proxy
 *   mode (`proxy: remoteurl:`), a site mirror in front of another.
 *
 * Each writes Apache combined access-log lines on stdout (registry.log in
 * its folder); accessLog() reads them so a test can count what was asked.
 */
import { createPrivateKey, sign, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, onceService, requireService, trackProcess, trackStop, waitFor, type RegistryService } from './services.ts';

export interface AccessEntry {
  method: string;
  path: string;
  status: number;
  bytes: number;
  userAgent: string;
}

const COMBINED = /^\S+ \S+ \S+ \[[^\]]+\] "(\S+) (\S+) [^"]*" (\d{3}) (\d+|-) "[^"]*" "([^"]*)"/;

/** The registry's access log, parsed (Apache combined format, as distribution writes it). */
export function accessLog(service: { dir: string }): AccessEntry[] {
  let text = '';
  try {
    text = readFileSync(join(service.dir, 'registry.log'), 'utf8');
  } catch {
    return [];
  }
  return text.split('\n').flatMap((line) => {
    const m = COMBINED.exec(line);
    if (!m) return [];
    return [{ method: m[1] as string, path: m[2] as string, status: Number(m[3]), bytes: m[4] === '-' ? 0 : Number(m[4]), userAgent: m[5] as string }];
  });
}

/** Entries logged after `mark` (a count from an earlier accessLog().length). */
export function accessSince(service: { dir: string }, mark: number): AccessEntry[] {
  return accessLog(service).slice(mark);
}

/** Waits until the log has at least `count` entries past `mark` (the registry writes a line after the response). */
export async function settleLog(service: { dir: string }, mark: number, count: number): Promise<AccessEntry[]> {
  await waitFor(`${count} access-log lines`, () => accessSince(service, mark).length >= count, 10_000);
  return accessSince(service, mark);
}

function writeConfig(dir: string, port: number, extra: string[]): string {
  const path = join(dir, 'config.yml');
  writeFileSync(
    path,
    [
      'version: 0.1',
      'log: { level: warn }',
      `storage: { filesystem: { rootdirectory: ${join(dir, 'data')} }, delete: { enabled: true } }`,
      `http: { addr: "127.0.0.1:${port}" }`,
      ...extra,
      '',
    ].join('\n'),
  );
  return path;
}

async function spawnRegistry(dir: string, config: string): Promise<void> {
  const registry = requireService('docker-registry', 'docker-registry');
  const proc = Bun.spawn([registry, 'serve', config], {
    stdout: Bun.file(join(dir, 'registry.log')),
    stderr: Bun.file(join(dir, 'registry.err.log')),
  });
  trackProcess(proc, dir);
}

// ---------------------------------------------------------------------------
// Token auth

export interface TokenRequestRecord {
  user?: string;
  scopes: string[];
  granted: Array<{ name: string; actions: string[] }>;
}

export interface TokenRegistryService extends RegistryService {
  realm: string;
  service: string;
  tokenRequests: TokenRequestRecord[];
  /** Repositories under this prefix need credentials to pull too. */
  privatePrefix: string;
}

const ISSUER = 'containai-test-issuer';
const SERVICE = 'containai-test-registry';

function base64url(data: Uint8Array | string): string {
  return Buffer.from(data).toString('base64url');
}

function issueToken(key: KeyObject, x5c: string, subject: string, access: TokenRequestRecord['granted']): string {
  const now = Math.floor(Date.now() / 1000);
  const header = { typ: 'JWT', alg: 'ES256', x5c: [x5c] };
  const claims = { iss: ISSUER, sub: subject, aud: SERVICE, exp: now + 300, nbf: now - 10, iat: now, jti: crypto.randomUUID(), access };
  const input = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(claims))}`;
  const signature = sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
  return `${input}.${base64url(signature)}`;
}

/** docker-registry with `auth: token` and the token server that issues its JWTs. */
export function startTokenRegistry(): Promise<TokenRegistryService> {
  return onceService('token-registry', async () => {
    const openssl = requireService('openssl', 'openssl');
    const dir = mkdtempSync(join(tmpdir(), 'cai-token-registry-'));
    const keyPath = join(dir, 'token.key');
    const certPath = join(dir, 'token.crt');
    const made = Bun.spawnSync([openssl, 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyPath, '-out', certPath, '-days', '2', '-subj', '/CN=containai-test-token-signer'], { stderr: 'pipe' });
    if (made.exitCode !== 0) throw new Error(`openssl failed: ${made.stderr.toString()}`);
    const key = createPrivateKey(readFileSync(keyPath));
    const x5c = readFileSync(certPath, 'utf8').replace(/-----[^-]+-----|\s/g, '');

    const username = 'release-bot';
    const password = `tok-pw-${crypto.randomUUID()}`;
    const privatePrefix = 'private/';
    const tokenRequests: TokenRequestRecord[] = [];
    const tokenPort = await freePort();
    const server = Bun.serve({
      hostname: '127.0.0.1',
      port: tokenPort,
      fetch(request) {
        const url = new URL(request.url);
        if (url.pathname !== '/token') return new Response('not found', { status: 404 });
        let user: string | undefined;
        const auth = request.headers.get('authorization');
        if (auth) {
          const [scheme, value] = auth.split(' ');
          const decoded = scheme === 'Basic' ? Buffer.from(value ?? '', 'base64').toString() : '';
          if (decoded !== `${username}:${password}`) return new Response('{"details":"bad credentials"}', { status: 401 });
          user = username;
        }
        const scopes = url.searchParams.getAll('scope');
        const granted: TokenRequestRecord['granted'] = [];
        for (const scope of scopes) {
          const [type, name, actions] = scope.split(':');
          if (type !== 'repository' || !name) continue;
          const asked = (actions ?? '').split(',');
          const allowed = asked.filter((a) => (a === 'pull' ? user !== undefined || !name.startsWith(privatePrefix) : a === 'push' ? user !== undefined : false));
          granted.push({ name, actions: allowed });
        }
        tokenRequests.push({ user, scopes, granted });
        const token = issueToken(key, x5c, user ?? '', granted.map((g) => ({ type: 'repository', ...g })));
        return Response.json({ token, access_token: token, expires_in: 300, issued_at: new Date().toISOString() });
      },
    });
    const realm = `http://127.0.0.1:${tokenPort}/token`;
    const port = await freePort();
    const config = writeConfig(dir, port, [`auth: { token: { realm: "${realm}", service: ${SERVICE}, issuer: ${ISSUER}, rootcertbundle: ${certPath} } }`]);
    await spawnRegistry(dir, config);
    trackStop(() => server.stop(true));
    const address = `127.0.0.1:${port}`;
    await waitFor('the token registry to answer /v2/', async () => (await fetch(`http://${address}/v2/`)).status === 401);
    return { address, username, password, dir, realm, service: SERVICE, tokenRequests, privatePrefix };
  });
}

// ---------------------------------------------------------------------------
// Pull-through proxy

export interface ProxyRegistryService {
  address: string;
  dir: string;
  upstream: TokenRegistryService;
}

/**
 * A second docker-registry as a pull-through cache (`proxy: remoteurl:`) in front of the token registry, open
 * to hosts. In front of the token registry, not the htpasswd one: distribution's proxy keys its upstream
 * credentials by the challenge's realm, which is a URL only for token auth (as Docker Hub, GHCR, Harbor use).
 */
export function startProxyRegistry(): Promise<ProxyRegistryService> {
  return onceService('proxy-registry', async () => {
    const upstream = await startTokenRegistry();
    const dir = mkdtempSync(join(tmpdir(), 'cai-proxy-registry-'));
    const port = await freePort();
    const config = writeConfig(dir, port, [`proxy: { remoteurl: "http://${upstream.address}", username: ${upstream.username}, password: "${upstream.password}" }`]);
    await spawnRegistry(dir, config);
    const address = `127.0.0.1:${port}`;
    await waitFor('the proxy registry to answer /v2/', async () => (await fetch(`http://${address}/v2/`)).status === 200);
    return { address, dir, upstream };
  });
}

/** Where distribution keeps a blob's bytes on disk (filesystem storage): a test swaps a layer there. */
export function storedBlob(service: { dir: string }, digest: string): string {
  const hex = digest.slice('sha256:'.length);
  return join(service.dir, 'data', 'docker', 'registry', 'v2', 'blobs', 'sha256', hex.slice(0, 2), hex, 'data');
}

/** GETs of one blob in an access log. */
export function blobGets(log: AccessEntry[], digest: string): AccessEntry[] {
  return log.filter((e) => e.method === 'GET' && e.path.endsWith(`/blobs/${digest}`));
}
