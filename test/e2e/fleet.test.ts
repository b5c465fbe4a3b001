/**
 * A simulated fleet (issue 16): 50 hosts, each the compiled containai-host
 * with its own install root, CONTAINAI_STATE_DIR and machine id, run as
 * separate processes 40 at a time, following one channel through a real
 * pull-through mirror in front of a real token registry. The scenario and
 * its phases are test/helpers/fleet-scenario.ts (bench/fleet.ts runs it with
 * 200 hosts); here every property the issue asks for is checked:
 *
 *   ramp      at 10% and 50% the hosts that install are exactly those whose
 *             sha256(machine-id + version) falls under the share, their number
 *             lies within the binomial 99.9% bounds, the same hosts on every
 *             run, and 50% only adds hosts
 *   halt      0 new installs on the next poll of every host
 *   expiry    0 installs, and check-health reports the channel stale everywhere
 *   replay    an older statement served again is refused by every host
 *   bad       every host that took a release whose probe fails rolls itself
 *             back, marks it bad, and does not take it again at 100%
 *   load      a poll with nothing new is one request per host; what the
 *             mirror asked upstream for each blob
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { removeDir, tempDir } from '../helpers/cli.ts';
import { binomialBounds, runFleetScenario, type FleetScenario } from '../helpers/fleet-scenario.ts';

const HOSTS = 50;
let work: string;
let s: FleetScenario;

beforeAll(async () => {
  work = tempDir('cai-fleet-');
  const started = performance.now();
  s = await runFleetScenario({ work, hosts: HOSTS, concurrency: 40, bad100: 'takers', log: (line) => console.log(line) });
  console.log(`fleet of ${HOSTS}: ${((performance.now() - started) / 1000).toFixed(1)} s`);
}, 300_000);
afterAll(() => removeDir(work));

const sorted = (xs: readonly number[] = []) => [...xs].sort((a, b) => a - b);
const all = () => s.hosts.map((h) => h.index);

describe(`a fleet of ${HOSTS} hosts`, () => {
  test('every host installs the first release, and no run fails', () => {
    expect(s.phases.base!.failures).toEqual([]);
    expect(s.phases.base!.installs).toBe(HOSTS);
    expect(sorted(s.onVersion.base!['v1.0.0'])).toEqual(all());
  });

  test('ramp: at 10% exactly the hosts the formula puts under 10% install, within the binomial 99.9% bounds; the same hosts on every run', () => {
    const bounds = binomialBounds(HOSTS, 0.1);
    const took = sorted(s.onVersion.ramp10!['v2.0.0']);
    expect(took).toEqual(sorted(s.expected.v2at10));
    expect(took.length).toBeGreaterThanOrEqual(bounds.lo);
    expect(took.length).toBeLessThanOrEqual(bounds.hi);
    expect(s.phases.ramp10!.installs).toBe(took.length);
    expect(s.phases.ramp10!.decisions.install ?? 0).toBe(took.length);
    expect(s.phases.ramp10!.decisions.wait).toBe(HOSTS - took.length);
    // Polled again, and under a new statement of the same ramp: no host more, none fewer.
    for (const phase of ['unchanged', 'again10']) {
      expect(s.phases[phase]!.installs).toBe(0);
      expect(sorted(s.onVersion[phase]!['v2.0.0'])).toEqual(took);
      expect(s.phases[phase]!.failures).toEqual([]);
    }
  });

  test('ramp: 50% adds hosts and removes none, within the bounds', () => {
    const bounds = binomialBounds(HOSTS, 0.5);
    const at10 = new Set(s.onVersion.ramp10!['v2.0.0']);
    const at50 = sorted(s.onVersion.ramp50!['v2.0.0']);
    expect(at50).toEqual(sorted(s.expected.v2at50));
    for (const h of at10) expect(at50).toContain(h);
    expect(at50.length).toBeGreaterThan(at10.size);
    expect(at50.length).toBeGreaterThanOrEqual(bounds.lo);
    expect(at50.length).toBeLessThanOrEqual(bounds.hi);
    expect(s.phases.ramp50!.installs).toBe(at50.length - at10.size);
  });

  test('halt: 0 new installs on the next poll of every host', () => {
    const halt = s.phases.halt!;
    expect(halt.installs).toBe(0);
    expect(halt.failures).toEqual([]);
    expect(halt.decisions).toEqual({ halted: HOSTS - s.onVersion.ramp50!['v2.0.0']!.length, current: s.onVersion.ramp50!['v2.0.0']!.length });
    expect(s.onVersion.halt).toEqual(s.onVersion.ramp50!);
  });

  test('expiry: 0 installs, and check-health reports the channel stale on every host', () => {
    const expired = s.phases.expired!;
    expect(expired.installs).toBe(0);
    expect(Object.keys(expired.decisions).sort()).toEqual(['current', 'expired']);
    expect(s.onVersion.expired).toEqual(s.onVersion.ramp50!);
    expect(s.staleHealth).toHaveLength(HOSTS);
    for (const h of s.staleHealth) expect(h, `host ${h.host}`).toEqual({ host: h.host, status: 'warn', stale: ['stable'] });
  });

  test('replay: the older statement served again is refused by every host, and nothing changes', () => {
    const replay = s.phases.replay!;
    expect(replay.decisions).toEqual({ refused: HOSTS });
    expect(replay.failures).toHaveLength(HOSTS);
    for (const f of replay.failures) expect(f.stderr).toContain('a replayed or rolled-back statement is refused');
    expect(replay.installs).toBe(0);
    expect(s.onVersion.replay).toEqual(s.onVersion.ramp50!);
  });

  test('bad release: every host that took it rolls itself back and marks it bad; none takes it again, even at 100%', () => {
    const takers = sorted(s.badTakers.map((t) => t.host));
    expect(takers).toEqual(sorted(s.expected.v3at20));
    expect(takers.length).toBeGreaterThan(0);
    const before = s.onVersion.replay!;
    for (const t of s.badTakers) {
      const had = Object.entries(before).find(([, hs]) => hs.includes(t.host))?.[0];
      expect(t.current, `host ${t.host}`).toBe(had);
      expect(t.bad).toEqual(['v3.0.0']);
      expect(t.reason).toContain('probe "the service answers" failed');
      expect(t.rounds).toBeLessThanOrEqual(2);
    }
    // On every later poll (those that decided their trials, and at 100%) no taker installs it again.
    const later = Object.values(s.phases).filter((p) => p.name.startsWith('bad-round') || p.name === 'bad100');
    expect(later.length).toBeGreaterThanOrEqual(2);
    for (const phase of later) {
      const runs = phase.runs.filter((r) => takers.includes(r.host.index));
      for (const r of runs) expect(r.json?.decision, `host ${r.host.index} in ${phase.name}`).not.toBe('install');
    }
    for (const t of takers) expect(s.onVersion.bad100!['v3.0.0'] ?? []).not.toContain(t);
    for (const r of s.phases.bad100!.runs.filter((x) => takers.includes(x.host.index))) {
      expect(r.json, `host ${r.host.index}`).toMatchObject({ decision: 'skip', reason: expect.stringContaining('v3.0.0 failed its health gate') });
    }
    // At 100% only the takers polled here (bench/fleet.ts polls every host: the others take it).
    expect(s.phases.bad100!.decisions).toEqual({ skip: takers.length });
  });

  test('load: a poll with nothing new is one request per host; a blob goes upstream only in the phase that first asks for it', () => {
    const unchanged = s.phases.unchanged!;
    expect(unchanged.requestsPerHost).toEqual({ min: 1, max: 1, mean: 1 });
    expect(unchanged.mirror).toMatchObject({ requests: HOSTS, manifestHeads: HOSTS, blobGets: 0 });
    expect(unchanged.upstream.blobGets).toBe(0);
    // Per blob: every upstream GET of it falls in one phase; once the mirror has stored it, no host's
    // request reaches upstream again, however many hosts come later.
    const phasesOf = new Map<string, string[]>();
    const totals = new Map<string, number>();
    for (const phase of Object.values(s.phases)) {
      for (const [blob, n] of phase.upstream.perBlob) {
        phasesOf.set(blob, [...(phasesOf.get(blob) ?? []), phase.name]);
        totals.set(blob, (totals.get(blob) ?? 0) + n);
      }
    }
    for (const [blob, phases] of phasesOf) expect(phases, blob).toHaveLength(1);
    const payload = (v: string) => s.releases[v]!.blobs;
    for (const v of ['v1.0.0', 'v2.0.0', 'v3.0.0']) for (const blob of payload(v)) if (totals.has(blob)) expect(phasesOf.get(blob)).toHaveLength(1);
    console.log(`upstream GETs per blob (distribution 2.8's proxy fetches a missing blob twice, plus once for each request that comes while it fetches): ${JSON.stringify([...totals.values()].sort((a, b) => b - a))}`);
  });
});
