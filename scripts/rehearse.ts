/**
 * The release rehearsal: every step of .github/workflows/release.yml and then an
 * operator's install, played on this machine against real local services.
 *
 * - CI side, once per release: check out the committed tree, stamp a prod profile,
 *   an SBOM (a stand-in syft on PATH: syft is not installable here), a stand-in
 *   cosign asset, package with SOURCE_DATE_EPOCH (the agents from dist/ or
 *   --agent-dir), one attestation from the test CA (test/helpers/signing.ts) over
 *   SHA256SUMS, payload.tar.gz, containai-host.SHA256SUMS and both agents in place
 *   of GitHub's, repack, verify the bundle and the agents with the host's policy,
 *   push the images through a real dockerd to a real registry (htpasswd auth; the
 *   password only in GHCR_PAT), upload the bundle to a release server on 127.0.0.1
 *   standing in for GitHub Releases.
 * - Operator side: install from that server (CONTAINAI_GITHUB_URL) into a temp
 *   root, status, check-health, a second release, rollback, prune; then a third
 *   release, which leaves the second neither current nor previous, and prune again.
 * - Every artifact is checked by tools other than ours: tar, sha256sum -c, and the
 *   registry's own API.
 *
 * Everything (services, temp folders) is removed at the end, also on failure or
 * Ctrl-C. Exit 0 when every step passed; 1 with the failed step named.
 *
 *   bun scripts/rehearse.ts [--no-build] [--json] [--keep-root DIR] [--agent-dir DIR]
 */
import type { Subprocess } from 'bun';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startReleaseServer, type ReleaseServer } from '../test/helpers/release-server.ts';
import { startDockerd, startRegistry, stopAllServices, type EngineService, type RegistryService } from '../test/helpers/services.ts';
import { releaseStatement } from '../test/helpers/release.ts';
import { makeTestCA, type TestCA } from '../test/helpers/signing.ts';

const REPO_ROOT = resolve(import.meta.dir, '..');
const DIST = join(REPO_ROOT, 'dist');
const REPO = 'acme/containai';
const WORKFLOW = '.github/workflows/release.yml';
const IMAGE_PREFIX = 'containai';
const VERSIONS = ['v1.0.0', 'v2.0.0', 'v3.0.0'] as const;
const AGENTS = ['containai-host-linux-x64', 'containai-host-linux-arm64'] as const;
/** The subjects of the workflow's one attestation. */
const ATTESTED = ['SHA256SUMS', 'payload.tar.gz', 'containai-host.SHA256SUMS', ...AGENTS] as const;
const MANIFEST_TYPES = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

export interface RehearsalOptions {
  /** Build dist/ first, as the workflow does (default true; test/run.sh has built it already). */
  build?: boolean;
  /** Leave the operator's install root at this path (which must not exist) for inspection. */
  keepRoot?: string;
  /**
   * Ship the agents (containai-host-linux-x64 and -arm64) from this folder instead of dist/
   * (as CI does). The test suite ships small stand-ins to stay under a minute: the real ones
   * are 114 MB each, hashed and attested in every release. The operator's steps always run
   * dist/containai-host.
   */
  agentDir?: string;
  /** Where the human-readable lines go (default: stderr). */
  print?: (line: string) => void;
}

export interface StepRecord {
  id: string;
  title: string;
  ms: number;
  ok: boolean;
}

export interface ImageCheck {
  name: string;
  reference: string;
  /** What images.json recorded. */
  digest: string;
  /** Docker-Content-Digest of GET /v2/<repo>/manifests/<tag>. */
  registryDigest: string;
  /** sha256 of the manifest bytes the registry served. */
  manifestSha256: string;
}

export interface ReleaseRecord {
  version: string;
  payloadSha256: string;
  /** SHA256SUMS's digest: what the attestation names and hosts verify. */
  sumsSha256: string;
  bundleSha256: string;
  bundleMembers: string[];
  payloadFiles: number;
  images: ImageCheck[];
}

export interface Links {
  current?: string;
  previous?: string;
}

