/**
 * Manifests and blobs of one repository (distribution-spec 1.1): get, head
 * and put a manifest; head, upload and fetch a blob; list tags. Every byte
 * that comes back is checked against the digest that names it: a manifest
 * fetched by tag against the registry's Docker-Content-Digest (and the
 * digest we compute is the one we use), a manifest or blob fetched by digest
 * against that digest.
 */
import { ContainaiError } from '../errors.ts';
import { printableName } from '../text.ts';
import { readBytesLimited } from './auth.ts';
import type { RegistryClient } from './client.ts';
import { DIGEST } from './reference.ts';
import { digestOf, MANIFEST_ACCEPT, MAX_MANIFEST_BYTES, type Descriptor } from './types.ts';

export interface FetchedManifest {
  digest: string;
  bytes: Uint8Array;
  mediaType: string;
}

function mismatch(what: string, where: string, expected: string, actual: string): ContainaiError {
  return new ContainaiError('VERIFY', `${what} from ${where} does not match its digest (expected ${expected}, got ${actual})`, {
    hint: 'the registry or something between served other bytes than the digest names: do not use it; tell the registry operator',
  });
}

/** GET a manifest by tag or digest; its bytes are checked against the digest that names them. */
export async function getManifest(client: RegistryClient, reference: string, signal?: AbortSignal): Promise<FetchedManifest> {
  const what = `manifest ${printableName(reference)}`;
  const response = await client.send({ method: 'GET', path: client.repoPath(`manifests/${reference}`), headers: { accept: MANIFEST_ACCEPT }, what, signal });
  const bytes = await readBytesLimited(response, MAX_MANIFEST_BYTES).catch((err) => {
    throw new ContainaiError('INPUT', `${what} at ${client.where} is larger than ${MAX_MANIFEST_BYTES} bytes: not a release`, { cause: err, hint: 'check the reference: it does not name a containai release' });
  });
  const digest = digestOf(bytes);
  const claimed = response.headers.get('docker-content-digest');
  if (DIGEST.test(reference) && digest !== reference) throw mismatch(what, client.where, reference, digest);
  if (claimed && DIGEST.test(claimed) && claimed !== digest) throw mismatch(what, client.where, claimed, digest);
  return { digest, bytes, mediaType: (response.headers.get('content-type') ?? '').split(';')[0]?.trim() ?? '' };
}

/** HEAD a manifest: its digest without its body, or undefined when there is none. */
export async function headManifest(client: RegistryClient, reference: string, signal?: AbortSignal): Promise<{ digest: string; mediaType: string; size: number } | undefined> {
  const what = `manifest ${printableName(reference)}`;
  const response = await client.send({ method: 'HEAD', path: client.repoPath(`manifests/${reference}`), headers: { accept: MANIFEST_ACCEPT }, what, signal, accept: (s) => s === 200 || s === 404 });
  if (response.status === 404) return undefined;
  const digest = response.headers.get('docker-content-digest') ?? '';
  if (!DIGEST.test(digest)) {
    // A registry that does not say the digest on HEAD: the body says it.
    const fetched = await getManifest(client, reference, signal);
    return { digest: fetched.digest, mediaType: fetched.mediaType, size: fetched.bytes.byteLength };
  }
  if (DIGEST.test(reference) && digest !== reference) throw mismatch(what, client.where, reference, digest);
  return { digest, mediaType: (response.headers.get('content-type') ?? '').split(';')[0]?.trim() ?? '', size: Number(response.headers.get('content-length') ?? 0) };
}

/** PUT a manifest under a tag or its digest; returns the OCI-Subject header (set by registries with the referrers API). */
export async function putManifest(client: RegistryClient, reference: string, bytes: Uint8Array, mediaType: string, signal?: AbortSignal): Promise<{ digest: string; subject?: string }> {
  const digest = digestOf(bytes);
  const response = await client.send({
    method: 'PUT',
    path: client.repoPath(`manifests/${reference}`),
    headers: { 'content-type': mediaType },
    body: () => bytes,
    what: `manifest ${printableName(reference)}`,
    signal,
  });
  await response.body?.cancel().catch(() => undefined);
  const stored = response.headers.get('docker-content-digest');
  if (stored && DIGEST.test(stored) && stored !== digest) throw mismatch(`the manifest stored as ${printableName(reference)}`, client.where, digest, stored);
  return { digest, subject: response.headers.get('oci-subject') ?? undefined };
}

