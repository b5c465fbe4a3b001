/**
 * containai-build rollout and containai-host update, one host at a time, as
 * a user runs them (the compiled binaries), against the real token registry
 * behind the real pull-through mirror: how the statement travels (a rollout
 * manifest on the channel tag, subject = the release, one layer = the signed
 * statement), the keyless two-step flow, what a host does with a statement,
 * and every refusal. The fleet-wide properties (shares against their bounds,
 * halt, expiry, replay and a bad release across many hosts, the load) are in
 * test/e2e/fleet.test.ts.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { existsSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { RegistryClient } from '../../lib/oci/client.ts';
import { parseRegistryReference } from '../../lib/oci/reference.ts';
import { putManifest } from '../../lib/oci/registry.ts';
import { MEDIA_TYPE_IMAGE_MANIFEST } from '../../lib/oci/types.ts';
import { ROLLOUT_PREDICATE_TYPE, statementBytes, type RolloutPredicate } from '../../lib/rollout/statement.ts';
import { build, expectNoStack, removeDir, tempDir } from '../helpers/cli.ts';
import {
  accessLog,
  countLoad,
  fleetKeys,
  fleetRegistry,
  healthArgs,
  hoursAgo,
  makeHosts,
  onEveryHost,
  publishRelease,
  rollout,
  updateArgs,
  type FleetHost,
  type FleetKeys,
  type FleetRegistry,
  type HostRun,
} from '../helpers/fleet.ts';
import { settleLog } from '../helpers/registry.ts';
import { requireService } from '../helpers/services.ts';
import { makeKeyPair, makeTestCA, writeKeyPair } from '../helpers/signing.ts';

let work: string;
let reg: FleetRegistry;
let keys: FleetKeys;
let hosts: FleetHost[];
let next = 0;
const host = () => hosts[next++] as FleetHost;

beforeAll(async () => {
  work = tempDir('cai-rollout-');
  reg = await fleetRegistry('rollout');
  keys = fleetKeys(join(work, 'keys'));
  for (const version of ['v1.0.0', 'v1.1.0']) await publishRelease(reg, keys, join(work, 'dist'), version);
  hosts = makeHosts(join(work, 'hosts'), 12);
}, 120_000);
afterAll(() => removeDir(work));

/** A manifest as the mirror serves it to hosts (no auth: the site mirror is open to them). */
async function manifest(ref: string): Promise<{ digest: string; doc: Record<string, any> }> {
  const r = await fetch(`http://${reg.mirror.address}/v2/${reg.repository}/manifests/${ref}`, { headers: { accept: MEDIA_TYPE_IMAGE_MANIFEST } });
  if (r.status !== 200) throw new Error(`${ref}: ${r.status}`);
  return { digest: r.headers.get('docker-content-digest') as string, doc: (await r.json()) as Record<string, any> };
}

/** A client that pushes to the upstream registry as an operator with write access (to stage replays). */
function pusher(): RegistryClient {
  return new RegistryClient(parseRegistryReference(reg.upstreamTo), { credentials: { username: reg.mirror.upstream.username, password: reg.mirror.upstream.password, source: 'test' }, actions: 'pull,push' });
}

async function update(h: FleetHost, extra: string[] = [], k: FleetKeys = keys, channel = 'stable'): Promise<HostRun> {
  const args = updateArgs(reg, k, h, ['--no-gate', ...extra]).map((a, i, all) => (all[i - 1] === '--channel' ? channel : a));
  const [r] = await onEveryHost([h], () => args);
  expectNoStack(r!.stderr);
  return r!;
}

function current(h: FleetHost): string | undefined {
  return existsSync(join(h.root, 'current')) ? readlinkSync(join(h.root, 'current')) : undefined;
}

function events(h: FleetHost): Array<Record<string, any>> {
  const path = join(h.root, 'state', 'events.jsonl');
  return existsSync(path) ? readFileSync(path, 'utf8').trim().split('\n').map((l) => JSON.parse(l)) : [];
}

