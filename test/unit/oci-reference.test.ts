import { describe, expect, test } from 'bun:test';
import { ContainaiError } from '../../lib/errors.ts';
import { parseChallenges } from '../../lib/oci/auth.ts';
import { formatReference, parseLayoutReference, parseOciReference, parseRegistryReference, registryBaseUrl } from '../../lib/oci/reference.ts';

const D = `sha256:${'a'.repeat(64)}`;

function refusal(fn: () => unknown): ContainaiError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ContainaiError);
    return err as ContainaiError;
  }
  throw new Error('expected a refusal');
}

describe('oci:// references', () => {
  test('host, port, nested repository, tag or digest', () => {
    expect(parseRegistryReference('oci://ghcr.io/acme/containai-release:stable')).toEqual({
      kind: 'registry', registry: 'ghcr.io', hostname: 'ghcr.io', port: undefined, repository: 'acme/containai-release', tag: 'stable', digest: undefined,
    });
    const local = parseRegistryReference(`oci://127.0.0.1:5000/a/b/c@${D}`);
    expect(local).toMatchObject({ registry: '127.0.0.1:5000', port: 5000, repository: 'a/b/c', digest: D, tag: undefined });
    expect(parseRegistryReference('oci://[::1]:5000/x')).toMatchObject({ hostname: '[::1]', registry: '[::1]:5000' });
    expect(parseRegistryReference('oci://Registry.Example.COM/x')).toMatchObject({ registry: 'registry.example.com' });
    expect(parseRegistryReference('oci://r.example/x').tag).toBeUndefined();
  });

  test('plain http only for loopback registries', () => {
    expect(registryBaseUrl(parseRegistryReference('oci://127.0.0.1:5000/x')).protocol).toBe('http:');
    expect(registryBaseUrl(parseRegistryReference('oci://localhost:5000/x')).protocol).toBe('http:');
    expect(registryBaseUrl(parseRegistryReference('oci://[::1]:5000/x')).protocol).toBe('http:');
    expect(registryBaseUrl(parseRegistryReference('oci://ghcr.io/x')).protocol).toBe('https:');
    expect(registryBaseUrl(parseRegistryReference('oci://10.0.0.1:5000/x')).protocol).toBe('https:');
    expect(registryBaseUrl(parseRegistryReference('oci://127.example.com/x')).protocol).toBe('https:');
    expect(registryBaseUrl(parseRegistryReference('oci://docker.io/library/x')).host).toBe('registry-1.docker.io');
  });

  test.each([
    ['ghcr.io/acme/x', 'does not start with oci://'],
    ['oci://ghcr.io', 'repository is missing'],
    ['oci://ghcr.io/', 'repository is missing'],
    ['oci://ghcr.io/Acme/x', 'lowercase'],
    ['oci://ghcr.io/acme//x', 'lowercase'],
    ['oci://ghcr.io/acme/x:', 'a tag is'],
    ['oci://ghcr.io/acme/x:-bad', 'a tag is'],
    [`oci://ghcr.io/acme/x:${'t'.repeat(129)}`, 'a tag is'],
    ['oci://ghcr.io/acme/x@sha256:abc', 'a digest is'],
    [`oci://ghcr.io/acme/x@sha512:${'a'.repeat(128)}`, 'a digest is'],
    [`oci://ghcr.io/acme/x:v1@${D}`, 'not both'],
    ['oci://ghcr.io:0/x', 'a port is'],
    ['oci://ghcr.io:99999/x', 'a port is'],
    ['oci://ghcr.io:http/x', 'a port is'],
    ['oci://gh_cr.io/x', 'not a host'],
    ['oci://ghcr.io/x?y=1', 'not allowed'],
    ['oci://ghcr.io/x y', 'not allowed'],
  ])('refuses %s', (text, problem) => {
    const err = refusal(() => parseRegistryReference(text));
    expect(err.code).toBe('USAGE');
    expect(err.message).toContain(problem);
    expect(err.hint).toContain('oci://');
  });

  test('credentials in the reference are refused and never echoed', () => {
    const err = refusal(() => parseRegistryReference('oci://bot:s3cret-pass@ghcr.io/acme/x'));
    expect(err.code).toBe('USAGE');
    expect(`${err.message} ${err.hint}`).not.toContain('s3cret-pass');
  });

  test('a control character in a refused reference is escaped', () => {
    const err = refusal(() => parseRegistryReference('oci://ghcr.io/acme/x:\u001b[31m'));
    expect(err.message).not.toContain('\u001b');
  });

  test('formatReference round-trips', () => {
    for (const text of ['oci://ghcr.io/acme/x:stable', `oci://127.0.0.1:5000/a/b@${D}`, 'oci://ghcr.io/acme/x']) {
      expect(formatReference(parseRegistryReference(text))).toBe(text);
    }
  });
});

describe('oci-layout: references', () => {
  test('folder, tag, digest', () => {
    expect(parseLayoutReference('oci-layout:/srv/mirror')).toEqual({ kind: 'layout', dir: '/srv/mirror', tag: undefined, digest: undefined });
    expect(parseLayoutReference('oci-layout:/srv/mirror:v1.2.3')).toMatchObject({ dir: '/srv/mirror', tag: 'v1.2.3' });
    expect(parseLayoutReference(`oci-layout:rel/dir@${D}`)).toMatchObject({ dir: 'rel/dir', digest: D });
    // A folder whose name holds ':' is written with a trailing slash.
    expect(parseLayoutReference('oci-layout:/srv/a:b/')).toMatchObject({ dir: '/srv/a:b/', tag: undefined });
    expect(parseOciReference('oci-layout:/x:stable').kind).toBe('layout');
    expect(parseOciReference('oci://ghcr.io/x').kind).toBe('registry');
  });

  test('refuses an empty folder or a bad tag', () => {
    expect(refusal(() => parseLayoutReference('oci-layout:')).message).toContain('folder is missing');
    expect(refusal(() => parseLayoutReference('oci-layout::v1')).message).toContain('folder is missing');
    expect(refusal(() => parseLayoutReference('oci-layout:/x:bad tag')).message).toContain('a tag is');
  });
});

describe('WWW-Authenticate', () => {
  test('bearer with quoted parameters, commas inside quotes', () => {
    const [c] = parseChallenges('Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:acme/x:pull,push"');
    expect(c).toEqual({ scheme: 'bearer', params: { realm: 'https://ghcr.io/token', service: 'ghcr.io', scope: 'repository:acme/x:pull,push' } });
  });
  test('basic, and several challenges', () => {
    const list = parseChallenges('Basic realm="registry", Bearer realm="https://a/token",service=a');
    expect(list.map((c) => c.scheme)).toEqual(['basic', 'bearer']);
    expect(list[1]?.params).toEqual({ realm: 'https://a/token', service: 'a' });
  });
});