export async function blobExists(client: RegistryClient, digest: string, signal?: AbortSignal): Promise<boolean> {
  const response = await client.send({ method: 'HEAD', path: client.repoPath(`blobs/${digest}`), what: `blob ${digest}`, signal, accept: (s) => s === 200 || s === 404 });
  return response.status === 200;
}

/**
 * Uploads a blob unless the registry has it (HEAD first): POST opens an
 * upload session, one PUT with ?digest= sends the bytes (monolithic upload).
 */
export async function uploadBlob(client: RegistryClient, descriptor: Pick<Descriptor, 'digest' | 'size'>, body: () => Bun.BodyInit, signal?: AbortSignal): Promise<'exists' | 'uploaded'> {
  if (await blobExists(client, descriptor.digest, signal)) return 'exists';
  const what = `upload of blob ${descriptor.digest}`;
  const started = await client.send({ method: 'POST', path: client.repoPath('blobs/uploads/'), what, signal, accept: (s) => s === 202 });
  await started.body?.cancel().catch(() => undefined);
  const location = started.headers.get('location');
  if (!location) throw new ContainaiError('NETWORK', `${what}: the registry opened no upload session (no Location)`, { hint: 'the registry (or something between) answered what no registry should: try again; if it persists, tell its operator' });
  const target = new URL(location, client.base);
  target.searchParams.set('digest', descriptor.digest);
  const done = await client.send({
    method: 'PUT',
    path: target.href,
    headers: { 'content-type': 'application/octet-stream', 'content-length': String(descriptor.size) },
    body,
    what,
    signal,
    accept: (s) => s === 201,
  });
  await done.body?.cancel().catch(() => undefined);
  return 'uploaded';
}

/** Fetches a small blob whole (a signature, SHA256SUMS), checked against its size and digest. */
export async function fetchSmallBlob(client: RegistryClient, descriptor: Descriptor, maxBytes: number, label: string, signal?: AbortSignal): Promise<Uint8Array> {
  if (descriptor.size > maxBytes) {
    throw new ContainaiError('INPUT', `${label} at ${client.where} is ${descriptor.size} bytes, more than the ${maxBytes} such a file may have`, { hint: 'the artifact is not a containai release, or is damaged' });
  }
  const response = await client.send({ method: 'GET', path: client.repoPath(`blobs/${descriptor.digest}`), what: `${label} (blob ${descriptor.digest})`, signal });
  const bytes = await readBytesLimited(response, descriptor.size);
  const digest = digestOf(bytes);
  if (bytes.byteLength !== descriptor.size || digest !== descriptor.digest) throw mismatch(label, client.where, descriptor.digest, digest);
  return bytes;
}

/** Every tag of the repository (following the Link header's pages, bounded). */
export async function listTags(client: RegistryClient, signal?: AbortSignal): Promise<string[]> {
  const tags: string[] = [];
  let path: string | undefined = client.repoPath('tags/list?n=1000');
  for (let page = 0; path && page < 100; page++) {
    const response: Response = await client.send({ method: 'GET', path, what: 'the list of tags', signal });
    const text = new TextDecoder().decode(await readBytesLimited(response, 16 * 1024 * 1024));
    let json: { tags?: unknown };
    try {
      json = JSON.parse(text);
    } catch {
      throw new ContainaiError('NETWORK', `the list of tags at ${client.where} is not JSON`, { hint: 'the registry (or something between) answered what no registry should: try again; if it persists, tell its operator' });
    }
    if (Array.isArray(json.tags)) tags.push(...json.tags.filter((t): t is string => typeof t === 'string'));
    const link = /<([^>]+)>\s*;\s*rel="?next"?/.exec(response.headers.get('link') ?? '')?.[1];
    path = link ? new URL(link, client.base).href : undefined;
    if (path && new URL(path).origin !== client.base.origin) path = undefined;
  }
  return tags;
}
