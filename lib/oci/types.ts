/**
 * The OCI documents we read and write (image-spec 1.1): descriptors, image
 * manifests, image indexes. What comes from a registry or a layout on disk
 * is parsed with these schemas; unknown fields are allowed (the specs say
 * readers must ignore them), the fields we use are checked. Only sha256
 * digests are accepted.
 */
import { z } from 'zod';
import { sha256Bytes } from '../digest.ts';
import { ContainaiError } from '../errors.ts';
import { DIGEST } from './reference.ts';

export const MEDIA_TYPE_IMAGE_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const MEDIA_TYPE_IMAGE_INDEX = 'application/vnd.oci.image.index.v1+json';
export const MEDIA_TYPE_EMPTY = 'application/vnd.oci.empty.v1+json';
export const MEDIA_TYPE_LAYOUT_HEADER = 'application/vnd.oci.layout.header.v1+json';
/** What we accept when asking for a manifest; Docker's types are named so a registry does not convert. */
export const MANIFEST_ACCEPT = [
  MEDIA_TYPE_IMAGE_MANIFEST,
  MEDIA_TYPE_IMAGE_INDEX,
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
].join(', ');

export const ANNOTATION_TITLE = 'org.opencontainers.image.title';
export const ANNOTATION_REF_NAME = 'org.opencontainers.image.ref.name';
export const ANNOTATION_CREATED = 'org.opencontainers.image.created';
export const ANNOTATION_VERSION = 'org.opencontainers.image.version';
export const ANNOTATION_SOURCE = 'org.opencontainers.image.source';
export const ANNOTATION_REVISION = 'org.opencontainers.image.revision';

/** The empty JSON object, `{}`: the config of an artifact that has none (image-spec 1.1). */
export const EMPTY_CONFIG_BYTES = new TextEncoder().encode('{}');
export const EMPTY_DIGEST = 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a';

/** Manifests larger than this are refused (distribution's own limit is 4 MiB). */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

const MEDIA_TYPE = /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$/;

export const DigestSchema = z.string().regex(DIGEST, 'not a sha256 digest');
const Annotations = z.record(z.string(), z.string());

export const DescriptorSchema = z.looseObject({
  mediaType: z.string().regex(MEDIA_TYPE, 'not a media type'),
  digest: DigestSchema,
  size: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  annotations: Annotations.optional(),
  artifactType: z.string().regex(MEDIA_TYPE, 'not a media type').optional(),
  urls: z.array(z.string()).optional(),
});
export type Descriptor = z.infer<typeof DescriptorSchema>;

export const ImageManifestSchema = z.looseObject({
  schemaVersion: z.literal(2),
  mediaType: z.literal(MEDIA_TYPE_IMAGE_MANIFEST),
  artifactType: z.string().optional(),
  config: DescriptorSchema,
  layers: z.array(DescriptorSchema),
  subject: DescriptorSchema.optional(),
  annotations: Annotations.optional(),
});
export type ImageManifest = z.infer<typeof ImageManifestSchema>;

export const ImageIndexSchema = z.looseObject({
  schemaVersion: z.literal(2),
  mediaType: z.literal(MEDIA_TYPE_IMAGE_INDEX).optional(),
  artifactType: z.string().optional(),
  manifests: z.array(DescriptorSchema),
  subject: DescriptorSchema.optional(),
  annotations: Annotations.optional(),
});
export type ImageIndex = z.infer<typeof ImageIndexSchema>;

/** "sha256:…" → the 64 hex digits. */
export function digestHex(digest: string): string {
  return digest.slice('sha256:'.length);
}

export function digestOf(bytes: Uint8Array | string): string {
  return `sha256:${sha256Bytes(bytes)}`;
}

/** Every problem of a zod parse, as "path: message", at most a few. */
export function zodProblems(error: z.ZodError, max = 5): string {
  return error.issues
    .slice(0, max)
    .map((i) => `${i.path.length ? i.path.join('.') : '(top)'}: ${i.message}`)
    .join('; ');
}

/** Parses JSON from outside with a schema; what is wrong is said, naming `what`. */
export function parseJsonDocument<T>(bytes: Uint8Array, schema: z.ZodType<T>, what: string, hint: string): T {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    throw new ContainaiError('INPUT', `${what} is not JSON`, { hint });
  }
  const result = schema.safeParse(json);
  if (!result.success) throw new ContainaiError('INPUT', `${what} is not valid: ${zodProblems(result.error)}`, { hint });
  return result.data;
}

/** JSON as it is pushed: compact, keys in the order written; the digest is over exactly these bytes. */
export function canonicalBytes(doc: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(doc));
}

/** The referrers tag schema (distribution-spec 1.1): the tag sha256-<hex> names the index of a manifest's referrers. */
export function referrersTag(digest: string): string {
  return `sha256-${digestHex(digest)}`;
}
