/**
 * The first format keeps installing (issue 12): bundles the old containai-build
 * wrote (test/fixtures/format1/, signature over payload.tar.gz, agent inside),
 * and install roots the old containai-host left (install.json and the whole
 * bundle at the release's top). Each format rolls back to the other.
 */
import { describe, expect, test } from 'bun:test';
import { existsSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { host, REPO_ROOT, tempDir } from '../helpers/cli.ts';
import { craftRelease } from '../helpers/craft.ts';
import { makeKeyPair, writeKeyPair } from '../helpers/signing.ts';

const FIXTURES = join(REPO_ROOT, 'test', 'fixtures', 'format1');
const KEY = join(FIXTURES, 'key.pub');
const rootArgs = (root: string) => ['--install-root', root, '--allow-nonroot'];

describe('a bundle of the first format', () => {
  test('installs, keeps its bundle in .containai/, verifies, and status marks it', async () => {
    const root = join(tempDir('cai-f1-'), 'root');
    const r = await host(['install', '--version', 'v0.9.0', '--bundle', join(FIXTURES, 'containai-v0.9.0.tar.gz'), '--key', KEY, ...rootArgs(root)]);
    expect(r.stderr).not.toContain('error');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('first format');
    const dir = join(root, 'releases', 'v0.9.0');
    expect(readdirSync(join(dir, '.containai')).sort()).toEqual(['containai-v0.9.0.tar.gz', 'install.json']);
    expect(JSON.parse(readFileSync(join(dir, '.containai', 'install.json'), 'utf8'))).toMatchObject({ format: 1, version: 'v0.9.0', signer: { kind: 'key' } });
    expect(existsSync(join(dir, 'tools', 'containai-host'))).toBe(true);
    const verify = await host(['install', '--verify-only', '--install-root', root, '--key', KEY]);
    expect(verify.code).toBe(0);
    const status = await host(['status', '--install-root', root, '--json']);
    expect(JSON.parse(status.stdout).releases[0]).toMatchObject({ version: 'v0.9.0', format: 1 });
  });

  test('a changed file in it is found by --verify-only, as before', async () => {
    const root = join(tempDir('cai-f1-'), 'root');
    expect((await host(['install', '--version', 'v0.9.0', '--bundle', join(FIXTURES, 'containai-v0.9.0.tar.gz'), '--key', KEY, ...rootArgs(root)])).code).toBe(0);
    writeFileSync(join(root, 'releases', 'v0.9.0', 'host', 'profile.env'), 'PROFILE=prod\n');
    const verify = await host(['install', '--verify-only', '--install-root', root, '--key', KEY]);
    expect(verify.code).toBe(1);
    expect(verify.stderr).toContain('releases/v0.9.0/host/profile.env: content does not match SHA256SUMS');
  });

  test('signed by another key is refused, and an unsigned one needs --allow-unsigned', async () => {
    const dir = tempDir('cai-f1-');
    const other = writeKeyPair(dir, 'other', makeKeyPair('ecdsa'));
    const root = join(dir, 'root');
    const signedByOther = await host(['install', '--version', 'v0.9.0', '--bundle', join(FIXTURES, 'containai-v0.9.0.tar.gz'), '--key', other.pub, ...rootArgs(root)]);
    expect(signedByOther.code).toBe(1);
    expect(signedByOther.stderr).toContain('does not verify with any pinned key');
    const unsigned = await host(['install', '--version', 'v0.9.1', '--bundle', join(FIXTURES, 'containai-v0.9.1.tar.gz'), '--key', KEY, ...rootArgs(root)]);
    expect(unsigned.code).toBe(1);
    expect(unsigned.stderr).toContain('unsigned');
    expect(readdirSync(join(root, 'releases'))).toEqual([]);
    const allowed = await host(['install', '--version', 'v0.9.1', '--bundle', join(FIXTURES, 'containai-v0.9.1.tar.gz'), '--allow-unsigned', ...rootArgs(root)]);
    expect(allowed.code).toBe(0);
  });
});

describe('the formats roll back to each other', () => {
  test('first format, then the current format, then back, and forth again', async () => {
    const dir = tempDir('cai-f1-');
    const root = join(dir, 'root');
    expect((await host(['install', '--version', 'v0.9.0', '--bundle', join(FIXTURES, 'containai-v0.9.0.tar.gz'), '--key', KEY, ...rootArgs(root)])).code).toBe(0);
    const pair = makeKeyPair('ecdsa');
    const keys = writeKeyPair(dir, 'new', pair);
    const next = craftRelease(join(dir, 'next'), { version: 'v1.0.0', key: pair });
    expect((await host(['install', '--version', 'v1.0.0', '--bundle', next.bundle, '--key', keys.pub, ...rootArgs(root)])).code).toBe(0);
    const back = await host(['rollback', ...rootArgs(root), '--key', KEY]);
    expect(back.stderr).not.toContain('error');
    expect(back.code).toBe(0);
    expect(readlinkSync(join(root, 'current'))).toBe('releases/v0.9.0');
    expect(readlinkSync(join(root, 'previous'))).toBe('releases/v1.0.0');
    const forth = await host(['rollback', ...rootArgs(root), '--key', keys.pub]);
    expect(forth.code).toBe(0);
    expect(readlinkSync(join(root, 'current'))).toBe('releases/v1.0.0');
  });

  test('an install root the old agent left verifies, takes a new release, and rolls back to the old one', async () => {
    const dir = tempDir('cai-f1-');
    const root = join(dir, 'root');
    Bun.spawnSync(['mkdir', '-p', root]);
    expect(Bun.spawnSync(['tar', '-xf', join(FIXTURES, 'installed-by-format1-agent.tar'), '-C', root]).exitCode).toBe(0);
    const verify = await host(['install', '--verify-only', '--install-root', root, '--key', KEY]);
    expect(verify.stderr).not.toContain('error');
    expect(verify.code).toBe(0);
    const pair = makeKeyPair('ecdsa');
    const keys = writeKeyPair(dir, 'new', pair);
    const next = craftRelease(join(dir, 'next'), { version: 'v1.0.0', key: pair });
    expect((await host(['install', '--version', 'v1.0.0', '--bundle', next.bundle, '--key', keys.pub, ...rootArgs(root)])).code).toBe(0);
    const back = await host(['rollback', ...rootArgs(root), '--key', KEY]);
    expect(back.code).toBe(0);
    expect(readlinkSync(join(root, 'current'))).toBe('releases/v0.9.0');
  });
});
