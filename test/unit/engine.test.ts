/** lib/engine against real engines: Docker is Docker, Podman is Podman wherever its socket lives or whatever it is called. */
import { afterAll, describe, expect, test } from 'bun:test';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connectDocker, engineApi, resolveEndpoint } from '../../lib/engine/connect.ts';
import { assertDockerEngine, fingerprintVersion, identifyEngine, inspectDockerCommand } from '../../lib/engine/identify.ts';
import { ContainaiError } from '../../lib/errors.ts';
import { removeDir, tempDir } from '../helpers/cli.ts';
import { requireService, startDockerd, startPodman } from '../helpers/services.ts';

const dirs: string[] = [];
afterAll(() => dirs.forEach(removeDir));

/** A PATH holding only what we put there: the host's own docker/podman must not decide these tests. */
function pathWith(links: Record<string, string>, scripts: Record<string, string> = {}): string {
  const dir = tempDir('cai-path-');
  dirs.push(dir);
  for (const [name, target] of Object.entries(links)) symlinkSync(target, join(dir, name));
  for (const [name, text] of Object.entries(scripts)) writeFileSync(join(dir, name), text, { mode: 0o755 });
  return dir;
}

describe('resolveEndpoint', () => {
  test('defaults to /var/run/docker.sock', () => {
    expect(resolveEndpoint({})).toMatchObject({ kind: 'unix', socketPath: '/var/run/docker.sock', fromEnv: false });
  });
  test('reads unix:// and tcp://', () => {
    expect(resolveEndpoint({ DOCKER_HOST: 'unix:///tmp/x.sock' })).toMatchObject({ kind: 'unix', socketPath: '/tmp/x.sock', fromEnv: true });
    expect(resolveEndpoint({ DOCKER_HOST: 'tcp://10.0.0.5' })).toMatchObject({ kind: 'tcp', host: '10.0.0.5', port: 2375, tls: false });
    expect(resolveEndpoint({ DOCKER_HOST: 'tcp://10.0.0.5', DOCKER_TLS_VERIFY: '1' })).toMatchObject({ port: 2376, tls: true });
  });
  test('refuses other schemes and relative sockets', () => {
    expect(() => resolveEndpoint({ DOCKER_HOST: 'ssh://me@host' })).toThrow(/scheme/);
    expect(() => resolveEndpoint({ DOCKER_HOST: 'unix://x.sock' })).toThrow(/absolute/);
  });
});

describe('fingerprintVersion', () => {
  test('a Podman Engine component or Libpod server header is Podman', () => {
    expect(fingerprintVersion({ Components: [{ Name: 'Podman Engine', Version: '4.3.1' }] }).kind).toBe('podman');
    expect(fingerprintVersion({ Version: '4.3.1' }, { server: 'Libpod/4.3.1 (linux)' }).kind).toBe('podman');
    expect(fingerprintVersion({ Platform: { Name: 'Podman Engine' } }).kind).toBe('podman');
  });
  test('Docker Engine is Docker', () => {
    const f = fingerprintVersion({ Platform: { Name: 'Docker Engine - Community' }, Components: [{ Name: 'Engine', Version: '27.0.1' }], Version: '27.0.1', ApiVersion: '1.46' });
    expect(f).toMatchObject({ kind: 'docker', version: '27.0.1', apiVersion: '1.46', evidence: [] });
  });
});

describe('inspectDockerCommand', () => {
  test('a link to podman, a podman-docker shim, and a podman binary named docker are Podman', async () => {
    const podman = requireService('podman', 'podman');
    expect((await inspectDockerCommand(pathWith({ docker: podman })))?.isPodman).toBe(true);
    const shim = pathWith({}, { docker: '#!/bin/sh\n[ -e /etc/containers/nodocker ] || echo "Emulate Docker CLI using podman." >&2\nexec /usr/bin/podman "$@"\n' });
    expect(await inspectDockerCommand(shim)).toMatchObject({ isPodman: true, reason: expect.stringContaining('shim') });
    // A copy (not a link) still says who it is.
    const copyDir = pathWith({});
    writeFileSync(join(copyDir, 'docker'), await Bun.file(podman).bytes(), { mode: 0o755 });
    expect(await inspectDockerCommand(copyDir)).toMatchObject({ isPodman: true, reason: expect.stringContaining('Podman') });
  });
  test('the real docker CLI is not Podman; no docker at all is undefined', async () => {
    const docker = requireService('docker', 'docker.io');
    expect((await inspectDockerCommand(pathWith({ docker })))?.isPodman).toBe(false);
    expect(await inspectDockerCommand(pathWith({}))).toBeUndefined();
  });
});

