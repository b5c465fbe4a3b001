/**
 * A release as one OCI artifact (SPEC "Releases through a registry"): an
 * image manifest with artifactType application/vnd.containai.release.v1+json,
 * the empty config, and one layer per file of dist/<version>/, named by its
 * org.opencontainers.image.title annotation, the small ones first:
 *
 *   SHA256SUMS, release.json, attestation.intoto.jsonl, SHA256SUMS.sigstore.json,
 *   SHA256SUMS.sig, payload.tar.gz, containai-host-linux-x64,
 *   containai-host-linux-arm64, containai-host.SHA256SUMS (+ .sigstore.json, .sig)
 *
 * A reader finds each layer by its title, checks its media type, and refuses
 * a manifest that is not ours, that names a file twice, or that lacks
 * SHA256SUMS or the payload. The tag that led to it is never trusted: the
 * version that counts is the one in the verified release.json.
 */
import {
  AGENT_SUMS_FILE,
  AGENT_SUMS_SIG_FILE,
  AGENT_SUMS_SIGSTORE_FILE,
  ATTESTATION_FILE,
  PAYLOAD_ARCHIVE,
  RELEASE_FILE,
  SUMS_FILE,
  SUMS_SIG_FILE,
  SUMS_SIGSTORE_FILE,
  agentAssetName,
} from '../bundle/layout.ts';
import { ContainaiError } from '../errors.ts';
import { RELEASE_FILE_MAX_BYTES } from '../manifest/release-json.ts';
import { printableName } from '../text.ts';
import {
  ANNOTATION_TITLE,
  ANNOTATION_VERSION,
  EMPTY_DIGEST,
  ImageManifestSchema,
  MEDIA_TYPE_EMPTY,
  MEDIA_TYPE_IMAGE_MANIFEST,
  parseJsonDocument,
  type Descriptor,
  type ImageManifest,
} from './types.ts';

export const RELEASE_ARTIFACT_TYPE = 'application/vnd.containai.release.v1+json';
/**
 * A rollout statement on a channel (lib/rollout/artifact.ts): a small manifest whose subject is a
 * release manifest. Named here so a reader of a channel tag can follow one to its release.
 */
export const ROLLOUT_ARTIFACT_TYPE = 'application/vnd.containai.rollout.v1+json';

export const MEDIA_TYPE_SUMS = 'application/vnd.containai.sha256sums.v1';
export const MEDIA_TYPE_RELEASE_JSON = 'application/vnd.containai.release-manifest.v1+json';
export const MEDIA_TYPE_ATTESTATIONS = 'application/vnd.containai.attestations.v1+jsonl';
/** A Sigstore bundle, as actions/attest and cosign name it. */
export const MEDIA_TYPE_SIGSTORE_BUNDLE = 'application/vnd.dev.sigstore.bundle.v0.3+json';
export const MEDIA_TYPE_SIG = 'application/vnd.containai.signature.v1+base64';
export const MEDIA_TYPE_PAYLOAD = 'application/vnd.containai.payload.v1.tar+gzip';
export const MEDIA_TYPE_AGENT = 'application/vnd.containai.host-agent.v1';

/** Signature material is a few KB; an attestation file of many bundles stays well under this. */
export const MAX_SIGNATURE_BYTES = 4 * 1024 * 1024;
export const MAX_SUMS_BYTES = 16 * 1024 * 1024;

export type LayerRole = 'sums' | 'release-json' | 'signature' | 'payload' | 'agent' | 'agent-sums' | 'agent-signature';

export interface LayerSpec {
  title: string;
  mediaType: string;
  role: LayerRole;
  required: boolean;
  /** For the small layers a host reads before the payload. */
  maxBytes?: number;
}

