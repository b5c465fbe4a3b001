/**
 * containai-build images, run as CI and developers run it: the compiled binary
 * against a real dockerd and a real registry with htpasswd auth.
 */
import { beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { build, expectNoStack, tempDir, type RunResult } from '../helpers/cli.ts';
import { freePort, startDockerd, startPodman, startRegistry, type EngineService, type RegistryService } from '../helpers/services.ts';

const EXAMPLE = ['base', 'agents', 'copilot', 'codex', 'claude', 'proxy'];
const MANIFEST_TYPES = [
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.index.v1+json',
].join(', ');

// Builds on vfs storage and the services' start-up take seconds each.
setDefaultTimeout(120_000);

let engine: EngineService;
let registry: RegistryService;

beforeAll(async () => {
  [engine, registry] = await Promise.all([startDockerd(), startRegistry()]);
});

async function engineHas(reference: string): Promise<boolean> {
  const res = await fetch(`http://localhost/images/${reference}/json`, { unix: engine.socketPath } as RequestInit);
  return res.ok;
}

function registryFetch(path: string, init: RequestInit = {}): Promise<Response> {
  const basic = Buffer.from(`${registry.username}:${registry.password}`).toString('base64');
  return fetch(`http://${registry.address}${path}`, { ...init, headers: { ...(init.headers as object), authorization: `Basic ${basic}` } });
}

async function catalog(): Promise<string[]> {
  const res = await registryFetch('/v2/_catalog');
  expect(res.status).toBe(200);
  return ((await res.json()) as { repositories: string[] }).repositories;
}

/** A prod profile for the test registry, under a namespace of the test's own so tests do not see each other's pushes. */
function prodProfile(dir: string, registryPath: string, tag = 'v1.2.3'): string {
  const file = join(dir, 'profile.env');
  writeFileSync(file, `PROFILE=prod\nIMAGE_PREFIX=containai\nIMAGE_TAG=${tag}\nREGISTRY=${registryPath}\n`);
  return file;
}

interface TestImage {
  name: string;
  kind?: string;
  from?: string;
  dockerfile: string;
}

/** A small image set of the test's own: each image's context holds its Dockerfile and a file named after it. */
function writeImageSet(dir: string, images: TestImage[]): string {
  for (const image of images) {
    mkdirSync(join(dir, image.name), { recursive: true });
    writeFileSync(join(dir, image.name, 'Dockerfile'), image.dockerfile);
    writeFileSync(join(dir, image.name, `${image.name}.txt`), `${image.name}\n`);
  }
  const file = join(dir, 'images.json');
  const entries = images.map(({ name, kind, from }) => ({ name, kind, from, context: name }));
  writeFileSync(file, JSON.stringify({ images: entries }));
  return file;
}

const scratch = (name: string) => `FROM scratch\nCOPY ${name}.txt /${name}.txt\n`;
/** No default for BASE_IMAGE: this only builds when containai-build passes the parent's reference. */
const child = (name: string) => `ARG BASE_IMAGE\nFROM \${BASE_IMAGE}\nCOPY ${name}.txt /${name}.txt\n`;

function expectSecretAbsent(r: RunResult, secret: string): void {
  for (const text of [r.stdout, r.stderr]) {
    expect(text).not.toContain(secret);
    expect(text).not.toContain(Buffer.from(secret).toString('base64'));
  }
}

/**
 * Reads every process's argv until `done`; returns how many sweeps saw the
 * push running (proof the scan covered it) and any process whose argv held a secret.
 */
async function scanCmdlines(done: () => boolean, secrets: string[]): Promise<{ sweepsDuringPush: number; leaks: string[] }> {
  let sweepsDuringPush = 0;
  const leaks: string[] = [];
  while (!done()) {
    let pushSeen = false;
    for (const pid of readdirSync('/proc')) {
      if (!/^\d+$/.test(pid)) continue;
      let cmdline: string;
      try {
        cmdline = readFileSync(`/proc/${pid}/cmdline`, 'latin1');
      } catch {
        continue; // the process exited between readdir and read
      }
      if (secrets.some((s) => cmdline.includes(s))) leaks.push(`${pid}: ${cmdline.replaceAll('\0', ' ')}`);
      if (cmdline.includes('containai-build\0images\0push\0')) pushSeen = true;
    }
    if (pushSeen) sweepsDuringPush++;
    await new Promise((resolve) => setImmediate(resolve));
  }
  return { sweepsDuringPush, leaks };
}

describe('containai-build images build', () => {
  test('builds the example set on Docker as containai-dev-<name>:devlocal, streaming the build output to stderr', async () => {
    const r = await build(['images', 'build', '--json'], { env: { DOCKER_HOST: engine.dockerHost } });
    expectNoStack(r.stderr);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('Step 2/3 : FROM ${BASE_IMAGE}');
    expect(r.stderr).toContain('Successfully tagged containai-dev-proxy:devlocal');
    const doc = JSON.parse(r.stdout);
    expect(doc.images.map((i: { name: string }) => i.name)).toEqual(EXAMPLE);
    for (const name of EXAMPLE) expect(await engineHas(`containai-dev-${name}:devlocal`)).toBe(true);
    // copilot is built FROM agents FROM base: three layers, one per image.
    const copilot = await fetch('http://localhost/images/containai-dev-copilot:devlocal/json', { unix: engine.socketPath } as RequestInit);
    expect(((await copilot.json()) as { RootFS: { Layers: string[] } }).RootFS.Layers).toHaveLength(3);
  });

  test('--agents codex builds codex, its bases and the proxy, nothing else', async () => {
    const r = await build(['images', 'build', '--agents', 'codex'], { env: { DOCKER_HOST: engine.dockerHost } });
    expect(r.code).toBe(0);
    const built = [...r.stderr.matchAll(/^→ build (\S+) as /gm)].map((m) => m[1]);
    expect(built).toEqual(['base', 'agents', 'codex', 'proxy']);
  });

  test('passes each parent as BASE_IMAGE, and a failing step names the image, the step and the engine message', async () => {
    const dir = tempDir();
    const set = writeImageSet(dir, [
      { name: 'root', dockerfile: scratch('root') },
      { name: 'middle', from: 'root', dockerfile: child('middle') },
      { name: 'broken', kind: 'agent', from: 'middle', dockerfile: 'ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nCOPY not-there.txt /x\n' },
      { name: 'gate', kind: 'proxy', from: 'root', dockerfile: child('gate') },
    ]);
    const r = await build(['images', 'build', '--image-set', set], { env: { DOCKER_HOST: engine.dockerHost } });
    expectNoStack(r.stderr);
    expect(r.code).toBe(1);
    expect(await engineHas('containai-dev-middle:devlocal')).toBe(true);
    const error = r.stderr.split('\n').find((l) => l.startsWith('error: '));
    expect(error).toContain('image "broken" failed to build at step 3/3 (COPY not-there.txt /x)');
    expect(error).toMatch(/not-there\.txt|no such file|not found/i);
    expect(r.stderr).toContain('hint: fix');
  });

  test('an unknown agent is refused before the engine is asked, listing the agents', async () => {
    const r = await build(['images', 'build', '--agents', 'copilot,gemini'], { env: { DOCKER_HOST: 'unix:///nonexistent.sock' } });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('unknown agent "gemini"');
    expect(r.stderr).toContain('copilot, codex, claude');
  });

  test('no engine answering is a clear refusal', async () => {
    const r = await build(['images', 'build'], { env: { DOCKER_HOST: `unix://${tempDir()}/docker.sock` } });
    expectNoStack(r.stderr);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('DOCKER_HOST');
  });
});

describe('containai-build images push', () => {
  test('pushes every image, records the digests the registry serves, stamps them, and no argv ever holds the password', async () => {
    const dir = tempDir();
    const profile = prodProfile(dir, `${registry.address}/team`);
    const out = join(dir, 'dist');
    let finished = false;
    const running = build(['images', 'push', '--out', out, '--stamp-digests', '--file', profile, '--json'], {
      env: { DOCKER_HOST: engine.dockerHost, GHCR_PAT: registry.password, GHCR_USER: registry.username },
    }).finally(() => {
      finished = true;
    });
    const scan = await scanCmdlines(() => finished, [registry.password, Buffer.from(registry.password).toString('base64')]);
    const r = await running;
    expectNoStack(r.stderr);
    expect(r.code).toBe(0);
    expect(scan.sweepsDuringPush).toBeGreaterThan(10);
    expect(scan.leaks).toEqual([]);
    expectSecretAbsent(r, registry.password);

    const record = JSON.parse(readFileSync(join(out, 'v1.2.3', 'images.json'), 'utf8'));
    expect(JSON.parse(r.stdout)).toEqual(record);
    expect(record.version).toBe('v1.2.3');
    expect(record.images.map((i: { name: string }) => i.name)).toEqual(EXAMPLE);
    const stamped = readFileSync(profile, 'utf8');
    for (const image of record.images as { name: string; reference: string; digest: string }[]) {
      expect(image.reference).toBe(`${registry.address}/team/containai-${image.name}:v1.2.3`);
      const res = await registryFetch(`/v2/team/containai-${image.name}/manifests/v1.2.3`, { method: 'HEAD', headers: { accept: MANIFEST_TYPES } });
      expect(res.status).toBe(200);
      expect(res.headers.get('docker-content-digest')).toBe(image.digest);
      expect(stamped).toContain(`IMAGE_DIGEST_${image.name.toUpperCase()}=${image.digest}\n`);
    }
    expect(stamped).toContain('IMAGE_TAG=v1.2.3\n');
    expect(readdirSync(join(out, 'v1.2.3'))).toEqual(['images.json']);
  });

  test('a wrong password fails naming the credentials, and the password appears nowhere', async () => {
    const dir = tempDir();
    const wrong = `wrong-${crypto.randomUUID()}`;
    const r = await build(['images', 'push', '--out', join(dir, 'dist'), '--file', prodProfile(dir, `${registry.address}/wrongpw`)], {
      env: { DOCKER_HOST: engine.dockerHost, GHCR_PAT: wrong, GHCR_USER: registry.username },
    });
    expectNoStack(r.stderr);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/error: push of image "base" to .* failed: .*(unauthorized|authentication)/);
    expect(r.stderr).toContain('hint: the registry refused the credentials');
    expectSecretAbsent(r, wrong);
    expect(existsSync(join(dir, 'dist'))).toBe(false);
    expect((await catalog()).filter((repo) => repo.startsWith('wrongpw/'))).toEqual([]);
  });

  test('a registry that does not answer fails clearly', async () => {
    const dir = tempDir();
    const closed = await freePort();
    const r = await build(['images', 'push', '--out', join(dir, 'dist'), '--file', prodProfile(dir, `127.0.0.1:${closed}/team`)], {
      env: { DOCKER_HOST: engine.dockerHost, GHCR_PAT: registry.password, GHCR_USER: registry.username },
    });
    expectNoStack(r.stderr);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`error: push of image "base" to 127.0.0.1:${closed}/team/containai-base:v1.2.3 failed`);
    expect(r.stderr).toContain(`hint: the registry 127.0.0.1:${closed} did not answer`);
    expectSecretAbsent(r, registry.password);
  });

  test('a set without a proxy refuses before pushing anything', async () => {
    const dir = tempDir();
    const set = writeImageSet(dir, [
      { name: 'base', dockerfile: scratch('base') },
      { name: 'copilot', kind: 'agent', from: 'base', dockerfile: child('copilot') },
    ]);
    const before = await catalog();
    const r = await build(['images', 'push', '--image-set', set, '--out', join(dir, 'dist'), '--file', prodProfile(dir, `${registry.address}/noproxy`)], {
      env: { DOCKER_HOST: engine.dockerHost, GHCR_PAT: registry.password, GHCR_USER: registry.username },
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('no proxy image');
    expect(r.stderr).toContain('refusing to push any image');
    expect(await catalog()).toEqual(before);
    expect(existsSync(join(dir, 'dist'))).toBe(false);
  });

  test('a proxy that fails to build pushes nothing', async () => {
    const dir = tempDir();
    const set = writeImageSet(dir, [
      { name: 'base', dockerfile: scratch('base') },
      { name: 'proxy', kind: 'proxy', from: 'base', dockerfile: 'ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nCOPY missing.txt /\n' },
    ]);
    const r = await build(['images', 'push', '--image-set', set, '--out', join(dir, 'dist'), '--file', prodProfile(dir, `${registry.address}/badproxy`)], {
      env: { DOCKER_HOST: engine.dockerHost, GHCR_PAT: registry.password, GHCR_USER: registry.username },
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('image "proxy" failed to build');
    expect(r.stderr).not.toContain('→ push');
    expect((await catalog()).filter((repo) => repo.startsWith('badproxy/'))).toEqual([]);
  });

  test.each([
    ['a dev profile', 'PROFILE=dev\nIMAGE_PREFIX=containai-dev\nIMAGE_TAG=devlocal\n', 'prod profile'],
    ['a mutable tag', 'PROFILE=prod\nIMAGE_PREFIX=containai\nIMAGE_TAG=latest\nREGISTRY=ghcr.io/acme\n', 'immutable'],
  ])('refuses %s before touching the engine', async (_what, text, says) => {
    const dir = tempDir();
    writeFileSync(join(dir, 'profile.env'), text);
    const r = await build(['images', 'push', '--file', join(dir, 'profile.env'), '--out', join(dir, 'dist')], {
      env: { DOCKER_HOST: 'unix:///nonexistent.sock', GHCR_PAT: registry.password, GHCR_USER: registry.username },
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(says);
    expect(readFileSync(join(dir, 'profile.env'), 'utf8')).toBe(text);
  });

  test('no token in the environment is refused before the engine is asked', async () => {
    const dir = tempDir();
    const r = await build(['images', 'push', '--file', prodProfile(dir, `${registry.address}/team`), '--out', join(dir, 'dist')], {
      env: { DOCKER_HOST: 'unix:///nonexistent.sock' },
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('GHCR_PAT (or GITHUB_TOKEN) is not set');
  });
});

describe('containai-build images on Podman', () => {
  test('build and push both refuse Podman, as check-health does', async () => {
    const podman = await startPodman();
    const dir = tempDir();
    const profile = prodProfile(dir, `${registry.address}/podman`);
    const env = { DOCKER_HOST: podman.dockerHost, GHCR_PAT: registry.password, GHCR_USER: registry.username };
    const before = await catalog();
    for (const args of [['images', 'build'], ['images', 'push', '--file', profile, '--out', join(dir, 'dist')]]) {
      const r = await build(args, { env });
      expectNoStack(r.stderr);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('Podman');
      expect(r.stderr).not.toContain('→ build');
      expectSecretAbsent(r, registry.password);
    }
    expect(await catalog()).toEqual(before);
  });
});