describe('containai-build rollout', () => {
  test('moves the channel tag to a rollout manifest: subject = the release, one layer = the signed statement; <channel>.rollout names it too', async () => {
    const r = await rollout(reg, keys, ['--version', 'v1.0.0', '--channel', 'stable', '--ramp', '100%@0h']);
    expect(r.code, r.stderr).toBe(0);
    expectNoStack(r.stderr);
    const doc = JSON.parse(r.stdout);
    expect(doc).toMatchObject({ ok: true, sequence: 1, tags: ['stable.rollout', 'stable'], predicate: { version: 'v1.0.0', channel: 'stable', sequence: 1, halt: false, ramp: [{ after: 0, percent: 100 }] } });
    const release = await manifest('v1.0.0');
    const stable = await manifest('stable');
    expect(stable.digest).toBe(doc.digest);
    expect((await manifest('stable.rollout')).digest).toBe(doc.digest);
    expect(stable.doc).toMatchObject({
      artifactType: 'application/vnd.containai.rollout.v1+json',
      subject: { digest: release.digest, mediaType: MEDIA_TYPE_IMAGE_MANIFEST },
      layers: [{ mediaType: 'application/vnd.dev.sigstore.bundle.v0.3+json', annotations: { 'org.opencontainers.image.title': 'rollout.sigstore.json' } }],
      annotations: { 'org.opencontainers.image.version': 'v1.0.0', 'dev.containai.rollout.sequence': '1' },
    });
    // A client no one here wrote reads it too.
    // Spawned, not spawnSync: the mirror asks the token server, which answers from this process.
    const skopeo = Bun.spawn([requireService('skopeo', 'skopeo'), 'inspect', '--raw', '--tls-verify=false', `docker://${reg.mirror.address}/${reg.repository}:stable`], { stdout: 'pipe', stderr: 'pipe' });
    const [raw, code] = await Promise.all([new Response(skopeo.stdout).text(), skopeo.exited]);
    expect(code).toBe(0);
    expect(JSON.parse(raw).subject.digest).toBe(release.digest);
    // The next statement takes the next sequence.
    const again = await rollout(reg, keys, ['--version', 'v1.0.0', '--channel', 'stable', '--ramp', '100%@0h']);
    expect(JSON.parse(again.stdout).sequence).toBe(2);
  });

  test('the sequence follows <channel>.rollout even after publish --channel moved the channel to a release', async () => {
    const moved = await build(['publish', '--version', 'v1.0.0', '--to', reg.upstreamTo, '--channel', 'direct', '--out', join(work, 'dist')], { env: reg.pushEnv });
    expect(moved.code, moved.stderr).toBe(0);
    const first = JSON.parse((await rollout(reg, keys, ['--version', 'v1.0.0', '--channel', 'direct', '--ramp', '100%@0h'])).stdout);
    const again = await build(['publish', '--version', 'v1.0.0', '--to', reg.upstreamTo, '--channel', 'direct', '--out', join(work, 'dist')], { env: reg.pushEnv });
    expect(again.code).toBe(0);
    expect((await manifest('direct')).doc.artifactType).toBe('application/vnd.containai.release.v1+json');
    const second = JSON.parse((await rollout(reg, keys, ['--version', 'v1.0.0', '--channel', 'direct', '--halt'])).stdout);
    expect(second.sequence).toBe(first.sequence + 1);
    // A halt of the same release keeps the ramp it stops, for the record.
    expect(second.predicate).toMatchObject({ halt: true, ramp: [{ after: 0, percent: 100 }] });
  });

  test('refuses bad flags (exit 2) and an unpublished version (exit 1), and pushes nothing', async () => {
    const before = (await manifest('stable')).digest;
    const base = ['--channel', 'stable'];
    for (const [args, code, says] of [
      [['--version', 'v1.0.0', ...base], 2, 'give --ramp'],
      [['--version', 'v1.0.0', ...base, '--ramp', '10%@0h', '--halt'], 2, 'not both'],
      [['--version', 'v1.0.0', ...base, '--ramp', '10%@6h,5%@7h'], 2, 'never goes down'],
      [['--version', 'v1.0.0', ...base, '--ramp', '10%@0h', '--start', 'yesterday'], 2, 'RFC 3339'],
      [['--version', 'v1.0.0', ...base, '--ramp', '10%@0h', '--expires', '10s'], 2, '--expires must be from 1min'],
      [['--version', 'v9.9.9', ...base, '--ramp', '10%@0h'], 1, 'v9.9.9 is not published'],
      [['--version', 'v1.0.0', '--channel', '-x', '--ramp', '10%@0h'], 2, ''],
    ] as const) {
      const r = await rollout(reg, keys, [...args]);
      expect(r.code, `${args.join(' ')}\n${r.stderr}`).toBe(code);
      expect(r.stderr).toContain(says);
      expectNoStack(r.stderr);
    }
    const both = await build(['rollout', '--version', 'v1.0.0', '--channel', 'stable', '--to', reg.upstreamTo, '--ramp', '1%@0h', '--key', keys.key, '--predicate-out', join(work, 'p.json')]);
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('give one of --key, --predicate-out and --attestation');
    expect((await manifest('stable')).digest).toBe(before);
  });

  test('keyless: --predicate-out writes the predicate and pushes nothing; --attestation attaches what the workflow attested', async () => {
    const out = join(work, 'keyless');
    const before = await manifest('stable');
    const prepared = await build(['rollout', '--version', 'v1.1.0', '--channel', 'stable', '--to', reg.upstreamTo, '--ramp', '100%@0h', '--predicate-out', join(work, 'predicate.json'), '--json'], { env: reg.pushEnv });
    expect(prepared.code, prepared.stderr).toBe(0);
    const doc = JSON.parse(prepared.stdout);
    const release = await manifest('v1.1.0');
    expect(doc).toMatchObject({ step: 'predicate', predicateType: ROLLOUT_PREDICATE_TYPE, subject: { name: `${reg.mirror.upstream.address}/${reg.repository}`, digest: release.digest } });
    const predicate = JSON.parse(readFileSync(join(work, 'predicate.json'), 'utf8')) as RolloutPredicate;
    expect(predicate).toEqual(doc.predicate);
    expect(predicate.sequence).toBe(Number(before.doc.annotations['dev.containai.rollout.sequence']) + 1);
    expect((await manifest('stable')).digest).toBe(before.digest);

    // What actions/attest makes of it: the statement over the subject digest, signed by the workflow's certificate.
    const ca = makeTestCA();
    const identity = { repo: 'acme/widgets', workflowPath: '.github/workflows/rollout.yml', ref: 'refs/heads/main' };
    const attest = (p: RolloutPredicate, digest = release.digest) =>
      JSON.stringify(ca.attest(digest.slice(7), { identity, predicateType: ROLLOUT_PREDICATE_TYPE, payload: Buffer.from(statementBytes({ subject: { name: doc.subject.name, digest }, predicate: p })) }));
    // One for another release is refused before anything is pushed.
    writeFileSync(join(work, 'wrong.json'), attest(predicate, (await manifest('v1.0.0')).digest));
    const wrong = await build(['rollout', '--version', 'v1.1.0', '--channel', 'stable', '--to', reg.upstreamTo, '--attestation', join(work, 'wrong.json')], { env: reg.pushEnv });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain(`its subject is ${(await manifest('v1.0.0')).digest}, not v1.1.0's manifest ${release.digest}`);
    expect(wrong.stderr).toContain('nothing was pushed');
    // --ramp cannot change an attested statement.
    writeFileSync(join(work, 'attestation.json'), attest(predicate));
    const ramp = await build(['rollout', '--version', 'v1.1.0', '--channel', 'stable', '--to', reg.upstreamTo, '--attestation', join(work, 'attestation.json'), '--ramp', '1%@0h'], { env: reg.pushEnv });
    expect(ramp.code).toBe(2);
    const attached = await build(['rollout', '--version', 'v1.1.0', '--channel', 'stable', '--to', reg.upstreamTo, '--attestation', join(work, 'attestation.json'), '--json'], { env: reg.pushEnv });
    expect(attached.code, attached.stderr).toBe(0);
    expect(JSON.parse(attached.stdout)).toMatchObject({ step: 'attach', sequence: predicate.sequence, release: release.digest });
    // Attaching it again is refused: the channel already carries its sequence.
    const twice = await build(['rollout', '--version', 'v1.1.0', '--channel', 'stable', '--to', reg.upstreamTo, '--attestation', join(work, 'attestation.json')], { env: reg.pushEnv });
    expect(twice.code).toBe(1);
    expect(twice.stderr).toContain(`stable already carries sequence ${predicate.sequence}`);

    // A host that trusts the repository's workflow (and the release key) takes it.
    writeFileSync(join(out + '-root.json'), JSON.stringify(ca.trustedRoot));
    const h = host();
    const r = await update(h, ['--repo', 'acme/widgets', '--trusted-root', `${out}-root.json`]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.json).toMatchObject({ decision: 'install', statement: { version: 'v1.1.0', signer: { kind: 'attestation', sourceRepository: 'acme/widgets' } } });
    expect(current(h)).toBe('releases/v1.1.0');
    // Pinning the release workflow alone refuses the rollout workflow's statement; --rollout-signer-workflow pins it.
    const pinned = ['--repo', 'acme/widgets', '--trusted-root', `${out}-root.json`, '--signer-workflow', 'acme/widgets/.github/workflows/release.yml'];
    const h2 = host();
    const refused = await update(h2, pinned);
    expect(refused.code).toBe(1);
    expect(refused.json).toMatchObject({ ok: false, decision: 'refused' });
    expect(refused.stderr).toContain('(--signer-workflow)');
    expect(current(h2)).toBeUndefined();
    const ok = await update(h2, [...pinned, '--rollout-signer-workflow', 'acme/widgets/.github/workflows/rollout.yml']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(current(h2)).toBe('releases/v1.1.0');
  });
});

describe('containai-host update', () => {
  test('installs what the statement names; a poll with nothing new is one HEAD; an event only when the decision changes', async () => {
    const r = await rollout(reg, keys, ['--version', 'v1.0.0', '--channel', 'one', '--ramp', '100%@0h']);
    expect(r.code, r.stderr).toBe(0);
    const h = host();
    const first = await update(h, [], keys, 'one');
    expect(first.code, first.stderr).toBe(0);
    expect(first.json).toMatchObject({ ok: true, channel: 'one', moved: true, decision: 'install', statement: { version: 'v1.0.0', sequence: 1, share: 1 }, install: { outcome: 'installed', version: 'v1.0.0' }, logged: true });
    expect(first.stdout).not.toContain('"bucket": null');
    expect(current(h)).toBe('releases/v1.0.0');
    // The install records where it came from: the channel, by the release's digest.
    const record = JSON.parse(readFileSync(join(h.root, 'releases', 'v1.0.0', '.containai', 'install.json'), 'utf8'));
    expect(record.source).toBe(`${reg.hostFrom}@${(await manifest('v1.0.0')).digest}`);
    const mark = accessLog(reg.mirror).length;
    const second = await update(h, [], keys, 'one');
    expect(second.json).toMatchObject({ ok: true, moved: false, decision: 'current', requests: 1, logged: true });
    const third = await update(h, [], keys, 'one');
    expect(third.json).toMatchObject({ moved: false, decision: 'current', requests: 1, logged: false });
    const log = countLoad(await settleLog(reg.mirror, mark, 2), reg.repository);
    expect(log).toMatchObject({ requests: 2, manifestHeads: 2 });
    const updates = events(h).filter((e) => e.action === 'update');
    expect(updates.map((e) => e.decision)).toEqual(['install', 'current']);
    expect(updates[0]).toMatchObject({ channel: 'one', outcome: 'ok', version: 'v1.0.0', sequence: 1 });
    // The state says what was decided, for check-health and the metrics file.
    const state = JSON.parse(readFileSync(join(h.root, 'state', 'channel-one.json'), 'utf8'));
    expect(state).toMatchObject({ channel: 'one', highestSequence: 1, decision: { kind: 'current' }, statement: { predicate: { version: 'v1.0.0' } } });
  });

  test('install --from oci://…:CHANNEL follows the statement to its release (verified as always)', async () => {
    const h = host();
    const [r] = await onEveryHost([h], () => ['install', '--from', `${reg.hostFrom}:one`, '--install-root', h.root, '--allow-nonroot', '--key', keys.pub, '--no-public-good', '--trust-dir', keys.trustDir, '--json']);
    expect(r!.code, r!.stderr).toBe(0);
    expect(JSON.parse(r!.stdout)).toMatchObject({ outcome: 'installed', version: 'v1.0.0' });
    expect(current(h)).toBe('releases/v1.0.0');
  });

  test('a channel that names a release directly has no statement: it says so, exits 1 and installs nothing', async () => {
    const moved = await build(['publish', '--version', 'v1.0.0', '--to', reg.upstreamTo, '--channel', 'plain', '--out', join(work, 'dist')], { env: reg.pushEnv });
    expect(moved.code).toBe(0);
    const h = host();
    const r = await update(h, [], keys, 'plain');
    expect(r.code).toBe(1);
    expect(r.json).toMatchObject({ ok: false, decision: 'no-statement' });
    expect(r.stderr).toContain('names a release directly, with no rollout statement: nothing was installed');
    expect(r.stderr).toContain('hint: publish a statement for it');
    expect(existsSync(join(h.root, 'releases'))).toBe(false);
    expect(current(h)).toBeUndefined();
  });

  test('refuses a statement signed by another key, one moved from another channel, and a replayed older one; nothing changes', async () => {
    const stranger = fleetKeys(join(work, 'stranger'));
    const h = host();
    // Sequence 1 and 2 on "two", and a statement of "three" to move over.
    expect((await rollout(reg, keys, ['--version', 'v1.0.0', '--channel', 'two', '--ramp', '100%@0h'])).code).toBe(0);
    const old = await manifest('two');
    expect((await rollout(reg, keys, ['--version', 'v1.0.0', '--channel', 'two', '--ramp', '100%@0h'])).code).toBe(0);
    expect((await update(h, [], keys, 'two')).json).toMatchObject({ decision: 'install', statement: { sequence: 2 } });
    const before = readFileSync(join(h.root, 'state', 'channel-two.json'), 'utf8');

    // Another key.
    const other = await update(host(), [], stranger, 'two');
    expect(other.code).toBe(1);
    expect(other.json).toMatchObject({ decision: 'refused' });
    expect(other.stderr).toContain('the rollout statement of two does not verify');

    // The old statement served again (a mirror frozen in time, or a registry rolled back).
    await putManifest(pusher(), 'two', new TextEncoder().encode(JSON.stringify(old.doc)), MEDIA_TYPE_IMAGE_MANIFEST);
    expect((await manifest('two')).digest).toBe(old.digest);
    const replay = await update(h, [], keys, 'two');
    expect(replay.code).toBe(1);
    expect(replay.json).toMatchObject({ ok: false, decision: 'refused', moved: true });
    expect(replay.stderr).toContain('has sequence 1, below 2, the highest this host has seen: a replayed or rolled-back statement is refused');
    // Refused again on the next poll (a refusal is read again, never remembered as seen).
    expect((await update(h, [], keys, 'two')).json).toMatchObject({ decision: 'refused' });
    const after = JSON.parse(readFileSync(join(h.root, 'state', 'channel-two.json'), 'utf8'));
    expect(after.highestSequence).toBe(2);
    expect(after.tagDigest).toBe(JSON.parse(before).tagDigest);
    expect(events(h).filter((e) => e.action === 'update').map((e) => e.decision)).toEqual(['install', 'refused']);

    // A statement of "three" moved onto "two".
    expect((await rollout(reg, keys, ['--version', 'v1.0.0', '--channel', 'three', '--ramp', '100%@0h'])).code).toBe(0);
    const three = await manifest('three');
    await putManifest(pusher(), 'two', new TextEncoder().encode(JSON.stringify(three.doc)), MEDIA_TYPE_IMAGE_MANIFEST);
    const moved = await update(host(), [], keys, 'two');
    expect(moved.code).toBe(1);
    expect(moved.stderr).toContain('is for the channel "three": a statement moved to another channel is refused');
  });

  test('halted and expired install nothing; check-health reports the stale channel and the metrics file carries the channel', async () => {
    const h = host();
    expect((await rollout(reg, keys, ['--version', 'v1.0.0', '--channel', 'four', '--ramp', '100%@0h'])).code).toBe(0);
    expect((await update(h, [], keys, 'four')).json).toMatchObject({ decision: 'install' });
    expect((await rollout(reg, keys, ['--version', 'v1.1.0', '--channel', 'four', '--halt'])).code).toBe(0);
    const halted = await update(h, [], keys, 'four');
    expect(halted.code).toBe(0);
    expect(halted.json).toMatchObject({ decision: 'halted', statement: { version: 'v1.1.0', halt: true } });
    expect(current(h)).toBe('releases/v1.0.0');
    // A statement that started 8 days ago with a 7-day expiry has expired on arrival.
    const expired = await rollout(reg, keys, ['--version', 'v1.1.0', '--channel', 'four', '--ramp', '100%@0h', '--start', hoursAgo(8 * 24), '--expires', '7d']);
    expect(expired.code).toBe(0);
    expect(expired.stderr).toContain('hosts will install nothing and report four stale');
    const stale = await update(h, [], keys, 'four');
    expect(stale.code).toBe(0);
    expect(stale.json).toMatchObject({ decision: 'expired' });
    expect(stale.json!.reason).toContain('the channel is stale');
    expect(current(h)).toBe('releases/v1.0.0');
    const metrics = join(work, `metrics-${h.index}.prom`);
    const [health] = await onEveryHost([h], () => healthArgs(keys, h, ['--metrics-file', metrics]));
    const channel = (JSON.parse(health!.stdout) as { checks: Array<Record<string, any>> }).checks.find((c) => c.id === 'channel');
    expect(channel).toMatchObject({ status: 'warn', details: { stale: ['four'] } });
    expect(channel!.message).toContain('four is stale: its statement (v1.1.0, sequence 3) expired at');
    expect(channel!.fix).toContain('publish a new statement');
    const text = readFileSync(metrics, 'utf8');
    expect(text).toContain('containai_update_decision{channel="four",decision="expired"} 1\n');
    expect(text).toContain('containai_update_decision{channel="four",decision="install"} 0\n');
    expect(text).toContain('containai_update_stale{channel="four"} 1\n');
    expect(text).toContain('containai_update_statement_info{channel="four",version="v1.1.0"} 1\n');
    expect(text).toContain('containai_update_statement_sequence{channel="four"} 3\n');
    const promtool = Bun.spawnSync([requireService('promtool', 'prometheus'), 'check', 'metrics'], { stdin: new TextEncoder().encode(text), stdout: 'pipe', stderr: 'pipe' });
    expect(promtool.exitCode, promtool.stdout.toString() + promtool.stderr.toString()).toBe(0);
  });

  test('usage: --from with a tag, --gate with --no-gate, a bad channel; a missing machine id is refused', async () => {
    const h = host();
    const base = ['update', '--install-root', h.root, '--allow-nonroot', '--key', keys.pub, '--no-public-good'];
    const tagged = await onEveryHost([h], () => [...base, '--from', `${reg.hostFrom}:stable`, '--channel', 'stable']);
    expect(tagged[0]!.code).toBe(2);
    expect(tagged[0]!.stderr).toContain('--from names a tag or digest');
    const both = await onEveryHost([h], () => [...base, '--from', reg.hostFrom, '--channel', 'stable', '--gate', '5s', '--no-gate']);
    expect(both[0]!.code).toBe(2);
    const bad = await onEveryHost([h], () => [...base, '--from', reg.hostFrom, '--channel', '../x']);
    expect(bad[0]!.code).toBe(2);
    writeFileSync(h.machineIdFile, 'unset\n');
    const noId = await update(h, [], keys, 'one');
    expect(noId.code).toBe(1);
    expect(noId.stderr).toContain('does not hold a machine id');
    expect(readdirSync(h.root)).not.toContain('releases');
  });
});
