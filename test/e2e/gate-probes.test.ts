/**
 * The gate's probes that watch services, end to end through compiled
 * binaries (issue 13, "Tests, against real parts"):
 *
 * - containers: a real dockerd and a real registry; the new release's profile
 *   pins (IMAGE_DIGEST_*) a busybox image pushed there, and a container of it
 *   whose command exits, under restart policy always, is a real crash loop;
 * - systemd: this machine runs no systemd, so a TEST build of containai-host
 *   (test/helpers/gate-build.ts) has a stub's path compiled in where every
 *   release build has /usr/bin/systemctl; the production build is shown to
 *   ignore any environment that would point it elsewhere.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'bun:test';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { connectDocker } from '../../lib/engine/connect.ts';
import { pushImage } from '../../lib/images/push.ts';
import { binaryPath, expectNoStack, removeDir, tempDir } from '../helpers/cli.ts';
import { buildWithStubSystemctl, type StubbedHost } from '../helpers/gate-build.ts';
import { badVersions, checkHealthArgs, currentOf, gateJson, type GateHost, gateRelease, install, makeGateHost, probeFile, runAt } from '../helpers/gate-host.ts';
import { requireService, startDockerd, startRegistry, waitFor, type EngineService, type RegistryService } from '../helpers/services.ts';

const made: string[] = [];
afterAll(() => made.forEach(removeDir));

let dockerd: EngineService;
let registry: RegistryService;
let docker: Docker;
let repo: string;
let pinned: string;

/** A one-file image (a static busybox), pushed so the engine knows its repo digest, as after `images push`. */
async function pushBusybox(tag: string): Promise<string> {
  const dir = tempDir('cai-gate-img-');
  made.push(dir);
  mkdirSync(join(dir, 'rootfs'));
  copyFileSync(requireService('busybox', 'busybox-static'), join(dir, 'rootfs', 'busybox'));
  Bun.spawnSync(['chmod', '755', join(dir, 'rootfs', 'busybox')]);
  Bun.spawnSync(['tar', '-cf', join(dir, 'rootfs.tar'), '-C', join(dir, 'rootfs'), '.']);
  const stream = (await docker.importImage(join(dir, 'rootfs.tar'), { repo, tag } as never)) as unknown as NodeJS.ReadableStream;
  await new Promise((resolve, reject) => docker.modem.followProgress(stream, (err: Error | null) => (err ? reject(err) : resolve(null))));
  const pushed = await pushImage(docker, 'agent', `${repo}:${tag}`, { username: registry.username, password: registry.password, serveraddress: registry.address }, () => undefined);
  return pushed.digest;
}

beforeAll(async () => {
  [dockerd, registry] = await Promise.all([startDockerd(), startRegistry()]);
  docker = await connectDocker({ env: { DOCKER_HOST: dockerd.dockerHost } });
  repo = `${registry.address}/gate/containai-agent`;
  pinned = await pushBusybox('v2');
});

afterEach(async () => {
  for (const c of await docker.listContainers({ all: true })) await docker.getContainer(c.Id).remove({ force: true });
});

async function hostWithV1(v2Probes: Record<string, string>, profile?: string): Promise<GateHost> {
  const h = makeGateHost({ DOCKER_HOST: dockerd.dockerHost });
  made.push(h.dir);
  gateRelease(h, 'v1.0.0');
  gateRelease(h, 'v2.0.0', { probes: v2Probes, profile });
  expect((await install(h, 'v1.0.0', ['--no-gate'])).code).toBe(0);
  return h;
}

