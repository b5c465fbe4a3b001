/**
 * How a rollout statement travels: a small OCI manifest on the channel tag,
 *
 *   artifactType  application/vnd.containai.rollout.v1+json
 *   config        the empty descriptor
 *   layers        one: the signed statement, a Sigstore bundle (rollout.sigstore.json)
 *   subject       the release manifest it rolls out
 *   annotations   version, channel, sequence, created (informative: the signed
 *                 statement decides)
 *
 * and the channel tag is moved to it. So every change a host must see, a
 * halt included, moves the one tag a host HEADs: "nothing moved" is one
 * request, and the answer is never a stale copy of something else. A
 * registry with the referrers API also lists it among the release's
 * referrers (the subject field); nothing relies on that.
 *
 * `publish --channel C` leaves C pointing straight at a release: such a
 * channel has no statement, and `update` says so and installs nothing.
 *
 * Beside the channel tag, `<channel>.rollout` always names the last
 * statement made for the channel, so the next statement's sequence follows
 * it even after `publish --channel` moved the channel tag itself.
 */
import { ContainaiError } from '../errors.ts';
import { ROLLOUT_ARTIFACT_TYPE, RELEASE_ARTIFACT_TYPE, MEDIA_TYPE_SIGSTORE_BUNDLE } from '../oci/release-artifact.ts';
import { EMPTY_CONFIG } from '../oci/referrers.ts';
import {
  ANNOTATION_CREATED,
  ANNOTATION_TITLE,
  ANNOTATION_VERSION,
  canonicalBytes,
  digestOf,
  EMPTY_DIGEST,
  ImageManifestSchema,
  MEDIA_TYPE_EMPTY,
  MEDIA_TYPE_IMAGE_MANIFEST,
  parseJsonDocument,
  type Descriptor,
  type ImageManifest,
} from '../oci/types.ts';
import { printableName } from '../text.ts';
import type { RolloutStatement } from './statement.ts';

export { ROLLOUT_ARTIFACT_TYPE };

export const STATEMENT_TITLE = 'rollout.sigstore.json';
export const ANNOTATION_CHANNEL = 'dev.containai.rollout.channel';
export const ANNOTATION_SEQUENCE = 'dev.containai.rollout.sequence';
/** A key-signed statement is ~1.5 KB, a keyless one with its certificate and log entry ~10 KB. */
export const MAX_STATEMENT_BYTES = 256 * 1024;

/** The tag that always names the channel's last statement. */
export function historyTag(channel: string): string {
  return `${channel}.rollout`;
}

export interface RolloutManifest {
  bytes: Uint8Array;
  descriptor: Descriptor;
  layer: Descriptor;
}

/** The manifest for a signed statement (its bundle's bytes are the one layer). */
export function rolloutManifest(statement: RolloutStatement, subject: Descriptor, bundleBytes: Uint8Array): RolloutManifest {
  const layer: Descriptor = { mediaType: MEDIA_TYPE_SIGSTORE_BUNDLE, digest: digestOf(bundleBytes), size: bundleBytes.byteLength, annotations: { [ANNOTATION_TITLE]: STATEMENT_TITLE } };
  const p = statement.predicate;
  const doc = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPE_IMAGE_MANIFEST,
    artifactType: ROLLOUT_ARTIFACT_TYPE,
    config: EMPTY_CONFIG,
    layers: [layer],
    subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size },
    annotations: {
      [ANNOTATION_VERSION]: p.version,
      [ANNOTATION_CHANNEL]: p.channel,
      [ANNOTATION_SEQUENCE]: String(p.sequence),
      [ANNOTATION_CREATED]: p.issuedAt,
    },
  };
  const bytes = canonicalBytes(doc);
  return { bytes, layer, descriptor: { mediaType: MEDIA_TYPE_IMAGE_MANIFEST, digest: digestOf(bytes), size: bytes.byteLength, artifactType: ROLLOUT_ARTIFACT_TYPE } };
}

/** What a channel tag names. */
export type ChannelTarget =
  | { kind: 'rollout'; digest: string; manifest: ImageManifest; layer: Descriptor; subject: Descriptor }
  | { kind: 'release'; digest: string }
  | { kind: 'other'; digest: string; artifactType?: string };

const HINT = 'the channel tag names something `containai-build rollout` did not make; publish a new statement with it';

/** Reads a channel tag's manifest: a rollout statement (checked in shape), a release, or something else. */
export function classifyChannelManifest(bytes: Uint8Array, digest: string, where: string): ChannelTarget {
  const manifest = parseJsonDocument(bytes, ImageManifestSchema, `the manifest ${digest} at ${where}`, HINT);
  if (manifest.artifactType === RELEASE_ARTIFACT_TYPE) return { kind: 'release', digest };
  if (manifest.artifactType !== ROLLOUT_ARTIFACT_TYPE) return { kind: 'other', digest, artifactType: manifest.artifactType };
  const problems: string[] = [];
  if (manifest.config.mediaType !== MEDIA_TYPE_EMPTY || manifest.config.digest !== EMPTY_DIGEST) problems.push('config: not the empty descriptor');
  const layer = manifest.layers[0];
  if (manifest.layers.length !== 1 || !layer) problems.push(`it has ${manifest.layers.length} layers, not one`);
  else {
    if (layer.mediaType !== MEDIA_TYPE_SIGSTORE_BUNDLE) problems.push(`its layer is "${printableName(layer.mediaType)}", not ${MEDIA_TYPE_SIGSTORE_BUNDLE}`);
    if (layer.size > MAX_STATEMENT_BYTES) problems.push(`its layer is ${layer.size} bytes (at most ${MAX_STATEMENT_BYTES})`);
    if (layer.urls?.length) problems.push('its layer points elsewhere (urls)');
  }
  const subject = manifest.subject;
  if (!subject) problems.push('it names no subject (the release it rolls out)');
  else if (subject.mediaType !== MEDIA_TYPE_IMAGE_MANIFEST) problems.push(`its subject is a "${printableName(subject.mediaType)}", not an image manifest`);
  if (problems.length > 0 || !layer || !subject) {
    throw new ContainaiError('VERIFY', `the rollout statement ${digest} at ${where} is not valid: ${problems.join('; ')}`, { hint: HINT });
  }
  return { kind: 'rollout', digest, manifest, layer, subject };
}
