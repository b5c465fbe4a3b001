/**
 * Installing from a registry (issue 14), measured with the compiled binaries
 * against Debian's docker-registry (the test helpers start them):
 *
 * - time: `containai-host install --from oci://…` of a signed release against
 *   `install --bundle` of the same release's bundle file, in the same run,
 *   alternating, each into a fresh install root; target ≤ 1.1× (median);
 * - requests per install, from the registries' own access logs, not counting
 *   range retries: token auth (anonymous), Basic auth (htpasswd) and a warm
 *   pull-through mirror; target ≤ 8;
 * - resolving a tag that has not moved (what the update timer asks first,
 *   RegistryReleaseSource.resolve()): target one HEAD;
 * - peak memory: the install process's max RSS (GNU time); target < 200 MB.
 *
 *   bun bench/registry.ts [--mb 100] [--runs 5]
 *
 * Run `bun scripts/build.ts` first. Exit 1 when a target is missed.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parseRegistryReference } from '../lib/oci/reference.ts';
import { registryReleaseSource } from '../lib/oci/release-source.ts';
import { baseEnv, binaryPath, build, removeDir, tempDir } from '../test/helpers/cli.ts';
import { accessLog, accessSince, startProxyRegistry, startTokenRegistry, type AccessEntry } from '../test/helpers/registry.ts';
import { makeRelease, SMALL_HOST_TREE, writeTree } from '../test/helpers/release.ts';
import { makeKeyPair, writeKeyPair } from '../test/helpers/signing.ts';
import { startRegistry, stopAllServices, waitFor } from '../test/helpers/services.ts';

const { values } = parseArgs({ options: { mb: { type: 'string', default: '100' }, runs: { type: 'string', default: '5' } } });
const MB = Number(values.mb);
const RUNS = Number(values.runs);
const MAX_REQUESTS = 8;
const MAX_RATIO = 1.1;
const MAX_RSS = 200 * 1024 * 1024;

const cpu = (() => {
  try {
    const text = readFileSync('/proc/cpuinfo', 'utf8');
    const flags = /^flags\s*:(.*)$/m.exec(text)?.[1] ?? /^Features\s*:(.*)$/m.exec(text)?.[1] ?? '';
    return { model: /^model name\s*:\s*(.*)$/m.exec(text)?.[1] ?? 'unknown', sha: /\b(sha_ni|sha2)\b/.test(flags) ? 'yes' : 'no' };
  } catch {
    return { model: 'unknown', sha: 'unknown' };
  }
})();
console.log(`machine: ${availableParallelism()} cores, ${cpu.model}, SHA extensions: ${cpu.sha}`);

const work: string[] = [];
const scratch = (p: string) => {
  const d = tempDir(p);
  work.push(d);
  return d;
};

/** Requests that count: every one but the range retries (a 206 for a blob already asked for in this install). */
function counted(log: AccessEntry[]): AccessEntry[] {
  const asked = new Set<string>();
  return log.filter((e) => {
    const retry = e.status === 206 && asked.has(e.path);
    asked.add(e.path);
    return !retry;
  });
}

/** The access log after `mark`, once it stopped growing (the registry writes a line after each answer). */
async function settle(service: { dir: string }, mark: number, atLeast: number): Promise<AccessEntry[]> {
  await waitFor('the access log', () => accessSince(service, mark).length >= atLeast, 10_000);
  let seen = -1;
  while (accessSince(service, mark).length !== seen) {
    seen = accessSince(service, mark).length;
    await Bun.sleep(100);
  }
  return accessSince(service, mark);
}

interface Run {
  ms: number;
  maxRss: number;
  /** The install's own step timings (--json). */
  steps: Record<string, number>;
  /** CPU time, user + system, in ms (all its threads). */
  cpuMs: number;
}

/**
 * The max RSS of a command, from GNU time: Bun's resourceUsage().maxRSS of a child also counts the
 * pages it shared with this (large) process between fork and exec, so it reads ~140 MB for anything.
 */
function timed(argv: string[]): { argv: string[]; maxRss: () => number } {
  const out = join(scratch('cai-bench-time-'), 'rss');
  return { argv: ['/usr/bin/time', '-f', '%M', '-o', out, ...argv], maxRss: () => Number(readFileSync(out, 'utf8').trim().split('\n').at(-1)) * 1024 };
}

