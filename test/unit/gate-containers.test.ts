/**
 * The containers probe against a real dockerd: an image pushed to a real
 * registry (so the engine knows its repo digest, as after `images push`), a
 * static busybox as its whole file system. A container whose command exits,
 * under restart policy "always", is a real crash loop; one that sleeps is a
 * steady service.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'bun:test';
import { copyFileSync, mkdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { connectDocker } from '../../lib/engine/connect.ts';
import { readBadList } from '../../lib/gate/bad.ts';
import { containersProbe } from '../../lib/gate/probes/containers.ts';
import { advanceTrial, type GateDeps } from '../../lib/gate/trial.ts';
import { systemctlShow } from '../../lib/gate/systemctl.ts';
import { createHealthContext } from '../../lib/health/context.ts';
import { engineCheck } from '../../lib/health/engine.ts';
import { profileCheck } from '../../lib/health/profile.ts';
import { pushImage } from '../../lib/images/push.ts';
import { removeDir, tempDir } from '../helpers/cli.ts';
import { makeGateRoot, putOnTrial, type GateRoot } from '../helpers/gate.ts';
import { requireService, startDockerd, startRegistry, waitFor, type EngineService, type RegistryService } from '../helpers/services.ts';

let dockerd: EngineService;
let registry: RegistryService;
let docker: Docker;
let repo: string;
let pinned: string;
const made: string[] = [];

/** Imports a one-file image (busybox, plus a marker so two tags differ) and pushes it; returns its repo digest. */
async function pushBusybox(tag: string): Promise<string> {
  const dir = tempDir('cai-gate-img-');
  made.push(dir);
  mkdirSync(join(dir, 'rootfs'));
  copyFileSync(requireService('busybox', 'busybox-static'), join(dir, 'rootfs', 'busybox'));
  writeFileSync(join(dir, 'rootfs', 'tag'), `${tag}\n`);
  Bun.spawnSync(['chmod', '755', join(dir, 'rootfs', 'busybox')]);
  Bun.spawnSync(['tar', '-cf', join(dir, 'rootfs.tar'), '-C', join(dir, 'rootfs'), '.']);
  const stream = (await docker.importImage(join(dir, 'rootfs.tar'), { repo, tag } as never)) as unknown as NodeJS.ReadableStream;
  await new Promise((resolve, reject) => docker.modem.followProgress(stream, (err: Error | null) => (err ? reject(err) : resolve(null))));
  const pushed = await pushImage(docker, 'crash', `${repo}:${tag}`, { username: registry.username, password: registry.password, serveraddress: registry.address }, () => undefined);
  return pushed.digest;
}

async function run(image: string, cmd: string[], name: string): Promise<Docker.Container> {
  const c = await docker.createContainer({ name, Image: image, Cmd: cmd, HostConfig: { RestartPolicy: { Name: 'always' }, NetworkMode: 'none' } });
  await c.start();
  return c;
}

beforeAll(async () => {
  [dockerd, registry] = await Promise.all([startDockerd(), startRegistry()]);
  docker = await connectDocker({ env: { DOCKER_HOST: dockerd.dockerHost } });
  repo = `${registry.address}/gate/containai-crash`;
  pinned = await pushBusybox('v1');
  await pushBusybox('old');
});

afterEach(async () => {
  for (const c of await docker.listContainers({ all: true })) await docker.getContainer(c.Id).remove({ force: true });
});
afterAll(() => made.forEach(removeDir));

const profile = () => `PROFILE=dev\nIMAGE_PREFIX=containai\nIMAGE_TAG=v1\nREGISTRY=${registry.address}/gate\nIMAGE_DIGEST_CRASH=${pinned}\n`;

async function gateRoot(): Promise<GateRoot> {
  const g = await makeGateRoot({ profile: profile(), probes: { 'containers.json': JSON.stringify({ name: 'containers', kind: 'containers', grace: '1s' }) } });
  made.push(g.root);
  return g;
}

