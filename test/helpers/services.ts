/**
 * Real services for the tests, started on temp sockets and loopback only, once
 * per test run, and stopped by the preload's afterAll. test/run.sh installs the
 * Debian packages; a test that finds one missing fails loudly (requireService)
 * instead of skipping quietly.
 */
import { type Subprocess } from 'bun';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface EngineService {
  /** unix:///…/x.sock, for DOCKER_HOST. */
  dockerHost: string;
  socketPath: string;
  dir: string;
}

export interface RegistryService {
  /** 127.0.0.1:PORT */
  address: string;
  username: string;
  password: string;
  dir: string;
}

const running: Array<() => Promise<void>> = [];
const started = new Map<string, Promise<unknown>>();

function which(cmd: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/usr/bin', '/sbin'])) {
    const path = join(dir, cmd);
    if (dir && existsSync(path)) return path;
  }
  return undefined;
}

/** Throws a loud, explicit error naming the missing service (never a silent skip). */
export function requireService(cmd: string, pkg: string): string {
  const path = which(cmd);
  if (!path) throw new Error(`SERVICE MISSING: ${cmd} not found; install Debian's ${pkg} (test/services/install-packages.sh does)`);
  return path;
}

/** Waits for a condition by polling, bounded by a deadline: readiness, not timing. */
export async function waitFor(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await Promise.resolve().then(check).catch(() => false)) return;
    await Bun.sleep(50);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

export async function pingSocket(socketPath: string): Promise<boolean> {
  if (!existsSync(socketPath)) return false;
  const res = await fetch('http://localhost/_ping', { unix: socketPath } as RequestInit);
  return res.ok;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

function once<T>(key: string, start: () => Promise<T>): Promise<T> {
  let p = started.get(key) as Promise<T> | undefined;
  if (!p) {
    p = start();
    started.set(key, p);
  }
  return p;
}

/** Stops the process and removes its folder when the test run ends. */
export function trackProcess(proc: Subprocess, dir: string): void {
  track(proc, dir);
}

/** Runs `stop` when the test run ends (an in-process server). */
export function trackStop(stop: () => Promise<void> | void): void {
  running.push(async () => {
    await stop();
  });
}

/** Starts a service once per test run (until stopAllServices). */
export function onceService<T>(key: string, start: () => Promise<T>): Promise<T> {
  return once(key, start);
}

function track(proc: Subprocess, dir: string): void {
  running.push(async () => {
    proc.kill('SIGTERM');
    const exited = await Promise.race([proc.exited.then(() => true), Bun.sleep(15_000).then(() => false)]);
    if (!exited) proc.kill('SIGKILL');
    await proc.exited;
    rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  });
}

/** A real dockerd on a socket of its own: no iptables, no bridge, vfs storage. */
export function startDockerd(): Promise<EngineService> {
  return once('dockerd', async () => {
    const dockerd = requireService('dockerd', 'docker.io');
    const dir = mkdtempSync(join(tmpdir(), 'cai-dockerd-'));
    const socketPath = join(dir, 'docker.sock');
    const proc = Bun.spawn(
      [
        dockerd,
        `--host=unix://${socketPath}`,
        `--data-root=${join(dir, 'data')}`,
        `--exec-root=${join(dir, 'exec')}`,
        `--pidfile=${join(dir, 'docker.pid')}`,
        '--iptables=false',
        '--ip6tables=false',
        '--bridge=none',
        '--storage-driver=vfs',
      ],
      { stdout: Bun.file(join(dir, 'dockerd.log')), stderr: Bun.file(join(dir, 'dockerd.err.log')) },
    );
    track(proc, dir);
    await waitFor('dockerd to answer /_ping', () => pingSocket(socketPath));
    return { dockerHost: `unix://${socketPath}`, socketPath, dir };
  });
}

/** A real `podman system service` answering the Docker API, at the socket path given (or podman.sock). */
export function startPodman(socketName = 'podman.sock'): Promise<EngineService> {
  return once(`podman:${socketName}`, async () => {
    const podman = requireService('podman', 'podman');
    const dir = mkdtempSync(join(tmpdir(), 'cai-podman-'));
    const socketPath = join(dir, socketName);
    const proc = Bun.spawn(
      [
        podman,
        `--root=${join(dir, 'root')}`,
        `--runroot=${join(dir, 'run')}`,
        '--storage-driver=vfs',
        '--cgroup-manager=cgroupfs',
        '--events-backend=file',
        'system',
        'service',
        '--time=0',
        `unix://${socketPath}`,
      ],
      { stdout: Bun.file(join(dir, 'podman.log')), stderr: Bun.file(join(dir, 'podman.err.log')) },
    );
    track(proc, dir);
    await waitFor('podman to answer /_ping', () => pingSocket(socketPath));
    return { dockerHost: `unix://${socketPath}`, socketPath, dir };
  });
}

/** A real OCI registry (Debian's docker-registry) on 127.0.0.1 with htpasswd auth. */
export function startRegistry(): Promise<RegistryService> {
  return once('registry', async () => {
    const registry = requireService('docker-registry', 'docker-registry');
    const dir = mkdtempSync(join(tmpdir(), 'cai-registry-'));
    const port = await freePort();
    const username = 'ci-bot';
    const password = `pw-${crypto.randomUUID()}`;
    const hash = await Bun.password.hash(password, { algorithm: 'bcrypt', cost: 5 });
    writeFileSync(join(dir, 'htpasswd'), `${username}:${hash}\n`, { mode: 0o600 });
    writeFileSync(
      join(dir, 'config.yml'),
      [
        'version: 0.1',
        'log: { level: warn }',
        `storage: { filesystem: { rootdirectory: ${join(dir, 'data')} }, delete: { enabled: true } }`,
        `http: { addr: "127.0.0.1:${port}" }`,
        `auth: { htpasswd: { realm: containai-test, path: ${join(dir, 'htpasswd')} } }`,
        '',
      ].join('\n'),
    );
    const proc = Bun.spawn([registry, 'serve', join(dir, 'config.yml')], {
      stdout: Bun.file(join(dir, 'registry.log')),
      stderr: Bun.file(join(dir, 'registry.err.log')),
    });
    track(proc, dir);
    const address = `127.0.0.1:${port}`;
    // 401 means it is up and asking for credentials.
    await waitFor('docker-registry to answer /v2/', async () => (await fetch(`http://${address}/v2/`)).status === 401);
    return { address, username, password, dir };
  });
}

export async function stopAllServices(): Promise<void> {
  const stops = running.splice(0);
  started.clear();
  await Promise.all(stops.map((stop) => stop().catch(() => undefined)));
}
