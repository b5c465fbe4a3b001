/** End dates of trust in-process: trusted roots (retired keys, the last key of a kind), pinned keys, the 60-day rule, and the health check's verdict. */
import { afterAll, describe, expect, test } from 'bun:test';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { judgeTrust } from '../../lib/health/trust.ts';
import { endsOfKinds, endStatus, trustedRootEnds } from '../../lib/trust/expiry.ts';
import { collectTrustStatus } from '../../lib/trust/status.ts';
import { compiledInRoot, compiledInTrustedRootText } from '../../lib/trust/tuf-store.ts';
import { makeKeyPair, makeTestCA } from '../helpers/signing.ts';

const DAY = 86_400_000;
const dir = mkdtempSync(join(tmpdir(), 'cai-trust-status-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const env = { CONTAINAI_STATE_DIR: join(dir, 'state') };

let n = 0;
function trustDir(files: Record<string, string>): string {
  const d = join(dir, `trust-${n++}`);
  mkdirSync(d, { mode: 0o755 });
  for (const [name, text] of Object.entries(files)) writeFileSync(join(d, name), text, { mode: 0o644 });
  return d;
}

/** A test CA's trusted root whose CA key (validFor.end) ends in `days` days. */
function rootEnding(days: number): Record<string, unknown> {
  const root = structuredClone(makeTestCA().trustedRoot) as { certificateAuthorities: Array<{ validFor: Record<string, string> }> };
  root.certificateAuthorities[0]!.validFor.end = new Date(Date.now() + days * DAY).toISOString();
  return root;
}

/** A PEM holding a public key and a self-signed certificate for it, valid for `days` days (openssl). */
function keyWithCertificate(days: number): string {
  const key = join(dir, `k-${n}.pem`);
  const cert = join(dir, `c-${n++}.pem`);
  const r = Bun.spawnSync(['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=release key', '-days', String(days), '-keyout', key, '-out', cert], { stderr: 'pipe' });
  if (r.exitCode !== 0) throw new Error(r.stderr.toString());
  const pub = Bun.spawnSync(['openssl', 'pkey', '-in', key, '-pubout']).stdout.toString();
  return pub + readFileSync(cert, 'utf8');
}

describe('trustedRootEnds', () => {
  test('the compiled-in public-good root: retired keys are listed and do not end it; its CA chain does', () => {
    const ends = trustedRootEnds(JSON.parse(compiledInTrustedRootText()));
    expect(endsOfKinds(compiledInRoot().kinds)).toEqual(ends);
    const retired = ends.parts.filter((p) => p.retired).map((p) => p.what);
    expect(retired).toEqual(['CA https://fulcio.sigstore.dev', 'CT log https://ctfe.sigstore.dev/test']);
    expect(ends.end).toBe('2031-10-05T13:56:58.000Z');
    expect(ends.endReason).toBe('its last CA key ends');
  });

  test('a CA key ending in 30 days warns; one that ended yesterday has expired; an open log keeps nothing open that a CA ends', () => {
    const soon = trustedRootEnds(rootEnding(30));
    expect(endStatus(soon.end)).toBe('warn');
    const past = trustedRootEnds(rootEnding(-1));
    expect(endStatus(past.end)).toBe('expired');
    expect(past.parts.find((p) => p.what.startsWith('CA'))?.retired).toBe(false);
  });

  test('a retired log beside an open one is retired; the last log ending ends the root', () => {
    const root = structuredClone(makeTestCA().trustedRoot) as { tlogs: Array<{ publicKey: { validFor: Record<string, string> } }> };
    const second = structuredClone(root.tlogs[0]!);
    root.tlogs[0]!.publicKey.validFor.end = new Date(Date.now() - DAY).toISOString();
    root.tlogs.push(second);
    expect(trustedRootEnds(root).parts.find((p) => p.what.startsWith('transparency'))?.retired).toBe(true);
    expect(endStatus(trustedRootEnds(root).end)).toBe('ok');
    second.publicKey.validFor.end = new Date(Date.now() + 10 * DAY).toISOString();
    expect(trustedRootEnds(root)).toMatchObject({ endReason: 'its last transparency log key ends' });
    expect(endStatus(trustedRootEnds(root).end)).toBe('warn');
  });

  test('a root with no CA verifies no certificate: it has ended', () => {
    const root = { ...makeTestCA().trustedRoot, certificateAuthorities: [] };
    expect(trustedRootEnds(root)).toMatchObject({ endReason: 'it has no CA' });
    expect(endStatus(trustedRootEnds(root).end)).toBe('expired');
  });
});

describe('the trust check', () => {
  test('nothing pinned: passes, naming the compiled-in root, its TUF version and age', () => {
    const outcome = judgeTrust(collectTrustStatus({ trustDir: join(dir, 'none'), env }));
    expect(outcome.status).toBe('pass');
    expect(outcome.message).toMatch(new RegExp(`^public-good root TUF v${compiledInRoot().tufVersion} \\(compiled in \\d{4}-\\d\\d-\\d\\d, 0 days old\\); 0 pinned roots, 0 pinned keys; next end`));
    expect(outcome.details).toMatchObject({ publicGood: { inUse: 'compiled-in', tufVersion: compiledInRoot().tufVersion, ageDays: 0 } });
  });

  test('a pinned root ending in 30 days warns, with the date in details; one past by a day fails', () => {
    const warnDir = trustDir({ 'corp.json': JSON.stringify(rootEnding(30)) });
    const warn = judgeTrust(collectTrustStatus({ trustDir: warnDir, env }));
    expect(warn.status).toBe('warn');
    expect(warn.message).toMatch(new RegExp(`^${warnDir}/corp\\.json ends \\d{4}-\\d\\d-\\d\\d, in (29|30) days \\(its last CA key ends\\)$`));
    expect(warn.fix).toContain('pin the renewed trusted root beside');
    const dates = (warn.details as { endDates: Array<{ source: string; end: string; daysLeft: number; status: string }> }).endDates;
    expect(dates.find((d) => d.source.endsWith('corp.json'))).toMatchObject({ status: 'warn', daysLeft: expect.any(Number), end: expect.stringMatching(/^\d{4}-/) });

    const failDir = trustDir({ 'corp.json': JSON.stringify(rootEnding(-1)), 'fresh.json': JSON.stringify(rootEnding(400)) });
    const fail = judgeTrust(collectTrustStatus({ trustDir: failDir, env }));
    expect(fail.status).toBe('fail');
    expect(fail.message).toMatch(/corp\.json ended \d{4}-\d\d-\d\d \(its last CA key ends\)$/);
  });

  test('a pinned key: bare, no end date; with a certificate ending in 30 days, a warning; with one already ended, a failure', () => {
    const bare = collectTrustStatus({ trustDir: trustDir({ 'release.pub': makeKeyPair().publicPem }), env });
    expect(bare.sources.find((s) => s.kind === 'key')).toMatchObject({ status: 'none', algorithm: 'ec prime256v1', keyId: expect.stringMatching(/^[0-9a-f]{64}$/) });
    expect(judgeTrust(bare).status).toBe('pass');

    const withCert = trustDir({ 'release.pub': keyWithCertificate(30) });
    const soon = judgeTrust(collectTrustStatus({ trustDir: withCert, env }));
    expect(soon.status).toBe('warn');
    expect(soon.message).toMatch(/release\.pub ends .*\(its certificate ends\)/);
    expect(soon.fix).toContain('rotate the key');

    // openssl 3.0 cannot date a certificate in the past: the same one, judged a day after it ended.
    const ended = judgeTrust(collectTrustStatus({ trustDir: withCert, env, now: Date.now() + 31 * DAY }));
    expect(ended.status).toBe('fail');
    expect(ended.message).toMatch(/release\.pub ended .*\(its certificate ends\)/);
  });

  test('a pinned file that is no trusted root fails (every verification would)', () => {
    const outcome = judgeTrust(collectTrustStatus({ trustDir: trustDir({ 'broken.json': '{"mediaType": 1' }), env }));
    expect(outcome.status).toBe('fail');
    expect(outcome.message).toMatch(/broken\.json cannot be read as a trusted root/);
  });

  test('roots and keys given as flags count like pinned ones; --no-public-good leaves the public-good root out', () => {
    const root = join(dir, 'flag-root.json');
    writeFileSync(root, JSON.stringify(rootEnding(-1)));
    const status = collectTrustStatus({ trustDir: join(dir, 'none'), trustedRootFiles: [root], publicGood: false, env });
    expect(status.sources.filter((s) => s.inUse).map((s) => s.name)).toEqual([root]);
    expect(judgeTrust(status)).toMatchObject({ status: 'fail', message: expect.stringContaining('flag-root.json ended') });
  });
});