describe('identifyEngine against real engines', () => {
  test('a real dockerd is Docker, and podman beside it is only noted', async () => {
    const dockerd = await startDockerd();
    const docker = requireService('docker', 'docker.io');
    const clean = await identifyEngine({ env: { DOCKER_HOST: dockerd.dockerHost, PATH: pathWith({ docker }) } });
    expect(clean).toMatchObject({ kind: 'docker', evidence: [], podmanBeside: undefined });
    expect(clean.apiVersion).toMatch(/^1\.\d+$/);
    const beside = await identifyEngine({ env: { DOCKER_HOST: dockerd.dockerHost, PATH: pathWith({ docker, podman: requireService('podman', 'podman') }) } });
    expect(beside.kind).toBe('docker');
    expect(beside.podmanBeside).toContain('podman');
  });

  test('a podman service at a neutral path is Podman by fingerprint', async () => {
    const podman = await startPodman('engine.sock');
    // The helper's folder is named cai-podman-*: reach the socket through a link whose path says nothing.
    const neutral = join(pathWith({}), 'engine.sock');
    symlinkSync(podman.socketPath, neutral);
    const identity = await identifyEngine({ env: { DOCKER_HOST: `unix://${neutral}`, PATH: pathWith({}) } });
    expect(identity.kind).toBe('podman');
    expect(identity.evidence.join(' ')).toContain('Podman Engine');
    expect(identity.evidence.join(' ')).not.toContain('DOCKER_HOST');
  });

  test('assertDockerEngine with a dockerode client refuses Podman and accepts Docker', async () => {
    const podman = await startPodman('engine.sock');
    const dockerd = await startDockerd();
    const onPodman = await connectDocker({ env: { DOCKER_HOST: podman.dockerHost } });
    const err = await assertDockerEngine({ client: onPodman, env: { DOCKER_HOST: podman.dockerHost, PATH: '' } }).catch((e) => e);
    expect(err).toBeInstanceOf(ContainaiError);
    expect(err.code).toBe('ENGINE');
    expect(err.message).toContain('Podman');
    const onDocker = await connectDocker({ env: { DOCKER_HOST: dockerd.dockerHost } });
    expect((await assertDockerEngine({ client: onDocker, env: { DOCKER_HOST: dockerd.dockerHost, PATH: '' } })).kind).toBe('docker');
  });

  test('a dead socket fails with the DOCKER_HOST fix; no engine at all names the Docker service', async () => {
    const dir = tempDir();
    dirs.push(dir);
    mkdirSync(join(dir, 'sub'));
    writeFileSync(join(dir, 'sub', 'dead.sock'), '');
    const dead = await identifyEngine({ env: { DOCKER_HOST: `unix://${join(dir, 'sub', 'dead.sock')}`, PATH: '' } }).catch((e) => e);
    expect(dead).toBeInstanceOf(ContainaiError);
    expect(dead.hint).toContain('DOCKER_HOST points at a socket nobody answers');
    const none = await identifyEngine({ endpoint: { kind: 'unix', socketPath: join(dir, 'none.sock'), label: 'unix:///var/run/docker.sock', fromEnv: false }, env: { PATH: '' } }).catch((e) => e);
    expect(none.hint).toContain('start the Docker service');
  });

  test('engineApi returns 404 as a status, not an error', async () => {
    const dockerd = await startDockerd();
    const api = engineApi({ env: { DOCKER_HOST: dockerd.dockerHost } });
    expect((await api.get('/images/no-such-image:v1/json')).status).toBe(404);
  });
});