/** Every layer a release artifact may hold, in the order publish writes them. */
export const RELEASE_LAYERS: readonly LayerSpec[] = [
  { title: SUMS_FILE, mediaType: MEDIA_TYPE_SUMS, role: 'sums', required: true, maxBytes: MAX_SUMS_BYTES },
  { title: RELEASE_FILE, mediaType: MEDIA_TYPE_RELEASE_JSON, role: 'release-json', required: true, maxBytes: RELEASE_FILE_MAX_BYTES },
  { title: ATTESTATION_FILE, mediaType: MEDIA_TYPE_ATTESTATIONS, role: 'signature', required: false, maxBytes: MAX_SIGNATURE_BYTES },
  { title: SUMS_SIGSTORE_FILE, mediaType: MEDIA_TYPE_SIGSTORE_BUNDLE, role: 'signature', required: false, maxBytes: MAX_SIGNATURE_BYTES },
  { title: SUMS_SIG_FILE, mediaType: MEDIA_TYPE_SIG, role: 'signature', required: false, maxBytes: MAX_SIGNATURE_BYTES },
  { title: PAYLOAD_ARCHIVE, mediaType: MEDIA_TYPE_PAYLOAD, role: 'payload', required: true },
  { title: agentAssetName('x64'), mediaType: MEDIA_TYPE_AGENT, role: 'agent', required: true },
  { title: agentAssetName('arm64'), mediaType: MEDIA_TYPE_AGENT, role: 'agent', required: true },
  { title: AGENT_SUMS_FILE, mediaType: MEDIA_TYPE_SUMS, role: 'agent-sums', required: true, maxBytes: MAX_SUMS_BYTES },
  { title: AGENT_SUMS_SIGSTORE_FILE, mediaType: MEDIA_TYPE_SIGSTORE_BUNDLE, role: 'agent-signature', required: false, maxBytes: MAX_SIGNATURE_BYTES },
  { title: AGENT_SUMS_SIG_FILE, mediaType: MEDIA_TYPE_SIG, role: 'agent-signature', required: false, maxBytes: MAX_SIGNATURE_BYTES },
];

/** The files attached again as referrers of the release manifest (subject = the release). */
export const REFERRER_TITLES: readonly string[] = RELEASE_LAYERS.filter((l) => l.role === 'signature' || l.role === 'agent-signature').map((l) => l.title);

export function layerSpec(title: string): LayerSpec | undefined {
  return RELEASE_LAYERS.find((l) => l.title === title);
}

export interface ReleaseArtifact {
  digest: string;
  manifest: ImageManifest;
  /** Layers by title (known titles only). */
  layers: Map<string, Descriptor>;
  /** The version annotation: informative only, never trusted (the verified release.json decides). */
  annotatedVersion?: string;
}

const HINT = 'the reference does not name a containai release (published by `containai-build publish`), or it is damaged';

/** Parses and checks a manifest's bytes as a release artifact. */
export function parseReleaseManifest(bytes: Uint8Array, digest: string, where: string): ReleaseArtifact {
  const manifest = parseJsonDocument(bytes, ImageManifestSchema, `the manifest ${digest} at ${where}`, HINT);
  const problems: string[] = [];
  if (manifest.artifactType !== RELEASE_ARTIFACT_TYPE) {
    throw new ContainaiError('INPUT', `${where} is not a containai release: its artifactType is ${manifest.artifactType ? `"${printableName(manifest.artifactType)}"` : 'missing'}, not ${RELEASE_ARTIFACT_TYPE}`, { hint: HINT });
  }
  if (manifest.config.mediaType !== MEDIA_TYPE_EMPTY || manifest.config.digest !== EMPTY_DIGEST) problems.push('config: not the empty descriptor');
  const layers = new Map<string, Descriptor>();
  manifest.layers.forEach((layer, i) => {
    const title = layer.annotations?.[ANNOTATION_TITLE];
    if (!title) return problems.push(`layers.${i}: no ${ANNOTATION_TITLE}`);
    const spec = layerSpec(title);
    if (!spec) return; // a file a later format adds: not ours to read
    if (layers.has(title)) return problems.push(`layers.${i}: ${title} twice`);
    if (layer.mediaType !== spec.mediaType) problems.push(`layers.${i}: ${title} has media type "${printableName(layer.mediaType)}", not ${spec.mediaType}`);
    if (layer.urls?.length) problems.push(`layers.${i}: ${title} points elsewhere (urls)`);
    if (spec.maxBytes !== undefined && layer.size > spec.maxBytes) problems.push(`layers.${i}: ${title} is ${layer.size} bytes (at most ${spec.maxBytes})`);
    layers.set(title, layer);
  });
  for (const spec of RELEASE_LAYERS) if (spec.required && spec.role !== 'agent' && spec.role !== 'agent-sums' && !layers.has(spec.title)) problems.push(`no ${spec.title} layer`);
  if (problems.length > 0) {
    throw new ContainaiError('INPUT', `the release manifest at ${where} is not valid: ${problems.slice(0, 5).join('; ')}`, { hint: HINT });
  }
  return { digest, manifest, layers, annotatedVersion: manifest.annotations?.[ANNOTATION_VERSION] };
}

export function requireLayer(artifact: ReleaseArtifact, title: string): Descriptor {
  const layer = artifact.layers.get(title);
  if (!layer) throw new ContainaiError('INPUT', `the release ${artifact.digest} has no ${title}`, { hint: HINT });
  return layer;
}

export { MEDIA_TYPE_IMAGE_MANIFEST };