describe('the containers probe, real dockerd', () => {
  const profile = () => `PROFILE=dev\nIMAGE_PREFIX=containai\nIMAGE_TAG=v2\nREGISTRY=${registry.address}/gate\nIMAGE_DIGEST_AGENT=${pinned}\n`;
  const probes = { 'agents.json': probeFile({ name: 'agents', kind: 'containers', grace: '2s' }) };

  async function runAgent(cmd: string[]): Promise<Docker.Container> {
    const c = await docker.createContainer({ name: `agent-${crypto.randomUUID().slice(0, 8)}`, Image: `${repo}@${pinned}`, Cmd: cmd, HostConfig: { RestartPolicy: { Name: 'always' }, NetworkMode: 'none' } });
    await c.start();
    return c;
  }

  test('a container that crash-loops under the new release fails the gate: v1 is current again', async () => {
    const h = await hostWithV1(probes, profile());
    const agent = await runAgent(['/busybox', 'false']);
    const r = await install(h, 'v2.0.0', ['--gate', '20s', '--wait']);
    expect(r.code).toBe(1);
    expectNoStack(r.stderr);
    expect(r.stderr).toMatch(/error: v2\.0\.0 failed its health gate at \S+Z: probe "agents" failed for \d+s \(grace 2s\): agent-\w+ (is restarting|is exited|restarted \d+ times? during the trial)/);
    expect(currentOf(h)).toBe('v1.0.0');
    expect(badVersions(h)).toEqual(['v2.0.0']);
    expect((await agent.inspect()).RestartCount).toBeGreaterThan(0);
  });

  test('a steady container running the pinned digest passes', async () => {
    const h = await hostWithV1(probes, profile());
    await runAgent(['/busybox', 'sleep', '600']);
    const r = await install(h, 'v2.0.0', ['--gate', '2s', '--wait']);
    expect({ code: r.code, stderr: r.stderr }).toMatchObject({ code: 0 });
    expect(gateJson(h).probes.find((p: { name: string }) => p.name === 'agents')).toMatchObject({ status: 'pass', message: '1 container running the pinned images, none restarting' });
    expect(currentOf(h)).toBe('v2.0.0');
  });
});

describe('the systemd probe, through a test build with a stub systemctl', () => {
  let stub: StubbedHost;
  const probes = { 'unit.json': probeFile({ name: 'proxy unit', kind: 'systemd', unit: 'containai-proxy.service', grace: '1s' }) };
  const show = (restarts: number, active = 'active') => `LoadState=loaded\nActiveState=${active}\nSubState=${active === 'active' ? 'running' : 'failed'}\nNRestarts=${restarts}\n`;

  beforeAll(async () => {
    const dir = tempDir('cai-gate-build-');
    made.push(dir);
    stub = await buildWithStubSystemctl(dir);
  });

  test('a unit restarted during the trial fails the gate (NRestarts grew); the probe asked systemctl show with argv', async () => {
    const h = await hostWithV1(probes);
    writeFileSync(stub.answer, show(4));
    const waiting = install(h, 'v2.0.0', ['--gate', '20s', '--wait'], stub.binary);
    await waitFor('a first round with the baseline', () => gateJson(h)?.probes?.find((p: { name: string }) => p.name === 'proxy unit')?.baseline?.NRestarts === 4);
    writeFileSync(stub.answer, show(6));
    const r = await waiting;
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/error: v2\.0\.0 failed its health gate at \S+Z: probe "proxy unit" failed for \d+s \(grace 1s\): containai-proxy\.service restarted 2 times during the trial \(NRestarts 4 → 6\)/);
    expect(currentOf(h)).toBe('v1.0.0');
    expect(readFileSync(stub.calls, 'utf8').split('\n').filter(Boolean)[0]).toBe('show --property=LoadState,ActiveState,SubState,NRestarts -- containai-proxy.service');
  });

  test('an active unit that does not restart passes', async () => {
    const h = await hostWithV1(probes);
    writeFileSync(stub.answer, show(0));
    const r = await install(h, 'v2.0.0', ['--gate', '2s', '--wait'], stub.binary);
    expect({ code: r.code, stderr: r.stderr }).toMatchObject({ code: 0 });
    expect(gateJson(h).probes.find((p: { name: string }) => p.name === 'proxy unit')).toMatchObject({ status: 'pass', message: 'containai-proxy.service active (running), NRestarts 0' });
  });

  test('the release build runs /usr/bin/systemctl whatever the environment says', async () => {
    const h = await hostWithV1(probes);
    expect((await install(h, 'v2.0.0', ['--gate', '10min'])).code).toBe(0);
    const before = existsSync(stub.calls) ? readFileSync(stub.calls, 'utf8') : '';
    const stubDir = join(stub.systemctl, '..');
    // The environment a hostile caller would try: the define's name, a PATH with the stub first.
    const r = await runAt(binaryPath('containai-host'), checkHealthArgs(h), {
      ...h.env,
      __CONTAINAI_TEST_SYSTEMCTL__: stub.systemctl,
      CONTAINAI_TEST_SYSTEMCTL: stub.systemctl,
      SYSTEMCTL: stub.systemctl,
      PATH: `${stubDir}:${process.env.PATH}`,
    });
    expectNoStack(r.stderr);
    const unit = gateJson(h).probes.find((p: { name: string }) => p.name === 'proxy unit');
    expect(unit.status).toBe('fail');
    expect(unit.message).toContain('/usr/bin/systemctl');
    expect(existsSync(stub.calls) ? readFileSync(stub.calls, 'utf8') : '').toBe(before);
  });
});
