/** Registry credentials: where they come from, and that they are redacted everywhere from the moment they are read. */
import { describe, expect, test } from 'bun:test';
import { Readable } from 'node:stream';
import { registryAuthFromEnv, registryHost } from '../../lib/images/auth.ts';
import { engineEvents, eventError, wrapEngineError } from '../../lib/images/events.ts';
import { splitReference } from '../../lib/images/push.ts';
import { redact } from '../../lib/secrets.ts';

describe('registry credentials', () => {
  test('the auth is for the host part of REGISTRY', () => {
    expect(registryHost('ghcr.io/owner')).toBe('ghcr.io');
    expect(registryHost('127.0.0.1:5000/team/sub')).toBe('127.0.0.1:5000');
  });

  test('GHCR_PAT and GHCR_USER win over GITHUB_TOKEN and GITHUB_ACTOR', () => {
    const auth = registryAuthFromEnv('ghcr.io/acme', {
      GHCR_PAT: 'ghp_pat-value-1',
      GITHUB_TOKEN: 'ghs_token-value-1',
      GHCR_USER: 'bot',
      GITHUB_ACTOR: 'someone',
    });
    expect(auth).toEqual({ username: 'bot', password: 'ghp_pat-value-1', serveraddress: 'ghcr.io' });
  });

  test('falls back to GITHUB_TOKEN and GITHUB_ACTOR, and registers the token as a secret', () => {
    const token = `ghs_${crypto.randomUUID()}`;
    const auth = registryAuthFromEnv('ghcr.io/acme', { GITHUB_TOKEN: token, GITHUB_ACTOR: 'octocat' });
    expect(auth.username).toBe('octocat');
    expect(redact(`engine said: bad password ${token}`)).toBe('engine said: bad password [REDACTED]');
    // The X-Registry-Auth header value, should anything echo it.
    const header = Buffer.from(JSON.stringify(auth)).toString('base64url');
    expect(redact(`header ${header}`)).not.toContain(header);
  });

  test('refuses a push without a token or without a user, naming the variables', () => {
    expect(() => registryAuthFromEnv('ghcr.io/acme', { GHCR_USER: 'bot' })).toThrow(/GHCR_PAT \(or GITHUB_TOKEN\)/);
    expect(() => registryAuthFromEnv('ghcr.io/acme', { GHCR_PAT: 'ghp_secret-2' })).toThrow(/GHCR_USER \(or GITHUB_ACTOR\)/);
  });
});

describe('engine output', () => {
  test('JSON lines split across chunks are read whole; errors are redacted', async () => {
    const secret = `pw-${crypto.randomUUID()}`;
    registryAuthFromEnv('ghcr.io/acme', { GHCR_PAT: secret, GHCR_USER: 'bot' });
    const text = `{"stream":"Step 1/2 : FROM scratch\\n"}\n{"aux":{"ID":"sha256:ab"}}\n{"errorDetail":{"message":"denied for ${secret}"},"error":"x"}\n`;
    const chunks = [text.slice(0, 7), text.slice(7, 50), text.slice(50)].map((s) => Buffer.from(s));
    const events = [];
    for await (const e of engineEvents(Readable.from(chunks))) events.push(e);
    expect(events).toHaveLength(3);
    expect(events[0]!.stream).toBe('Step 1/2 : FROM scratch\n');
    expect(events[1]!.aux?.ID).toBe('sha256:ab');
    expect(eventError(events[2]!)).toBe('denied for [REDACTED]');
  });

  test("dockerode's HTTP errors become one redacted line with the engine's message", () => {
    const secret = `pw-${crypto.randomUUID()}`;
    registryAuthFromEnv('ghcr.io/acme', { GHCR_PAT: secret, GHCR_USER: 'bot' });
    const err = Object.assign(new Error('(HTTP code 500) server error'), { statusCode: 500, json: { message: `login with ${secret} failed` } });
    const wrapped = wrapEngineError(err, 'push of image "proxy" failed', 'NETWORK');
    expect(wrapped.code).toBe('NETWORK');
    expect(wrapped.message).toBe('push of image "proxy" failed: login with [REDACTED] failed');
  });

  test("dockerode's own prefix is dropped so the engine's words come first", () => {
    const err = new Error('(HTTP code 400) unexpected - dockerfile parse error line 1: unknown instruction: FORM ');
    expect(wrapEngineError(err, 'image "a" failed to build').message).toBe('image "a" failed to build: dockerfile parse error line 1: unknown instruction: FORM');
  });

  test('a reference splits at the tag, not at the registry port', () => {
    expect(splitReference('127.0.0.1:5000/team/containai-proxy:v1.2.3')).toEqual({ repository: '127.0.0.1:5000/team/containai-proxy', tag: 'v1.2.3' });
    expect(splitReference('127.0.0.1:5000/team/x')).toEqual({ repository: '127.0.0.1:5000/team/x', tag: 'latest' });
  });
});
