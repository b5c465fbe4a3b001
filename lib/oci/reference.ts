/**
 * Where a release lives, as a user types it:
 *
 *   oci://HOST[:PORT]/REPO[:TAG|@sha256:HEX]     a registry
 *   oci-layout:DIR[:TAG|@sha256:HEX]             an OCI image layout on disk
 *
 * Parsed strictly, by the grammar of the distribution spec (repository names
 * are lowercase path components, tags at most 128 characters, digests sha256
 * only), because a reference names where credentials are sent and what is
 * installed: nothing is guessed. Credentials in the reference
 * (oci://user:pass@host) are refused, never used: they would sit in argv, in
 * shell history and in `ps`.
 *
 * Plain http is used only for loopback registries (127.0.0.0/8, ::1,
 * localhost), as Docker does; everything else is https.
 */
import { z } from 'zod';
import { ContainaiError } from '../errors.ts';
import { printableName } from '../text.ts';

export const REGISTRY_SCHEME = 'oci://';
export const LAYOUT_SCHEME = 'oci-layout:';

export interface RegistryReference {
  kind: 'registry';
  /** host[:port] as typed (hostname lowercased): what credentials are keyed by. */
  registry: string;
  hostname: string;
  port?: number;
  /** The repository path, e.g. acme/containai-release. */
  repository: string;
  tag?: string;
  digest?: string;
}

export interface LayoutReference {
  kind: 'layout';
  dir: string;
  tag?: string;
  digest?: string;
}

export type OciReference = RegistryReference | LayoutReference;

