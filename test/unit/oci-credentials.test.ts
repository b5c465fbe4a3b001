import { afterAll, describe, expect, test } from 'bun:test';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ContainaiError } from '../../lib/errors.ts';
import { dockerConfigCredentials, pullCredentials, pushCredentials } from '../../lib/oci/credentials.ts';
import { redact } from '../../lib/secrets.ts';
import { removeDir, tempDir } from '../helpers/cli.ts';
import { refusal } from '../helpers/refusal.ts';

const dirs: string[] = [];
afterAll(() => dirs.forEach(removeDir));

function configDir(config: unknown): string {
  const dir = tempDir('cai-docker-config-');
  dirs.push(dir);
  writeFileSync(join(dir, 'config.json'), typeof config === 'string' ? config : JSON.stringify(config));
  return dir;
}

describe("Docker's config.json", () => {
  test('auths[host].auth (base64 user:password), keyed as docker login writes it; registered as secrets', async () => {
    const password = 'pw-with:colon-1234';
    const auth = Buffer.from(`bot:${password}`).toString('base64');
    const dir = configDir({ auths: { 'https://registry.example:5000': { auth } } });
    const creds = await dockerConfigCredentials('registry.example:5000', { DOCKER_CONFIG: dir });
    expect(creds).toEqual({ username: 'bot', password, source: '$DOCKER_CONFIG/config.json' });
    expect(redact(`x ${password} ${auth}`)).toBe('x [REDACTED] [REDACTED]');
  });

  test('username/password fields; another host gets nothing', async () => {
    const dir = configDir({ auths: { 'ghcr.io': { username: 'u', password: 'p-secret-1' } } });
    expect(await dockerConfigCredentials('ghcr.io', { DOCKER_CONFIG: dir })).toMatchObject({ username: 'u', password: 'p-secret-1' });
    // Exact host match: a key for ghcr.io is not sent to ghcr.io.evil.example.
    expect(await dockerConfigCredentials('ghcr.io.evil.example', { DOCKER_CONFIG: dir })).toBeUndefined();
  });

  test('~/.docker/config.json when DOCKER_CONFIG is unset; no file means no credentials', async () => {
    const home = tempDir('cai-home-');
    dirs.push(home);
    expect(await dockerConfigCredentials('ghcr.io', { HOME: home })).toBeUndefined();
    mkdirSync(join(home, '.docker'));
    writeFileSync(join(home, '.docker', 'config.json'), JSON.stringify({ auths: { 'ghcr.io': { auth: Buffer.from('a:b-secret').toString('base64') } } }));
    expect(await dockerConfigCredentials('ghcr.io', { HOME: home })).toMatchObject({ username: 'a', source: '~/.docker/config.json' });
  });

  test('a credential helper or store is a clear error naming what to do', async () => {
    const helper = await refusal(dockerConfigCredentials('ghcr.io', { DOCKER_CONFIG: configDir({ credHelpers: { 'ghcr.io': 'gcloud' } }) }));
    expect(helper.message).toContain('docker-credential-gcloud');
    expect(helper.hint).toContain('docker login ghcr.io');
    const store = await refusal(dockerConfigCredentials('ghcr.io', { DOCKER_CONFIG: configDir({ credsStore: 'desktop', auths: { 'ghcr.io': {} } }) }));
    expect(store.message).toContain('credential store "docker-credential-desktop"');
    // A store for other hosts does not stop an anonymous pull from this one.
    expect(await dockerConfigCredentials('quay.io', { DOCKER_CONFIG: configDir({ credsStore: 'desktop', auths: { 'ghcr.io': {} } }) })).toBeUndefined();
  });

  test('a damaged file is refused, not ignored', async () => {
    expect((await refusal(dockerConfigCredentials('ghcr.io', { DOCKER_CONFIG: configDir('{not json') }))).message).toContain('is not JSON');
    const bad = await refusal(dockerConfigCredentials('ghcr.io', { DOCKER_CONFIG: configDir({ auths: { 'ghcr.io': { auth: Buffer.from('nocolon').toString('base64') } } }) }));
    expect(bad.message).toContain('not base64 of "user:password"');
  });
});

describe('which credentials', () => {
  test('pulls: config.json first, else GITHUB_TOKEN for ghcr.io only, else anonymous', async () => {
    const empty = configDir({});
    expect(await pullCredentials('ghcr.io', { DOCKER_CONFIG: empty, GITHUB_TOKEN: 'ghs_token_value_1' })).toMatchObject({ password: 'ghs_token_value_1', source: 'GITHUB_TOKEN' });
    expect(await pullCredentials('registry.example', { DOCKER_CONFIG: empty, GITHUB_TOKEN: 'ghs_token_value_1' })).toBeUndefined();
    const withConfig = configDir({ auths: { 'ghcr.io': { username: 'ops', password: 'from-config-1' } } });
    expect(await pullCredentials('ghcr.io', { DOCKER_CONFIG: withConfig, GITHUB_TOKEN: 'ghs_token_value_1' })).toMatchObject({ password: 'from-config-1' });
  });

  test('pushes: GHCR_PAT with GHCR_USER as images push takes them, else config.json', async () => {
    const dir = configDir({ auths: { 'ghcr.io': { username: 'ops', password: 'from-config-2' } } });
    expect(await pushCredentials('ghcr.io', { DOCKER_CONFIG: dir, GHCR_PAT: 'ghp_pat_value_1', GHCR_USER: 'bot' })).toMatchObject({ username: 'bot', password: 'ghp_pat_value_1', source: 'GHCR_PAT' });
    expect(await pushCredentials('ghcr.io', { DOCKER_CONFIG: dir })).toMatchObject({ password: 'from-config-2' });
    expect((await refusal(pushCredentials('ghcr.io', { DOCKER_CONFIG: dir, GHCR_PAT: 'ghp_pat_value_1' }))).message).toContain('GHCR_USER');
  });
});
