/**
 * Registry load of an install (issue 14), measured from the registries' own
 * access logs against Debian's docker-registry (the test helpers start them):
 *
 * - requests per install (open: manifest + the small layers; payload: one
 *   blob), at most 8 not counting range retries, through token auth
 *   (anonymous), Basic auth (htpasswd) and the pull-through mirror;
 * - resolving a tag that has not moved: one HEAD (a new process also meets
 *   the auth challenge once);
 * - the time and peak RSS of reading a release from the registry, beside
 *   reading the same payload.tar.gz from a file (informative here; the
 *   ≤ 1.1× install-from-registry vs install-from-bundle comparison needs the
 *   install pipeline: stage 2).
 *
 *   bun bench/registry.ts [--mb 100] [--runs 3]
 */
import { availableParallelism } from 'node:os';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { sha256File } from '../lib/digest.ts';
import { publishRelease } from '../lib/oci/publish.ts';
import { parseRegistryReference } from '../lib/oci/reference.ts';
import { registryReleaseSource } from '../lib/oci/release-source.ts';
import { removeDir, tempDir } from '../test/helpers/cli.ts';
import { accessLog, accessSince, startProxyRegistry, startTokenRegistry, type AccessEntry } from '../test/helpers/registry.ts';
import { makeRegistryRelease } from '../test/helpers/registry-release.ts';
import { startRegistry, stopAllServices, waitFor } from '../test/helpers/services.ts';

const { values } = parseArgs({ options: { mb: { type: 'string', default: '100' }, runs: { type: 'string', default: '3' } } });
const MB = Number(values.mb);
const RUNS = Number(values.runs);
const MAX_REQUESTS = 8;

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

async function settle(service: { dir: string }, mark: number, atLeast: number): Promise<AccessEntry[]> {
  await waitFor('the access log', () => accessSince(service, mark).length >= atLeast, 10_000);
  await Bun.sleep(100);
  return accessSince(service, mark);
}

async function install(address: string, repo: string, creds?: { username: string; password: string }): Promise<{ ms: number; peakRss: number; bytes: number }> {
  let peakRss = process.memoryUsage().rss;
  const started = performance.now();
  const source = registryReleaseSource(parseRegistryReference(`oci://${address}/${repo}`), { downloadDir: scratch('cai-bench-dl-'), credentials: creds ? { ...creds, source: 'bench' } : null });
  await source.open();
  let bytes = 0;
  for await (const chunk of source.payload()) {
    bytes += chunk.byteLength;
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
  }
  await source.close();
  return { ms: performance.now() - started, peakRss, bytes };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const mb = (n: number) => `${(n / 1024 / 1024).toFixed(0)} MB`;

try {
  const [basic, token, proxy] = await Promise.all([startRegistry(), startTokenRegistry(), startProxyRegistry()]);
  const release = await makeRegistryRelease({ version: 'v1.0.0', payloadBytes: MB * 1024 * 1024 });
  console.log(`release: payload.tar.gz ${mb(readFileSync(release.payload).byteLength)}, signature material: attestation, sigstore bundle, .sig`);
  for (const [service, creds] of [[basic, basic], [token, token]] as const) {
    await publishRelease({ version: release.version, releaseDir: release.dir, to: parseRegistryReference(`oci://${service.address}/bench/release`, '--to'), channel: 'stable', credentials: { ...creds, source: 'bench' } });
  }

  let failed = false;
  const cases = [
    { name: 'token auth, anonymous', service: token, address: token.address, creds: undefined },
    { name: 'Basic auth (htpasswd)', service: basic, address: basic.address, creds: basic },
    { name: 'pull-through mirror, warm', service: proxy, address: proxy.address, creds: undefined },
  ];
  // Warm the mirror's cache: the first host's pull is the upstream's, and is not what a site's hosts see.
  await install(proxy.address, 'bench/release:stable');
  await Bun.sleep(500);

  for (const c of cases) {
    const times: number[] = [];
    let rss = 0;
    let requests = 0;
    let tokenRequests = 0;
    for (let run = 0; run < RUNS; run++) {
      const mark = accessLog(c.service).length;
      const tokenMark = token.tokenRequests.length;
      const result = await install(c.address, 'bench/release:stable', c.creds);
      times.push(result.ms);
      rss = Math.max(rss, result.peakRss);
      requests = Math.max(requests, counted(await settle(c.service, mark, 7)).length);
      if (c.service === token) tokenRequests = token.tokenRequests.length - tokenMark;
    }
    const ok = requests <= MAX_REQUESTS;
    failed ||= !ok;
    console.log(`${c.name}: ${requests} registry requests per install (target ≤ ${MAX_REQUESTS}: ${ok ? 'met' : 'MISSED'})${c.service === token ? `, plus ${tokenRequests} to the token server` : ''}; median ${median(times).toFixed(0)} ms; peak RSS ${mb(rss)} (target < 200 MB: ${rss < 200 * 1024 * 1024 ? 'met' : 'MISSED'})`);
  }

  for (const c of cases) {
    const source = registryReleaseSource(parseRegistryReference(`oci://${c.address}/bench/release:stable`), { downloadDir: scratch('cai-bench-dl-'), credentials: c.creds ? { ...c.creds, source: 'bench' } : null });
    let mark = accessLog(c.service).length;
    await source.resolve();
    const cold = (await settle(c.service, mark, 1)).map((e) => `${e.method} ${e.status}`);
    mark = accessLog(c.service).length;
    await source.resolve();
    const warm = (await settle(c.service, mark, 1)).map((e) => `${e.method} ${e.status}`);
    const ok = warm.length === 1 && warm[0] === 'HEAD 200' && cold.filter((r) => r !== 'HEAD 401').length === 1;
    failed ||= !ok;
    console.log(`${c.name}: unmoved tag: new process ${cold.join(' + ')}; again ${warm.join(' + ')} (target one HEAD: ${ok ? 'met' : 'MISSED'})`);
  }

  const fileTimes: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    const started = performance.now();
    await sha256File(release.payload);
    fileTimes.push(performance.now() - started);
  }
  console.log(`baseline: sha256 of payload.tar.gz from a file, median ${median(fileTimes).toFixed(0)} ms (the install-time ratio, ≤ 1.1× a bundle install, is measured in stage 2 with the install pipeline)`);
  process.exitCode = failed ? 1 : 0;
} finally {
  await stopAllServices();
  work.forEach(removeDir);
}