// distribution/reference's grammar.
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$/;
export const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
export const DIGEST = /^sha256:[0-9a-f]{64}$/;
const HOST_LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
const IPV4 = /^(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const IPV6 = /^\[[0-9A-Fa-f:.]+\]$/;
const MAX_REPOSITORY = 255;

const TagSchema = z.string().regex(TAG, 'a tag is 1-128 of A-Z a-z 0-9 _ . - (not starting with . or -)');
const DigestSchema = z.string().regex(DIGEST, 'a digest is sha256: and 64 lowercase hex digits (other algorithms are not accepted)');

const RepositorySchema = z
  .string()
  .min(1, 'the repository is missing')
  .max(MAX_REPOSITORY, `a repository name is at most ${MAX_REPOSITORY} characters`)
  .refine((r) => r.split('/').every((c) => PATH_COMPONENT.test(c)), 'a repository is lowercase path components of a-z 0-9 separated by . _ __ or -, joined by /');

const HostSchema = z
  .string()
  .min(1, 'the registry host is missing')
  .refine((h) => h === 'localhost' || IPV4.test(h) || IPV6.test(h) || h.split('.').every((l) => HOST_LABEL.test(l)), 'not a host name or IP address');

const PortSchema = z
  .string()
  .regex(/^\d{1,5}$/, 'a port is a number')
  .transform(Number)
  .refine((p) => p >= 1 && p <= 65535, 'a port is 1-65535');

function refused(flag: string, text: string, problem: string, example: string): ContainaiError {
  return new ContainaiError('USAGE', `${flag} "${printableName(text)}" is not a valid reference: ${problem}`, { hint: `e.g. ${flag} ${example}` });
}

function check<T>(schema: z.ZodType<T>, value: string, fail: (problem: string) => ContainaiError): T {
  const result = schema.safeParse(value);
  if (!result.success) throw fail(result.error.issues.map((i) => i.message).join('; '));
  return result.data;
}

/** Splits "NAME[:TAG|@DIGEST]" where NAME holds no ':' after its last '/'. */
function splitTagOrDigest(text: string, fail: (problem: string) => ContainaiError): { name: string; tag?: string; digest?: string } {
  const at = text.indexOf('@');
  if (at >= 0) {
    const name = text.slice(0, at);
    const digest = check(DigestSchema, text.slice(at + 1), fail);
    if (name.lastIndexOf(':') > name.lastIndexOf('/')) throw fail('give a tag or a digest, not both');
    return { name, digest };
  }
  const colon = text.lastIndexOf(':');
  if (colon > text.lastIndexOf('/')) {
    return { name: text.slice(0, colon), tag: check(TagSchema, text.slice(colon + 1), fail) };
  }
  return { name: text };
}

/** oci://HOST[:PORT]/REPO[:TAG|@DIGEST]. */
export function parseRegistryReference(text: string, flag = '--from'): RegistryReference {
  const example = 'oci://ghcr.io/acme/containai-release:stable';
  const fail = (problem: string) => refused(flag, text, problem, example);
  if (!text.startsWith(REGISTRY_SCHEME)) throw fail(`it does not start with ${REGISTRY_SCHEME}`);
  const rest = text.slice(REGISTRY_SCHEME.length);
  if (/[\s?#\\]/.test(rest)) throw fail('spaces, "?", "#" and "\\" are not allowed');
  const slash = rest.indexOf('/');
  if (slash < 0) throw fail('the repository is missing (oci://HOST/REPO)');
  const authority = rest.slice(0, slash);
  if (authority.includes('@')) {
    // Printing the reference would print the password: say what is wrong without it.
    throw new ContainaiError('USAGE', `${flag}: credentials in the reference are refused (they would be visible in the process list)`, {
      hint: 'log in with `docker login` (Docker config.json), or set GITHUB_TOKEN for ghcr.io; give oci://HOST/REPO only',
    });
  }
  const portMatch = /^(\[[^\]]*\]|[^:]*)(?::(.*))?$/.exec(authority);
  const hostname = check(HostSchema, (portMatch?.[1] ?? '').toLowerCase(), fail);
  const port = portMatch?.[2] !== undefined ? check(PortSchema, portMatch[2], fail) : undefined;
  const { name, tag, digest } = splitTagOrDigest(rest.slice(slash + 1), fail);
  const repository = check(RepositorySchema, name, fail);
  return { kind: 'registry', registry: port === undefined ? hostname : `${hostname}:${port}`, hostname, port, repository, tag, digest };
}

/** oci-layout:DIR[:TAG|@DIGEST]; a folder whose last component holds ':' is written with a trailing '/'. */
export function parseLayoutReference(text: string, flag = '--from'): LayoutReference {
  const fail = (problem: string) => refused(flag, text, problem, 'oci-layout:/srv/mirror/containai:v1.2.3');
  if (!text.startsWith(LAYOUT_SCHEME)) throw fail(`it does not start with ${LAYOUT_SCHEME}`);
  const rest = text.slice(LAYOUT_SCHEME.length);
  if (/[\u0000-\u001f]/.test(rest)) throw fail('control characters are not allowed');
  const { name, tag, digest } = splitTagOrDigest(rest, fail);
  if (!name) throw fail('the folder is missing');
  return { kind: 'layout', dir: name, tag, digest };
}

export function parseOciReference(text: string, flag = '--from'): OciReference {
  if (text.startsWith(LAYOUT_SCHEME)) return parseLayoutReference(text, flag);
  return parseRegistryReference(text, flag);
}

export function isOciReference(text: string): boolean {
  return text.startsWith(REGISTRY_SCHEME) || text.startsWith(LAYOUT_SCHEME);
}

/** The reference as text, safe to print and record (it never holds credentials). */
export function formatReference(ref: OciReference, override: { tag?: string; digest?: string } = {}): string {
  const tag = override.digest ? undefined : (override.tag ?? ref.tag);
  const digest = override.digest ?? (override.tag ? undefined : ref.digest);
  const suffix = digest ? `@${digest}` : tag ? `:${tag}` : '';
  return ref.kind === 'registry' ? `${REGISTRY_SCHEME}${ref.registry}/${ref.repository}${suffix}` : `${LAYOUT_SCHEME}${ref.dir}${suffix}`;
}

const LOOPBACK_NAMES = new Set(['localhost', '[::1]', '::1']);

export function isLoopbackHost(hostname: string): boolean {
  return LOOPBACK_NAMES.has(hostname) || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname);
}

/** Docker Hub's name is not where its API answers. */
const API_HOSTS: Record<string, string> = { 'docker.io': 'registry-1.docker.io', 'index.docker.io': 'registry-1.docker.io' };

/** https://HOST[:PORT], or http:// for a loopback registry (as Docker treats localhost as insecure-allowed). */
export function registryBaseUrl(ref: Pick<RegistryReference, 'registry' | 'hostname'>): URL {
  return new URL(`${isLoopbackHost(ref.hostname) ? 'http' : 'https'}://${API_HOSTS[ref.registry] ?? ref.registry}`);
}

export function assertTag(value: string, flag: string): string {
  if (!TAG.test(value)) {
    throw new ContainaiError('USAGE', `${flag} "${printableName(value)}" is not a valid tag`, {
      hint: 'a tag is 1-128 of A-Z a-z 0-9 _ . - and does not start with . or -',
    });
  }
  return value;
}