export interface RehearsalReport {
  ok: boolean;
  /** "<id> <title>" of the step that failed. */
  failedStep?: string;
  error?: string;
  seconds: number;
  sbom: string;
  /** Where the agents each release ships come from. */
  agentDir: string;
  steps: StepRecord[];
  releases: ReleaseRecord[];
  health?: { exitCode: number; checks: Array<{ id: string; status: string; message: string }> };
  links: { afterInstallV2?: Links; afterRollback?: Links; final?: Links };
  pruned: { afterRollback?: string[]; afterV3?: string[] };
  finalReleases?: string[];
  /** Every folder the rehearsal made (services' included); all gone when it returns, except keepRoot. */
  tempDirs: string[];
}

class StepFailure extends Error {}

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

/** The rehearsal's state: one object carried through the steps. */
interface Context {
  work: string;
  root: string;
  trustDir: string;
  emptyTrustDir: string;
  caRoot: string;
  bin: string;
  cosign: string;
  sourceDateEpoch: string;
  ca: TestCA;
  registry: RegistryService;
  engine: EngineService;
  server: ReleaseServer;
}

const sha256File = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

function readLinks(root: string): Links {
  const read = (name: string) => (existsSync(join(root, name)) ? readlinkSync(join(root, name)) : undefined);
  return { current: read('current'), previous: read('previous') };
}