/** One compiled `containai-host install` into a fresh root: wall time, CPU time and max RSS. */
async function install(args: string[], env: Record<string, string> = {}): Promise<Run> {
  const root = join(scratch('cai-bench-root-'), 'opt');
  const command = timed([binaryPath('containai-host'), 'install', ...args, '--install-root', root, ...policy, '--json']);
  const started = performance.now();
  const proc = Bun.spawn(command.argv, { env: { ...baseEnv(), ...env }, stdout: 'pipe', stderr: 'pipe' });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  const ms = performance.now() - started;
  if (code !== 0) throw new Error(`install ${args.join(' ')} failed (${code}):\n${stderr}`);
  removeDir(join(root, '..'));
  const steps = Object.fromEntries((JSON.parse(stdout).steps as Array<{ name: string; ms: number }>).map((step) => [step.name, step.ms]));
  // wait4's rusage of time(1) includes the install it waited for.
  const usage = proc.resourceUsage();
  const cpuMs = usage ? (Number(usage.cpuTime.user) + Number(usage.cpuTime.system)) / 1000 : 0;
  return { ms, maxRss: command.maxRss(), steps, cpuMs };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const mb = (n: number) => `${(n / 1024 / 1024).toFixed(0)} MB`;
let policy: string[] = [];

try {
  const [basic, token, proxy] = await Promise.all([startRegistry(), startTokenRegistry(), startProxyRegistry()]);

  // A real release: packaged and signed by the compiled containai-build, MB of incompressible data in it.
  const base = scratch('cai-bench-release-');
  const keys = writeKeyPair(base, 'release', makeKeyPair('ecdsa'));
  mkdirSync(join(base, 'trust'));
  policy = ['--key', keys.pub, '--no-public-good', '--trust-dir', join(base, 'trust'), '--allow-nonroot'];
  const tree = join(base, 'host');
  writeTree(tree, SMALL_HOST_TREE);
  writeFileSync(join(tree, 'data.bin'), randomBytes(MB * 1024 * 1024));
  const release = await makeRelease({ version: 'v1.0.0', out: join(base, 'dist'), hostTree: tree });
  const signed = await build(['sign', '--version', 'v1.0.0', '--out', release.out, '--key', keys.key]);
  if (signed.code !== 0) throw new Error(signed.stderr);
  for (const service of [basic, token]) {
    const r = await build(['publish', '--version', 'v1.0.0', '--to', `oci://${service.address}/bench/release`, '--channel', 'stable', '--out', release.out], { env: { GHCR_PAT: service.password, GHCR_USER: service.username } });
    if (r.code !== 0) throw new Error(r.stderr);
  }
  console.log(`release: payload.tar.gz ${mb(statSync(release.payload).size)}, bundle ${mb(statSync(release.bundle).size)}; signed with a key (SHA256SUMS.sigstore.json, .sig)`);

  const dockerConfig = scratch('cai-bench-docker-');
  writeFileSync(join(dockerConfig, 'config.json'), JSON.stringify({ auths: { [basic.address]: { auth: Buffer.from(`${basic.username}:${basic.password}`).toString('base64') } } }));
  const cases: Array<{ name: string; service: { dir: string }; from: string; env: Record<string, string> }> = [
    { name: 'token auth, anonymous', service: token, from: `oci://${token.address}/bench/release:stable`, env: {} },
    { name: 'Basic auth (htpasswd)', service: basic, from: `oci://${basic.address}/bench/release:stable`, env: { DOCKER_CONFIG: dockerConfig } },
    { name: 'pull-through mirror, warm', service: proxy, from: `oci://${proxy.address}/bench/release:stable`, env: {} },
  ];
  // Warm the mirror: the first host's pull is the upstream's (see docs/registry.md), not what a site's hosts see.
  await install(['--from', cases[2]!.from]);

  let failed = false;
  const verdict = (ok: boolean) => {
    failed ||= !ok;
    return ok ? 'met' : 'MISSED';
  };

  // Time: bundle file and registry alternating, so both meet the same machine load.
  const bundleRuns: Run[] = [];
  const registryRuns: Run[] = [];
  await install(['--bundle', release.bundle, '--version', 'v1.0.0']);
  for (let run = 0; run < RUNS; run++) {
    bundleRuns.push(await install(['--bundle', release.bundle, '--version', 'v1.0.0']));
    registryRuns.push(await install(['--from', cases[0]!.from]));
  }
  const bundleMs = median(bundleRuns.map((r) => r.ms));
  const registryMs = median(registryRuns.map((r) => r.ms));
  const ratio = registryMs / bundleMs;
  console.log(`install time, median of ${RUNS}: bundle file ${bundleMs.toFixed(0)} ms, registry ${registryMs.toFixed(0)} ms: ${ratio.toFixed(2)}× (target ≤ ${MAX_RATIO}×: ${verdict(ratio <= MAX_RATIO)})`);
  const fastest = (runs: Run[]) => Math.min(...runs.map((r) => r.ms));
  console.log(`  fastest of ${RUNS} (least disturbed by other load): bundle file ${fastest(bundleRuns).toFixed(0)} ms, registry ${fastest(registryRuns).toFixed(0)} ms: ${(fastest(registryRuns) / fastest(bundleRuns)).toFixed(2)}×`);
  console.log(`  CPU time (user + system, all threads), median: bundle file ${median(bundleRuns.map((r) => r.cpuMs)).toFixed(0)} ms, registry ${median(registryRuns.map((r) => r.cpuMs)).toFixed(0)} ms, on ${availableParallelism()} cores`);
  const stepNames = Object.keys(registryRuns[0]?.steps ?? {});
  const stepMedian = (runs: Run[], name: string) => median(runs.map((r) => r.steps[name] ?? 0));
  console.log(`  where the time goes (median ms, bundle / registry): ${stepNames.map((n) => `${n} ${stepMedian(bundleRuns, n).toFixed(0)}/${stepMedian(registryRuns, n).toFixed(0)}`).join(', ')}; outside the steps (process start, lock, cleanup) ${(bundleMs - stepNames.reduce((t, n) => t + stepMedian(bundleRuns, n), 0)).toFixed(0)}/${(registryMs - stepNames.reduce((t, n) => t + stepMedian(registryRuns, n), 0)).toFixed(0)}`);
  const rss = Math.max(...registryRuns.map((r) => r.maxRss));
  const idle = timed([binaryPath('containai-host'), '--version']);
  await Bun.spawn(idle.argv, { stdout: 'ignore', stderr: 'ignore' }).exited;
  console.log(`peak RSS: registry install ${mb(rss)} (target < ${mb(MAX_RSS)}: ${verdict(rss < MAX_RSS)}); bundle install ${mb(Math.max(...bundleRuns.map((r) => r.maxRss)))}; the binary doing nothing (--version) ${mb(idle.maxRss())}`);

  for (const c of cases) {
    const mark = accessLog(c.service).length;
    const tokenMark = token.tokenRequests.length;
    const result = await install(['--from', c.from], c.env);
    const requests = counted(await settle(c.service, mark, 6));
    console.log(
      `${c.name}: ${requests.length} registry requests per install (${requests.map((e) => `${e.method} ${e.status}`).join(', ')}; target ≤ ${MAX_REQUESTS}: ${verdict(requests.length <= MAX_REQUESTS)})` +
        `${c.service === token ? `, plus ${token.tokenRequests.length - tokenMark} to the token server` : ''}; ${result.ms.toFixed(0)} ms, max RSS ${mb(result.maxRss)}`,
    );
  }

  for (const c of cases) {
    const credentials = c.service === basic ? { username: basic.username, password: basic.password, source: 'bench' } : null;
    const source = registryReleaseSource(parseRegistryReference(c.from), { downloadDir: scratch('cai-bench-dl-'), credentials });
    let mark = accessLog(c.service).length;
    await source.resolve();
    const cold = (await settle(c.service, mark, 1)).map((e) => `${e.method} ${e.status}`);
    mark = accessLog(c.service).length;
    await source.resolve();
    const warm = (await settle(c.service, mark, 1)).map((e) => `${e.method} ${e.status}`);
    const ok = warm.length === 1 && warm[0] === 'HEAD 200' && cold.filter((r) => r !== 'HEAD 401').length === 1;
    console.log(`${c.name}: unmoved tag: first ask ${cold.join(' + ')} (a new process meets the auth challenge once); then ${warm.join(' + ')} (target one HEAD: ${verdict(ok)})`);
    await source.close();
  }
  process.exitCode = failed ? 1 : 0;
} finally {
  await stopAllServices();
  work.forEach(removeDir);
}
