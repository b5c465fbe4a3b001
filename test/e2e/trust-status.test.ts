/** `containai-host trust status` and check-health's trust check, as an operator runs them: the compiled binary, a trust dir of fixtures. */
import { afterAll, describe, expect, test } from 'bun:test';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expectNoStack, host, removeDir, tempDir } from '../helpers/cli.ts';
import { makeKeyPair, makeTestCA, sha256Hex } from '../helpers/signing.ts';

const DAY = 86_400_000;
const dirs: string[] = [];
afterAll(() => dirs.forEach(removeDir));
function dir(prefix = 'cai-trust-status-'): string {
  const d = tempDir(prefix);
  dirs.push(d);
  return d;
}

function rootEnding(days: number): string {
  const root = structuredClone(makeTestCA().trustedRoot) as { certificateAuthorities: Array<{ validFor: Record<string, string> }> };
  root.certificateAuthorities[0]!.validFor.end = new Date(Date.now() + days * DAY).toISOString();
  return JSON.stringify(root);
}

function trustDir(files: Record<string, string>): string {
  const d = join(dir(), 'trust');
  mkdirSync(d, { mode: 0o755 });
  for (const [name, text] of Object.entries(files)) writeFileSync(join(d, name), text, { mode: 0o644 });
  return d;
}

interface Source {
  name: string;
  kind: string;
  inUse: boolean;
  status: string;
  end?: string;
  tufVersion?: number;
  builtAt?: string;
}

async function status(trust: string, env: Record<string, string> = {}) {
  const r = await host(['trust', 'status', '--trust-dir', trust, '--json'], { env });
  expectNoStack(r.stderr);
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as { publicGood: { inUse: string; storedProblem?: string }; sources: Source[] };
}

async function trustCheck(trust: string, env: Record<string, string> = {}) {
  // No engine here: only the trust check is looked at.
  const r = await host(['check-health', '--install-root', join(dir(), 'root'), '--offline', '--json', '--trust-dir', trust], { env: { DOCKER_HOST: 'unix:///nonexistent.sock', ...env } });
  expectNoStack(r.stderr);
  const doc = JSON.parse(r.stdout) as { checks: Array<{ id: string; status: string; message: string; fix?: string; details: Record<string, unknown> }> };
  return { ...r, check: doc.checks.find((c) => c.id === 'trust')! };
}

describe('trust status', () => {
  test('lists the compiled-in root (TUF version, build date), each pinned root with its end and each key; text to stdout', async () => {
    const trust = trustDir({ 'corp.json': rootEnding(30), 'release.pub': makeKeyPair().publicPem });
    const doc = await status(trust);
    expect(doc.sources.map((s) => [s.kind, s.name, s.status])).toEqual([
      ['public-good', 'public-good (compiled in)', 'ok'],
      ['trusted-root', join(trust, 'corp.json'), 'warn'],
      ['key', join(trust, 'release.pub'), 'none'],
    ]);
    expect(doc.sources[0]).toMatchObject({ inUse: true, tufVersion: expect.any(Number), builtAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/), end: expect.stringMatching(/^\d{4}-/) });
    const text = await host(['trust', 'status', '--trust-dir', trust]);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^\* public-good \(compiled in\): TUF root v\d+; built in \d{4}-\d\d-\d\d; ends \d{4}-\d\d-\d\d \(its TUF root\.json v\d+ expires\) \[ok\]$/m);
    expect(text.stdout).toMatch(/corp\.json: ends \d{4}-\d\d-\d\d \(its last CA key ends\) \[ENDS SOON\]/);
    expect(text.stdout).toMatch(/release\.pub: ec prime256v1 key sha256:[0-9a-f]{16}…; no end date \[no end date\]/);
    expect(text.stdout).toContain('(retired: verifies older signatures only)');
  });

  test('a root kept by trust update is listed and used when newer; one another user could write is not used, and check-health says so', async () => {
    const state = join(dir(), 'state');
    mkdirSync(join(state, 'trust'), { recursive: true, mode: 0o755 });
    const trustedRoot = rootEnding(400);
    const kept = join(state, 'trust', 'public-good.json');
    const summary = { version: 999, expires: new Date(Date.now() + 300 * DAY).toISOString() };
    writeFileSync(
      kept,
      JSON.stringify({
        format: 1, mirror: 'https://tuf-repo-cdn.sigstore.dev', startedFrom: 'compiled-in', verifiedAt: new Date().toISOString(),
        root: summary, timestamp: summary, snapshot: summary, targets: summary,
        trustedRootSha256: sha256Hex(trustedRoot), metadata: { root: '{}', timestamp: '{}', snapshot: '{}', targets: '{}' }, trustedRoot,
      }),
      { mode: 0o644 },
    );
    const env = { CONTAINAI_STATE_DIR: state };
    const empty = trustDir({});
    const used = await status(empty, env);
    expect(used.publicGood.inUse).toBe('tuf-updated');
    expect(used.sources.map((s) => [s.name, s.inUse])).toEqual([['public-good (compiled in)', false], ['public-good (TUF-updated)', true]]);

    if (process.getuid?.() === 0) {
      chmodSync(kept, 0o666);
      const refused = await status(empty, env);
      expect(refused.publicGood.inUse).toBe('compiled-in');
      expect(refused.publicGood.storedProblem).toContain('is not owned by root or is writable by others; not used');
      const health = await trustCheck(empty, env);
      expect(health.check).toMatchObject({ status: 'warn', message: expect.stringContaining('the root kept by trust update is not used') });
    }
  });
});

describe("check-health's trust check", () => {
  test('a pinned root ending in 30 days warns, the date in details; the report stays healthy on its account', async () => {
    const r = await trustCheck(trustDir({ 'corp.json': rootEnding(30) }));
    expect(r.check.status).toBe('warn');
    expect(r.check.message).toMatch(/corp\.json ends \d{4}-\d\d-\d\d, in (29|30) days/);
    expect(r.check.fix).toBeTruthy();
    const dates = r.check.details.endDates as Array<{ source: string; end: string; daysLeft: number; status: string; kind: string }>;
    expect(dates).toContainEqual(expect.objectContaining({ kind: 'trusted-root', status: 'warn', end: expect.stringMatching(/^\d{4}-/), daysLeft: expect.any(Number) }));
    expect(dates).toContainEqual(expect.objectContaining({ kind: 'public-good', status: 'ok', inUse: true }));
  });

  test('one whose end passed a day ago fails, and the report is unhealthy (exit 1)', async () => {
    const r = await trustCheck(trustDir({ 'corp.json': rootEnding(-1) }));
    expect(r.check.status).toBe('fail');
    expect(r.check.message).toMatch(/corp\.json ended \d{4}-\d\d-\d\d \(its last CA key ends\)/);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/health checks? failed: .*trust/);
  });
});