function deps(g: GateRoot, now: () => number): GateDeps {
  return { by: 'test', operatorDir: g.operatorDir, healthChecks: [engineCheck, profileCheck], env: { DOCKER_HOST: dockerd.dockerHost, PATH: process.env.PATH }, now };
}

async function restartCount(c: Docker.Container): Promise<number> {
  return (await c.inspect()).RestartCount;
}

describe('containers probe', () => {
  test('containers running the pinned digest, not restarting, pass the gate at the end of the window', async () => {
    const g = await gateRoot();
    await run(`${repo}@${pinned}`, ['/busybox', 'sleep', '3600'], 'steady');
    let t = Date.now();
    const d = deps(g, () => t);
    await putOnTrial(g, 5_000, d);
    let r = await advanceTrial(g.layout, d);
    expect(r.status).toBe('on-trial');
    expect(r.state?.probes.find((p) => p.name === 'containers')).toMatchObject({ status: 'pass', message: '1 container running the pinned images, none restarting' });
    t += 5_000;
    r = await advanceTrial(g.layout, d);
    expect(r.status).toBe('passed');
    expect(readlinkSync(join(g.root, 'current'))).toBe('releases/v2');
  });

  test('a crash loop under restart policy "always" fails the gate: v1 is current again and v2 is bad', async () => {
    const g = await gateRoot();
    const c = await run(`${repo}@${pinned}`, ['/busybox', 'false'], 'crashloop');
    let t = Date.now();
    const d = deps(g, () => t);
    await putOnTrial(g, 10_000, d);
    let r = await advanceTrial(g.layout, d);
    expect(r.status).toBe('on-trial');
    const first = await restartCount(c);
    // The next round must see the loop go round at least once more: wait for that, not for a time.
    await waitFor('the crash loop to restart the container again', async () => (await restartCount(c)) > first, 30_000);
    t += 2_000;
    r = await advanceTrial(g.layout, d);
    expect(r.status).toBe('failed');
    expect(r.state?.decision).toMatchObject({ outcome: 'fail', probe: 'containers', rolledBackTo: 'v1', complete: true });
    expect(r.state?.decision?.reason).toMatch(/^probe "containers" failed for 2s \(grace 1s\): crashloop (is restarting|restarted \d+ times? during the trial)/);
    expect(readlinkSync(join(g.root, 'current'))).toBe('releases/v1');
    expect((await readBadList(g.layout)).map((b) => b.version)).toEqual(['v2']);
  });

  test("a container of the profile's repository running another digest fails, naming the pinned one", async () => {
    const g = await gateRoot();
    await run(`${repo}:old`, ['/busybox', 'sleep', '3600'], 'stale');
    const ctx = { installRoot: g.root, releaseDir: join(g.root, 'releases', 'v1'), health: createHealthContext({ installRoot: g.root, env: { DOCKER_HOST: dockerd.dockerHost } }), systemctl: systemctlShow, checks: new Map() };
    const probe = { kind: 'containers' as const, name: 'c', source: 'x', timeoutMs: 5_000, graceMs: 0 };
    const outcome = await containersProbe.run(probe, ctx);
    expect(outcome.ok).toBe(false);
    expect(outcome.message).toMatch(new RegExp(`^stale runs image [0-9a-f]{12}, not the pinned ${repo.replace(/[.]/g, '\\.')}@${pinned}$`));
  });

  test('no container at all fails: the probe does not pass on a host where nothing runs', async () => {
    const g = await gateRoot();
    const ctx = { installRoot: g.root, releaseDir: join(g.root, 'releases', 'v1'), health: createHealthContext({ installRoot: g.root, env: { DOCKER_HOST: dockerd.dockerHost } }), systemctl: systemctlShow, checks: new Map() };
    const outcome = await containersProbe.run({ kind: 'containers', name: 'c', source: 'x', timeoutMs: 5_000, graceMs: 0 }, ctx);
    expect(outcome).toEqual({ ok: false, message: "no container runs the profile's images (crash)", observed: {} });
  });
});