export async function rehearse(options: RehearsalOptions = {}): Promise<RehearsalReport> {
  const print = options.print ?? ((line: string) => process.stderr.write(`${line}\n`));
  const started = performance.now();
  const report: RehearsalReport = {
    ok: false,
    seconds: 0,
    sbom: 'a stand-in syft on PATH for package (syft is not installable here): the same code path as CI, with a fake catalogue',
    agentDir: options.agentDir ? resolve(options.agentDir) : DIST,
    steps: [],
    releases: [],
    links: {},
    pruned: {},
    tempDirs: [],
  };

  // ---- how each step runs, prints and fails
  async function step(id: string, title: string, run: () => Promise<void>): Promise<void> {
    print(`\n[${id}] ${title}`);
    const t = performance.now();
    try {
      await run();
    } catch (err) {
      report.steps.push({ id, title, ms: Math.round(performance.now() - t), ok: false });
      report.failedStep = `${id} ${title}`;
      throw err;
    }
    const ms = Math.round(performance.now() - t);
    report.steps.push({ id, title, ms, ok: true });
    print(`  ok (${ms} ms)`);
  }
  const check = (ok: boolean, what: string) => {
    if (!ok) throw new StepFailure(`check failed: ${what}`);
    print(`  check: ${what}`);
  };
  /** A check an external tool has just made (it exited 0). */
  const checked = (what: string) => check(true, what);
  const parseJson = <T>(r: Ran, what: string): T => {
    try {
      return JSON.parse(r.stdout) as T;
    } catch {
      throw new StepFailure(`${what} did not print one JSON document (stderr: ${r.stderr.trim().split('\n').at(-1) ?? ''})`);
    }
  };
  const baseEnv = (): Record<string, string> => ({
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? '/root',
    TMPDIR: tmpdir(),
    NO_COLOR: '1',
  });
  let child: Subprocess | undefined;
  /** Runs a program with an argument array (never a shell line), prints it and its output. */
  async function exec(argv: string[], o: { cwd?: string; env?: Record<string, string>; quiet?: boolean } = {}): Promise<Ran> {
    const shown = argv.map((a) => a.replace(`${DIST}/`, 'dist/').replace(/^\/.*\/cai-rehearsal-work-[^/]+/, '$WORK'));
    print(`  $ ${shown.join(' ')}`);
    const proc = Bun.spawn(argv, { cwd: o.cwd ?? REPO_ROOT, env: { ...baseEnv(), ...o.env }, stdin: 'ignore', stdout: 'pipe', stderr: 'pipe' });
    child = proc;
    const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]).finally(() => {
      child = undefined;
    });
    if (!o.quiet || code !== 0) for (const line of stderr.trimEnd().split('\n').filter(Boolean)) print(`    | ${line}`);
    return { code, stdout, stderr };
  }
  async function must(argv: string[], o: Parameters<typeof exec>[1] = {}): Promise<Ran> {
    const r = await exec(argv, o);
    if (r.code !== 0) {
      const last = r.stderr.trim().split('\n').filter((l) => l.startsWith('error:')).at(-1) ?? r.stderr.trim().split('\n').at(-1) ?? '';
      throw new StepFailure(`${argv[0]?.split('/').at(-1)} ${argv[1] ?? ''} exited ${r.code}${last ? `: ${last}` : ''}`);
    }
    return r;
  }
  const cb = (args: string[], o?: Parameters<typeof exec>[1]) => must([join(DIST, 'containai-build'), ...args], o);
  const ch = (args: string[], o?: Parameters<typeof exec>[1]) => must([join(DIST, 'containai-host'), ...args], o);
  const tmp = (prefix: string) => {
    const d = mkdtempSync(join(tmpdir(), `cai-rehearsal-${prefix}-`));
    report.tempDirs.push(d);
    return d;
  };

  let ctx: Context | undefined;
  let server: ReleaseServer | undefined;
  // One cleanup, however many ask for it: whoever comes second waits for the first to finish.
  let cleaning: Promise<void> | undefined;
  const cleanup = () =>
    (cleaning ??= (async () => {
      await server?.stop().catch(() => undefined);
      await stopAllServices();
      for (const d of report.tempDirs) rmSync(d, { recursive: true, force: true, maxRetries: 3 });
    })());
  // Ctrl-C reaches the children too; a signal sent to this process alone stops the running child here.
  const onSignal = (signal: NodeJS.Signals) => {
    print(`\n${signal}: stopping the services and removing the temp folders`);
    child?.kill('SIGTERM');
    void cleanup().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    // ---------------------------------------------------------------- setup
    await step('setup 1', options.build === false ? 'binaries: dist/ as built (--no-build)' : 'build containai-build and containai-host (bun scripts/build.ts)', async () => {
      if (options.build !== false) await must([process.execPath, join(REPO_ROOT, 'scripts', 'build.ts')]);
      for (const name of ['containai-build', 'containai-host', ...AGENTS]) check(existsSync(join(DIST, name)), `dist/${name} exists`);
      if (options.keepRoot) check(!existsSync(resolve(options.keepRoot)), `--keep-root ${options.keepRoot} does not exist yet`);
    });

    await step('setup 2', 'start a registry (htpasswd), a dockerd and a release server, on loopback and temp sockets', async () => {
      const [registry, engine] = await Promise.all([startRegistry(), startDockerd()]);
      report.tempDirs.push(registry.dir, engine.dir);
      server = await startReleaseServer();
      const work = tmp('work');
      const ca = makeTestCA();
      const trustDir = join(work, 'trust');
      const emptyTrustDir = join(work, 'trust-empty');
      mkdirSync(trustDir, { mode: 0o755 });
      mkdirSync(emptyTrustDir, { mode: 0o755 });
      const caRoot = join(work, 'test-ca.trusted_root.json');
      writeFileSync(caRoot, JSON.stringify(ca.trustedRoot));
      // The operator pins the test CA as it would pin a root in /etc/containai/trust/.
      writeFileSync(join(trustDir, 'test-ca.json'), JSON.stringify(ca.trustedRoot), { mode: 0o644 });
      // syft cannot be installed here: a stand-in answers `syft scan dir:D -o cyclonedx-json -q` with one component per file.
      const bin = join(work, 'bin');
      mkdirSync(bin);
      writeFileSync(
        join(bin, 'syft'),
        [
          '#!/bin/sh',
          '# Stand-in for syft (rehearsal only): one CycloneDX "file" component per file of dir:D.',
          '[ "$1" = scan ] && [ "$3" = -o ] && [ "$4" = cyclonedx-json ] || { echo "stand-in syft: unexpected arguments: $*" >&2; exit 2; }',
          'dir="${2#dir:}"',
          'printf \'{"bomFormat":"CycloneDX","specVersion":"1.5","version":1,"metadata":{"tools":{"components":[{"type":"application","name":"rehearsal-stand-in-syft"}]}},"components":[\'',
          'cd "$dir" && find . -type f | LC_ALL=C sort | sed \'s|^\\./||\' | awk \'{ printf "%s{\\"type\\":\\"file\\",\\"name\\":\\"%s\\"}", (NR>1?",":""), $0 }\'',
          "printf ']}\\n'",
          '',
        ].join('\n'),
        { mode: 0o755 },
      );
      const cosign = join(work, 'cosign');
      writeFileSync(cosign, '#!/bin/sh\necho "cosign (rehearsal stand-in)"\n', { mode: 0o755 });
      const epoch = await must(['git', 'log', '-1', '--format=%ct'], { quiet: true });
      ctx = {
        work,
        root: options.keepRoot ? resolve(options.keepRoot) : join(work, 'opt-containai'),
        trustDir,
        emptyTrustDir,
        caRoot,
        bin,
        cosign,
        sourceDateEpoch: epoch.stdout.trim(),
        ca,
        registry,
        engine,
        server,
      };
      print(`  work      $WORK = ${work}`);
      print(`  agents    ${AGENTS.join(', ')} from ${report.agentDir}`);
      print(`  registry  http://${registry.address} (user ${registry.username}; the password travels only in GHCR_PAT)`);
      print(`  dockerd   ${engine.dockerHost}`);
      print(`  releases  ${server.url} (CONTAINAI_GITHUB_URL), storage ${server.storageUrl}`);
      print(`  SBOM      ${report.sbom}`);
      print(`  signing   a test CA and fake Rekor (test/helpers/signing.ts) in place of GitHub's attestation`);
    });
    const c = ctx as unknown as Context;
    const hostPolicy = ['--repo', REPO, '--signer-workflow', `${REPO}/${WORKFLOW}`, '--no-public-good', '--trust-dir', c.trustDir];
    const hostEnv = { CONTAINAI_GITHUB_URL: c.server.url };
    const root = c.root;

    // ---------------------------------------------------------------- the workflow, once per release
    async function release(version: string): Promise<void> {
      const id = (n: number) => `${version} ${n}/9`;
      const src = join(c.work, `src-${version}`);
      const out = join(src, 'dist');
      const dir = join(out, version);
      const bundle = join(dir, `containai-${version}.tar.gz`);
      const registryPath = `${c.registry.address}/acme`;
      const record: ReleaseRecord = { version, payloadSha256: '', sumsSha256: '', bundleSha256: '', bundleMembers: [], payloadFiles: 0, images: [] };
      report.releases.push(record);

      await step(id(1), 'checkout: the committed tree (git archive HEAD), as actions/checkout gives the tag', async () => {
        mkdirSync(src);
        const archive = join(c.work, `src-${version}.tar`);
        await must(['git', 'archive', '--format=tar', '-o', archive, 'HEAD'], { quiet: true });
        await must(['tar', '-xf', archive, '-C', src], { quiet: true });
        rmSync(archive);
        check(existsSync(join(src, 'host')) && existsSync(join(src, 'containai-images.json')), 'host/ and containai-images.json checked out');
      });

      await step(id(2), `stamp host/profile.env: prod, ${registryPath}, ${IMAGE_PREFIX}-*:${version}`, async () => {
        await cb(['profile', '--profile', 'prod', '--image-prefix', IMAGE_PREFIX, '--image-tag', version, '--registry', registryPath], { cwd: src });
        const profile = readFileSync(join(src, 'host', 'profile.env'), 'utf8');
        check(profile.includes('PROFILE=prod\n') && profile.includes(`REGISTRY=${registryPath}\n`) && profile.includes(`IMAGE_TAG=${version}\n`), 'profile says prod, the registry and the tag');
      });

      await step(id(3), 'SBOM: syft for package to run (a stand-in on PATH here)', async () => {
        const r = await must([join(c.bin, 'syft'), 'scan', `dir:${join(src, 'host')}`, '-o', 'cyclonedx-json', '-q'], { quiet: true });
        check(JSON.parse(r.stdout).bomFormat === 'CycloneDX', 'the stand-in prints CycloneDX JSON');
      });

      await step(id(4), 'cosign: the asset shipped in the bundle (a stand-in script here: cosign is not installable)', async () => {
        check(existsSync(c.cosign), `${c.cosign} is executable`);
      });

      await step(id(5), `package --version ${version} with SOURCE_DATE_EPOCH=${c.sourceDateEpoch}`, async () => {
        await cb(['package', '--version', version, '--out', out, '--cosign-asset', c.cosign, '--agent-dir', report.agentDir], {
          cwd: src,
          env: { SOURCE_DATE_EPOCH: c.sourceDateEpoch, PATH: `${c.bin}:${baseEnv().PATH}` },
        });
        // The system's tools, not ours: the payload's listing and the hashes.
        const list = (await must(['tar', '-tzf', join(dir, 'payload.tar.gz')], { quiet: true })).stdout.trim().split('\n');
        check(list.every((e) => e === 'payload/' || e.startsWith('payload/')), `tar -tzf payload.tar.gz: ${list.length} entries, all under payload/`);
        check(list.slice(0, 3).join(' ') === 'payload/ payload/SHA256SUMS payload/release.json', 'the manifest first: payload/, payload/SHA256SUMS, payload/release.json');
        for (const f of ['payload/sbom.json', 'payload/host/profile.env']) check(list.includes(f), `payload holds ${f}`);
        check(!list.some((e) => e.startsWith('payload/tools/')), 'no agent inside the payload');
        await must(['sha256sum', '-c', 'payload.sha256'], { cwd: dir, quiet: true });
        checked('sha256sum -c payload.sha256: payload.tar.gz OK');
        await must(['sha256sum', '--strict', '-c', 'containai-host.SHA256SUMS'], { cwd: dir, quiet: true });
        checked(`sha256sum -c containai-host.SHA256SUMS: ${AGENTS.join(', ')} OK`);
        record.payloadSha256 = sha256File(join(dir, 'payload.tar.gz'));
        record.sumsSha256 = sha256File(join(dir, 'SHA256SUMS'));
      });

      const attestation = join(c.work, `${version}.intoto.jsonl`);
      await step(id(6), 'attest SHA256SUMS, payload.tar.gz, containai-host.SHA256SUMS and the agents: the test CA signs one build provenance, as actions/attest-build-provenance would', async () => {
        const subjects = Object.fromEntries(ATTESTED.map((f) => [f, sha256File(join(dir, f))]));
        const doc = c.ca.attest(record.sumsSha256, {
          identity: { repo: REPO, workflowPath: WORKFLOW, ref: `refs/tags/${version}` },
          payload: releaseStatement(subjects),
        });
        writeFileSync(attestation, `${JSON.stringify(doc)}\n`);
        for (const [name, sha] of Object.entries(subjects)) print(`  subject ${name} sha256:${sha}`);
        print(`  signer  https://github.com/${REPO}/${WORKFLOW}@refs/tags/${version}`);
      });

      await step(id(7), 'repack with the attestation; payload.tar.gz must keep its bytes', async () => {
        await cb(['repack', '--version', version, '--out', out, '--attestation', attestation], { cwd: src });
        check(sha256File(join(dir, 'payload.tar.gz')) === record.payloadSha256, 'dist payload.tar.gz unchanged');
        check(readFileSync(join(dir, 'attestation.intoto.jsonl')).equals(readFileSync(attestation)), 'dist attestation.intoto.jsonl is the attestation (uploaded as an asset)');
      });

      await step(`${version} verify`, "containai-build verify --bundle with the host's policy (test CA pinned, no public good)", async () => {
        await cb(
          [
            'verify', '--bundle', bundle, '--repo', REPO, '--signer-workflow', `${REPO}/${WORKFLOW}@refs/tags/${version}`,
            '--trusted-root', c.caRoot, '--no-public-good', '--trust-dir', c.emptyTrustDir,
          ],
          { cwd: src },
        );
        // The agents as an operator checks one before first use: the same attestation, the same policy.
        await cb(
          [
            'verify', '--artifact', join(dir, 'containai-host.SHA256SUMS'), '--attestation', join(dir, 'attestation.intoto.jsonl'),
            '--repo', REPO, '--signer-workflow', `${REPO}/${WORKFLOW}@refs/tags/${version}`, '--trusted-root', c.caRoot, '--no-public-good', '--trust-dir', c.emptyTrustDir,
          ],
          { cwd: src },
        );
        // Independent checks of the bundle as uploaded: tar lists it, tar unpacks it, sha256sum checks it.
        const members = (await must(['tar', '-tzf', bundle], { quiet: true })).stdout.trim().split('\n');
        record.bundleMembers = members;
        check(JSON.stringify(members) === JSON.stringify(['SHA256SUMS', 'attestation.intoto.jsonl', 'payload.sha256', 'payload.tar.gz', 'cosign']), `tar -tzf bundle: ${members.join(', ')}`);
        const x = join(c.work, `unpacked-${version}`);
        mkdirSync(x);
        await must(['tar', '-xzf', bundle, '-C', x], { quiet: true });
        await must(['sha256sum', '-c', 'payload.sha256'], { cwd: x, quiet: true });
        checked('sha256sum -c payload.sha256 in the unpacked bundle: OK');
        await must(['sha256sum', '-c', join(dir, 'payload.sha256')], { cwd: x, quiet: true });
        checked("the bundle's payload.tar.gz matches package's payload.sha256 (repack kept its bytes)");
        await must(['tar', '-xzf', join(x, 'payload.tar.gz'), '-C', x], { quiet: true });
        check(readFileSync(join(x, 'payload', 'SHA256SUMS')).equals(readFileSync(join(x, 'SHA256SUMS'))), "the bundle's SHA256SUMS is the payload's payload/SHA256SUMS");
        const sums = await must(['sha256sum', '--strict', '-c', 'SHA256SUMS'], { cwd: join(x, 'payload'), quiet: true });
        record.payloadFiles = sums.stdout.trim().split('\n').filter((l) => l.endsWith(': OK')).length;
        check(record.payloadFiles > 0, `sha256sum -c SHA256SUMS in the unpacked payload: ${record.payloadFiles} files OK`);
        const sbom = JSON.parse(readFileSync(join(x, 'payload', 'sbom.json'), 'utf8'));
        check(sbom.bomFormat === 'CycloneDX' && JSON.stringify(sbom.metadata).includes('rehearsal-stand-in-syft'), "the payload's sbom.json is the stand-in syft's CycloneDX");
        rmSync(x, { recursive: true, force: true });
        record.bundleSha256 = sha256File(bundle);
      });

      await step(id(8), `images push --version ${version} through dockerd to ${registryPath} (GHCR_PAT/GHCR_USER in the environment only)`, async () => {
        await cb(['images', 'push', '--version', version, '--out', out], {
          cwd: src,
          quiet: true,
          env: { DOCKER_HOST: c.engine.dockerHost, GHCR_PAT: c.registry.password, GHCR_USER: c.registry.username },
        });
        const images = JSON.parse(readFileSync(join(dir, 'images.json'), 'utf8')) as { version: string; images: Array<{ name: string; reference: string; digest: string }> };
        check(images.version === version && images.images.length > 0, `images.json records ${images.images.length} images for ${version}`);
        const basic = Buffer.from(`${c.registry.username}:${c.registry.password}`).toString('base64');
        for (const image of images.images) {
          const repository = `acme/${IMAGE_PREFIX}-${image.name}`;
          const res = await fetch(`http://${c.registry.address}/v2/${repository}/manifests/${version}`, {
            headers: { authorization: `Basic ${basic}`, accept: MANIFEST_TYPES },
          });
          const body = Buffer.from(await res.arrayBuffer());
          const registryDigest = res.headers.get('docker-content-digest') ?? '';
          const manifestSha256 = `sha256:${createHash('sha256').update(body).digest('hex')}`;
          record.images.push({ name: image.name, reference: image.reference, digest: image.digest, registryDigest, manifestSha256 });
          check(
            res.status === 200 && registryDigest === image.digest && manifestSha256 === image.digest,
            `GET /v2/${repository}/manifests/${version}: ${res.status}, Docker-Content-Digest ${registryDigest.slice(0, 19)}… = images.json = sha256 of the manifest`,
          );
        }
      });

      await step(id(9), `upload containai-${version}.tar.gz to the release server (gh release create's stand-in)`, async () => {
        c.server.publish(REPO, version, bundle);
        const res = await fetch(`${c.server.url}/${REPO}/releases/download/${version}/containai-${version}.tar.gz`, { method: 'HEAD', redirect: 'manual' });
        check(res.status === 302, `GET ${REPO}/releases/download/${version}/containai-${version}.tar.gz redirects to storage (302)`);
      });
    }

    // ---------------------------------------------------------------- the operator
    async function install(n: number, version: string): Promise<void> {
      await step(`host ${n}`, `containai-host install --version ${version} --repo ${REPO} from ${c.server.url}`, async () => {
        await ch(['install', '--version', version, '--install-root', root, '--allow-nonroot', ...hostPolicy], { env: hostEnv });
        const links = readLinks(root);
        check(links.current === `releases/${version}`, `current -> ${links.current}`);
        // The installed tree, checked by sha256sum against its own SHA256SUMS.
        await must(['sha256sum', '--strict', '-c', 'SHA256SUMS'], { cwd: join(root, 'current'), quiet: true });
        checked('sha256sum -c SHA256SUMS in current/: every file OK');
        // What the host keeps is the manifest and its signature material, not the bundle (SPEC "The host").
        const installed = JSON.parse(readFileSync(join(root, 'current', '.containai', 'install.json'), 'utf8')) as { manifestSha256?: string; signer?: { workflow?: string } };
        const uploaded = report.releases.find((r) => r.version === version);
        check(installed.manifestSha256 === uploaded?.sumsSha256, '.containai/install.json manifestSha256 = sha256 of the released SHA256SUMS');
        const kept = readdirSync(join(root, 'current', '.containai')).sort();
        check(JSON.stringify(kept) === JSON.stringify(['attestation.intoto.jsonl', 'install.json']), `.containai/: ${kept.join(', ')} (the attestation that verified the manifest; no bundle kept)`);
        const san = `https://github.com/${REPO}/${WORKFLOW}@refs/tags/${version}`;
        check(installed.signer?.workflow === san, `install.json signer: ${san}`);
        check(c.server.requests.some((q) => q.host === 'github' && q.path === `/${REPO}/releases/download/${version}/containai-${version}.tar.gz`), 'downloaded from the release server');
      });
    }
    async function prune(n: number, expected: string[]): Promise<string[]> {
      let removed: string[] = [];
      await step(`host ${n}`, 'containai-host prune --keep 0 (never current, never previous)', async () => {
        const r = await ch(['prune', '--keep', '0', '--install-root', root, '--allow-nonroot', '--json']);
        removed = parseJson<{ removed: string[] }>(r, 'prune --json').removed;
        check(JSON.stringify(removed) === JSON.stringify(expected), `removed: ${removed.length ? removed.join(', ') : '(nothing)'}`);
        for (const d of removed) check(!existsSync(join(root, 'releases', d)), `releases/${d} is gone`);
        const links = readLinks(root);
        for (const l of [links.current, links.previous]) if (l) check(existsSync(join(root, l, 'SHA256SUMS')), `${l} is still there`);
      });
      return removed;
    }

    await release(VERSIONS[0]);
    await install(1, VERSIONS[0]);

    await step('host 2', 'containai-host status', async () => {
      const r = await ch(['status', '--install-root', root, '--json']);
      const status = parseJson<{ current?: string; previous?: string }>(r, 'status --json');
      check(status.current === VERSIONS[0] && !status.previous, `status: current ${status.current}, no previous`);
    });

    await step('host 3', `containai-host check-health (DOCKER_HOST=${c.engine.dockerHost}; not --offline: the registry check asks the rehearsal registry)`, async () => {
      const r = await exec([join(DIST, 'containai-host'), 'check-health', '--install-root', root, '--trust-dir', c.trustDir, '--json'], {
        // The verification stamp stays in the rehearsal's folder, not /var/lib/containai.
        env: { DOCKER_HOST: c.engine.dockerHost, CONTAINAI_STATE_DIR: join(c.work, 'state') },
      });
      const doc = parseJson<{ ok: boolean; checks: Array<{ id: string; status: string; message: string }> }>(r, 'check-health --json');
      report.health = { exitCode: r.code, checks: doc.checks.map(({ id, status, message }) => ({ id, status, message })) };
      const status = (id: string) => doc.checks.find((x) => x.id === id)?.status;
      check(r.code === 0 && doc.ok, `healthy (exit ${r.code})`);
      check(status('release') === 'pass', 'release: the kept attestation verifies SHA256SUMS again under the recorded signer and the pinned test CA, and the tree matches it');
      check(status('registry') === 'pass', `registry: http://${c.registry.address}/v2/ answers`);
      check(status('engine') === 'pass' || status('engine') === 'warn', `engine: ${status('engine')}`);
      // CI pushes the images after packaging, so the payload's profile pins no digest and the images go unchecked.
      if (status('profile') === 'warn') print('  note: profile warns: the workflow pushes images after packaging, so no IMAGE_DIGEST_* is pinned in the payload');
    });

    await release(VERSIONS[1]);
    await install(4, VERSIONS[1]);
    report.links.afterInstallV2 = readLinks(root);

    await step('host 5', 'containai-host rollback', async () => {
      // The policy install took: rollback verifies previous's kept attestation and tree again before it goes live.
      await ch(['rollback', '--install-root', root, '--allow-nonroot', ...hostPolicy]);
      const links = readLinks(root);
      report.links.afterRollback = links;
      check(links.current === `releases/${VERSIONS[0]}` && links.previous === `releases/${VERSIONS[1]}`, `current -> ${links.current}, previous -> ${links.previous}`);
      await must(['sha256sum', '--strict', '-c', 'SHA256SUMS'], { cwd: join(root, 'current'), quiet: true });
      checked(`sha256sum -c SHA256SUMS in current/ (${VERSIONS[0]}): every file OK`);
    });

    report.pruned.afterRollback = await prune(6, []);

    // A third release leaves v2 neither current nor previous: now prune has something to remove.
    await release(VERSIONS[2]);
    await install(7, VERSIONS[2]);
    report.pruned.afterV3 = await prune(8, [VERSIONS[1]]);

    await step('host 9', 'containai-host status', async () => {
      await ch(['status', '--install-root', root]);
      report.links.final = readLinks(root);
      report.finalReleases = readdirSync(join(root, 'releases')).sort();
      check(JSON.stringify(report.finalReleases) === JSON.stringify([VERSIONS[0], VERSIONS[2]]), `releases/: ${report.finalReleases.join(', ')}`);
    });

    report.ok = true;
  } catch (err) {
    report.error = err instanceof Error ? err.message : String(err);
    report.failedStep ??= 'setup';
  } finally {
    await cleanup();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    report.seconds = Math.round((performance.now() - started) / 100) / 10;
  }

  if (report.ok) print(`\nrehearsal passed: ${report.steps.length} steps in ${report.seconds} s; services stopped, temp folders removed${options.keepRoot ? ` (install root kept at ${options.keepRoot})` : ''}`);
  else print(`\nrehearsal FAILED at step "${report.failedStep}": ${report.error}\nservices stopped, temp folders removed`);
  return report;
}

function usage(): never {
  process.stderr.write('usage: bun scripts/rehearse.ts [--no-build] [--json] [--keep-root DIR] [--agent-dir DIR]\n');
  process.exit(2);
}

if (import.meta.main) {
  const argv = process.argv.slice(2);
  const options: RehearsalOptions = {};
  let json = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--no-build') options.build = false;
    else if (a === '--json') json = true;
    else if (a === '--keep-root' && argv[i + 1]) options.keepRoot = argv[++i];
    else if (a === '--agent-dir' && argv[i + 1]) options.agentDir = argv[++i];
    else usage();
  }
  const report = await rehearse(options);
  if (json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  process.exit(report.ok ? 0 : 1);
}
