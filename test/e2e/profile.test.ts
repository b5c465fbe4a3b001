/** containai-build profile: stamping host/profile.env as CI does, and refusing what a prod host must not run. */
import { describe, expect, test } from 'bun:test';
import { chmodSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { build, expectNoStack, tempDir } from '../helpers/cli.ts';

const PROD = ['--profile', 'prod', '--image-prefix', 'containai', '--registry', 'ghcr.io/owner'];

describe('containai-build profile', () => {
  test('writes the profile from flags, and keeps IMAGE_DIGEST_* already there', async () => {
    const dir = tempDir();
    const file = join(dir, 'profile.env');
    writeFileSync(file, `PROFILE=dev\nIMAGE_PREFIX=old\nIMAGE_TAG=devlocal\nIMAGE_DIGEST_PROXY=sha256:${'a'.repeat(64)}\n`);
    const r = await build(['profile', ...PROD, '--image-tag', 'v1.2.3', '--file', file]);
    expect(r.code).toBe(0);
    const text = readFileSync(file, 'utf8');
    expect(text).toContain('PROFILE=prod\n');
    expect(text).toContain('IMAGE_PREFIX=containai\n');
    expect(text).toContain('IMAGE_TAG=v1.2.3\n');
    expect(text).toContain('REGISTRY=ghcr.io/owner\n');
    expect(text).toContain(`IMAGE_DIGEST_PROXY=sha256:${'a'.repeat(64)}\n`);
    expect(readdirSync(dir)).toEqual(['profile.env']);
  });

  test('takes values from the environment when flags are absent', async () => {
    const dir = tempDir();
    const file = join(dir, 'profile.env');
    const r = await build(['profile', '--file', file], {
      env: { PROFILE: 'prod', IMAGE_PREFIX: 'containai', IMAGE_TAG: '0a1b2c3d4e5f', REGISTRY: 'ghcr.io/acme' },
    });
    expect(r.code).toBe(0);
    expect(readFileSync(file, 'utf8')).toContain('IMAGE_TAG=0a1b2c3d4e5f\n');
  });

  test.each(['latest', 'dev', 'devlocal', 'nightly', 'main', 'stable'])('prod refuses the mutable tag %s and keeps the old file', async (tag) => {
    const dir = tempDir();
    const file = join(dir, 'profile.env');
    const before = 'PROFILE=dev\nIMAGE_PREFIX=containai-dev\nIMAGE_TAG=devlocal\n';
    writeFileSync(file, before);
    const r = await build(['profile', ...PROD, '--image-tag', tag, '--file', file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('IMAGE_TAG');
    expect(r.stderr).toContain('immutable');
    expectNoStack(r.stderr);
    expect(readFileSync(file, 'utf8')).toBe(before);
    expect(readdirSync(dir)).toEqual(['profile.env']);
  });

  test('prod refuses an empty tag', async () => {
    const dir = tempDir();
    const r = await build(['profile', ...PROD, '--image-tag', '', '--file', join(dir, 'p.env')]);
    expect(r.code).toBe(1);
    expect(readdirSync(dir)).toEqual([]);
  });

  test.each([
    ['--registry', 'ghcr.io/Owner', 'REGISTRY'],
    ['--registry', 'https://ghcr.io/owner', 'REGISTRY'],
    ['--image-prefix', 'Contain_AI!', 'IMAGE_PREFIX'],
    ['--profile', 'staging', 'PROFILE'],
  ])('refuses %s %s naming %s', async (flag, value, key) => {
    const dir = tempDir();
    const args = ['profile', ...PROD, '--image-tag', 'v1.2.3', '--file', join(dir, 'p.env')];
    args[args.indexOf(flag) + 1] = value;
    const r = await build(args);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(key);
    expect(readdirSync(dir)).toEqual([]);
  });

  test('a bad line in an existing profile is named with its line number, and the file is untouched', async () => {
    const dir = tempDir();
    const file = join(dir, 'profile.env');
    const before = 'PROFILE=dev\n# comment\nIMAGE_PREFIX=x\nthis is not an assignment\n';
    writeFileSync(file, before);
    const r = await build(['profile', ...PROD, '--image-tag', 'v1.2.3', '--file', file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${file}:4`);
    expect(readFileSync(file, 'utf8')).toBe(before);
  });

  test('a bad line is named by number only: its text (perhaps a secret) is never echoed, nor in --json', async () => {
    const dir = tempDir();
    const file = join(dir, 'profile.env');
    writeFileSync(file, 'PROFILE=dev\n-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n');
    const r = await build(['profile', ...PROD, '--image-tag', 'v1.2.3', '--file', file, '--json']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${file}:2: expected KEY=VALUE`);
    expect(r.stderr).toContain(`${file}:3: expected KEY=VALUE`);
    for (const out of [r.stderr, r.stdout]) {
      expect(out).not.toContain('BEGIN PRIVATE KEY');
      expect(out).not.toContain('MIGHAgEAMBMG');
    }
  });

  test("rewriting keeps the file's mode (0600 stays 0600); a new profile is 0644", async () => {
    const dir = tempDir();
    const kept = join(dir, 'kept.env');
    writeFileSync(kept, 'PROFILE=dev\nIMAGE_PREFIX=x\nIMAGE_TAG=devlocal\n');
    chmodSync(kept, 0o600);
    expect((await build(['profile', ...PROD, '--image-tag', 'v1.2.3', '--file', kept])).code).toBe(0);
    expect(statSync(kept).mode & 0o777).toBe(0o600);
    expect(readFileSync(kept, 'utf8')).toContain('IMAGE_TAG=v1.2.3\n');

    const fresh = join(dir, 'fresh.env');
    expect((await build(['profile', ...PROD, '--image-tag', 'v1.2.3', '--file', fresh])).code).toBe(0);
    expect(statSync(fresh).mode & 0o777).toBe(0o644);
  });
});
