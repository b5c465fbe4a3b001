/**
 * Referrers (distribution-spec 1.1): manifests whose `subject` is another
 * manifest, here the release's signatures and attestation attached to the
 * release manifest, so tools that look for them beside an artifact find them.
 *
 * Where the registry has the referrers API (GET /v2/<name>/referrers/<digest>),
 * it keeps the list itself and says so by answering a manifest PUT with an
 * `OCI-Subject` header. Where it does not (Debian's docker-registry 2.8, GHCR
 * today), the client keeps the list: an image index tagged `sha256-<hex>`
 * (the referrers tag schema), read, extended and written back.
 */
import { ContainaiError } from '../errors.ts';
import { readBytesLimited } from './auth.ts';
import type { RegistryClient } from './client.ts';
import { getManifest, putManifest } from './registry.ts';
import {
  ANNOTATION_CREATED,
  ANNOTATION_TITLE,
  canonicalBytes,
  digestOf,
  EMPTY_CONFIG_BYTES,
  EMPTY_DIGEST,
  ImageIndexSchema,
  MAX_MANIFEST_BYTES,
  MEDIA_TYPE_EMPTY,
  MEDIA_TYPE_IMAGE_INDEX,
  MEDIA_TYPE_IMAGE_MANIFEST,
  parseJsonDocument,
  referrersTag,
  type Descriptor,
  type ImageIndex,
} from './types.ts';

export const EMPTY_CONFIG: Descriptor = { mediaType: MEDIA_TYPE_EMPTY, digest: EMPTY_DIGEST, size: EMPTY_CONFIG_BYTES.byteLength };

export interface ReferrerManifest {
  bytes: Uint8Array;
  /** The descriptor an index lists it by (artifactType and annotations included, as the spec asks). */
  descriptor: Descriptor;
}

/** A referrer manifest holding one file (a layer already in the repository) with `subject` = the release. */
export function referrerManifest(subject: Descriptor, layer: Descriptor, artifactType: string, created: string): ReferrerManifest {
  const annotations = { [ANNOTATION_CREATED]: created, ...(layer.annotations?.[ANNOTATION_TITLE] ? { [ANNOTATION_TITLE]: layer.annotations[ANNOTATION_TITLE] } : {}) };
  const doc = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPE_IMAGE_MANIFEST,
    artifactType,
    config: EMPTY_CONFIG,
    layers: [layer],
    subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size },
    annotations,
  };
  const bytes = canonicalBytes(doc);
  return { bytes, descriptor: { mediaType: MEDIA_TYPE_IMAGE_MANIFEST, digest: digestOf(bytes), size: bytes.byteLength, artifactType, annotations } };
}

export interface AttachResult {
  /** How the registry keeps the list: its referrers API, or the sha256-<hex> tag we wrote. */
  via: 'referrers-api' | 'tag-schema';
  referrers: Descriptor[];
}

/** Pushes the referrer manifests; where the registry has no referrers API, merges them into the tag-schema index. */
export async function attachReferrers(client: RegistryClient, subject: Descriptor, referrers: readonly ReferrerManifest[]): Promise<AttachResult> {
  let apiKeepsList = referrers.length > 0;
  for (const referrer of referrers) {
    const { subject: echoed } = await putManifest(client, referrer.descriptor.digest, referrer.bytes, MEDIA_TYPE_IMAGE_MANIFEST);
    if (echoed !== subject.digest) apiKeepsList = false;
  }
  const descriptors = referrers.map((r) => r.descriptor);
  if (apiKeepsList) return { via: 'referrers-api', referrers: descriptors };
  const tag = referrersTag(subject.digest);
  const existing = await readTagSchemaIndex(client, subject.digest);
  const listed = new Set(existing?.manifests.map((m) => m.digest) ?? []);
  const missing = descriptors.filter((d) => !listed.has(d.digest));
  if (existing && missing.length === 0) return { via: 'tag-schema', referrers: existing.manifests };
  const index: ImageIndex = { schemaVersion: 2, mediaType: MEDIA_TYPE_IMAGE_INDEX, manifests: [...(existing?.manifests ?? []), ...missing] };
  await putManifest(client, tag, canonicalBytes(index), MEDIA_TYPE_IMAGE_INDEX);
  return { via: 'tag-schema', referrers: index.manifests };
}

async function readTagSchemaIndex(client: RegistryClient, subjectDigest: string): Promise<ImageIndex | undefined> {
  const tag = referrersTag(subjectDigest);
  try {
    const fetched = await getManifest(client, tag);
    return parseJsonDocument(fetched.bytes, ImageIndexSchema, `the referrers index ${tag} at ${client.where}`, 'remove the tag and publish again');
  } catch (err) {
    if (err instanceof ContainaiError && err.code === 'NOT_FOUND') return undefined;
    throw err;
  }
}

/**
 * The manifests that refer to `subjectDigest`: from the referrers API where
 * the registry has it (any answer but 404), else from the tag-schema index.
 * Optionally only those of one artifactType.
 */
export async function listReferrers(client: RegistryClient, subjectDigest: string, artifactType?: string): Promise<{ via: AttachResult['via']; referrers: Descriptor[] }> {
  const query = artifactType ? `?artifactType=${encodeURIComponent(artifactType)}` : '';
  const response = await client.send({
    method: 'GET',
    path: client.repoPath(`referrers/${subjectDigest}${query}`),
    headers: { accept: MEDIA_TYPE_IMAGE_INDEX },
    what: `the referrers of ${subjectDigest}`,
    accept: (s) => s === 200 || s === 404,
  });
  if (response.status === 200 && (response.headers.get('content-type') ?? '').startsWith(MEDIA_TYPE_IMAGE_INDEX)) {
    const bytes = await readBytesLimited(response, MAX_MANIFEST_BYTES);
    const index = parseJsonDocument(bytes, ImageIndexSchema, `the referrers of ${subjectDigest} at ${client.where}`, 'the registry answered the referrers API with something else; tell its operator');
    return { via: 'referrers-api', referrers: index.manifests.filter((m) => !artifactType || m.artifactType === artifactType) };
  }
  await response.body?.cancel().catch(() => undefined);
  const index = await readTagSchemaIndex(client, subjectDigest);
  return { via: 'tag-schema', referrers: (index?.manifests ?? []).filter((m) => !artifactType || m.artifactType === artifactType) };
}
