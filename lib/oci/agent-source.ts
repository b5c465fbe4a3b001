/**
 * self-update's agent from a release artifact (`--from oci://…` or
 * `--from oci-layout:DIR`): the same parts as the asset-folder path
 * (lib/agent/source.ts), taken from the artifact's layers, and judged by the
 * same code (lib/agent/verify.ts):
 *
 *   open()        the manifest (its digest computed from its bytes), then the
 *                 small layers containai-host.SHA256SUMS, its .sigstore.json,
 *                 .sig and attestation.intoto.jsonl, each checked against its
 *                 digest; nothing of an agent is asked for yet;
 *   writeAgent()  after the sums verified: the one agent layer for this
 *                 host's architecture, streamed into the file self-update names
 *                 (created exclusively, 0700), hashed as written and checked
 *                 against the layer's digest (a connection cut mid-blob is
 *                 resumed with a range request, as an install's payload is).
 *
 * The tag is not trusted here either: what decides is the verified sums
 * file, and the version the new agent itself answers (the downgrade check).
 */
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { dirname } from 'node:path';
import { AGENT_SUMS_FILE, AGENT_SUMS_SIG_FILE, AGENT_SUMS_SIGSTORE_FILE, agentAssetName, ATTESTATION_FILE, type AgentArch } from '../bundle/layout.ts';
import { AGENT_MAX_BYTES, partsFrom, SIGNATURE_MAX_BYTES, SUMS_MAX_BYTES, type AgentParts, type AgentSource, type WrittenAgent } from '../agent/source.ts';
import { ContainaiError } from '../errors.ts';
import { downloadBlob } from './blob-download.ts';
import { RegistryClient, type ClientOptions } from './client.ts';
import { pullCredentials, type RegistryCredentials } from './credentials.ts';
import { LayoutReader } from './layout.ts';
import { formatReference, parseOciReference, type LayoutReference, type RegistryReference } from './reference.ts';
import { fetchSmallBlob, getManifest } from './registry.ts';
import { parseReleaseManifest, type ReleaseArtifact } from './release-artifact.ts';
import { digestHex, MAX_MANIFEST_BYTES, MEDIA_TYPE_IMAGE_MANIFEST, type Descriptor } from './types.ts';

const SMALL: ReadonlyArray<{ title: string; max: number }> = [
  { title: AGENT_SUMS_FILE, max: SUMS_MAX_BYTES },
  { title: ATTESTATION_FILE, max: SIGNATURE_MAX_BYTES },
  { title: AGENT_SUMS_SIGSTORE_FILE, max: SIGNATURE_MAX_BYTES },
  { title: AGENT_SUMS_SIG_FILE, max: SIGNATURE_MAX_BYTES },
];

function noAgents(where: string): ContainaiError {
  return new ContainaiError('NOT_FOUND', `${where} carries no ${AGENT_SUMS_FILE}`, {
    hint: 'self-update needs a release published with its agents (containai-build publish of a format-2 release)',
  });
}

/** The agent layer for arch, bounded before a byte of it is asked for. */
function agentLayer(artifact: ReleaseArtifact, arch: AgentArch, where: string): Descriptor {
  const title = agentAssetName(arch);
  const layer = artifact.layers.get(title);
  if (!layer) throw new ContainaiError('NOT_FOUND', `${where} carries no ${title}`, { hint: `the release has no agent for ${arch} hosts` });
  if (layer.size > AGENT_MAX_BYTES) throw new ContainaiError('INPUT', `${title} in ${where} is ${layer.size} bytes, more than an agent may be (${AGENT_MAX_BYTES})`, { hint: 'the artifact is not a containai release, or is damaged' });
  return layer;
}

/** The small layers as AgentParts (the sums required, the signature material where present). */
async function readParts(artifact: ReleaseArtifact, where: string, read: (layer: Descriptor, max: number, title: string) => Promise<Uint8Array>): Promise<AgentParts> {
  if (!artifact.layers.has(AGENT_SUMS_FILE)) throw noAgents(where);
  const got = new Map<string, Uint8Array>();
  for (const { title, max } of SMALL) {
    const layer = artifact.layers.get(title);
    if (layer) got.set(title, await read(layer, max, title));
  }
  return partsFrom(got.get(AGENT_SUMS_FILE), got.get(ATTESTATION_FILE), got.get(AGENT_SUMS_SIGSTORE_FILE), got.get(AGENT_SUMS_SIG_FILE), where);
}

/** Streams chunks into a new file (exclusive, not through a link, this mode), hashing what is written; fsynced. */
async function writeStreamExclusive(dest: string, chunks: AsyncIterable<Uint8Array>, mode: number): Promise<WrittenAgent> {
  const handle = await open(dest, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode);
  const hasher = new Bun.CryptoHasher('sha256');
  let bytes = 0;
  try {
    for await (const chunk of chunks) {
      let written = 0;
      while (written < chunk.byteLength) written += (await handle.write(chunk, written, chunk.byteLength - written)).bytesWritten;
      hasher.update(chunk);
      bytes += chunk.byteLength;
    }
    await handle.sync();
  } finally {
    await handle.close();
  }
  return { bytes, sha256: hasher.digest('hex') };
}

export interface RegistryAgentSourceOptions {
  env?: NodeJS.ProcessEnv;
  credentials?: RegistryCredentials | null;
  fetch?: typeof fetch;
  onRequest?: ClientOptions['onRequest'];
}

export function registryAgentSource(ref: RegistryReference, options: RegistryAgentSourceOptions = {}): AgentSource {
  const controller = new AbortController();
  let client: RegistryClient | undefined;
  let artifact: ReleaseArtifact | undefined;
  const reference = ref.digest ?? ref.tag ?? 'latest';
  return {
    get location() {
      return artifact ? `${formatReference({ ...ref, digest: undefined })}@${artifact.digest}` : formatReference(ref);
    },
    async open() {
      const credentials = options.credentials === null ? undefined : (options.credentials ?? (await pullCredentials(ref.registry, options.env)));
      client = new RegistryClient(ref, { credentials, fetch: options.fetch, onRequest: options.onRequest });
      const fetched = await getManifest(client, reference, controller.signal);
      artifact = parseReleaseManifest(fetched.bytes, fetched.digest, formatReference(ref));
      const c = client;
      return readParts(artifact, formatReference(ref), (layer, max, title) => fetchSmallBlob(c, layer, max, title, controller.signal));
    },
    async writeAgent(arch, dest): Promise<WrittenAgent> {
      if (!artifact || !client) throw new ContainaiError('INTERNAL', 'writeAgent() before open()');
      const layer = agentLayer(artifact, arch, formatReference(ref));
      const download = downloadBlob(client, layer, { dir: dirname(dest), file: { path: dest, mode: 0o700 }, keep: true, label: agentAssetName(arch), signal: controller.signal });
      for await (const _ of download) {
        // Written and hashed by downloadBlob; it throws at the end unless the bytes are the layer's digest.
      }
      return { bytes: layer.size, sha256: digestHex(layer.digest) };
    },
    async close() {
      controller.abort();
    },
  };
}

export function layoutAgentSource(ref: LayoutReference): AgentSource {
  let layout: LayoutReader | undefined;
  let artifact: ReleaseArtifact | undefined;
  const where = formatReference(ref);
  return {
    get location() {
      return artifact ? formatReference({ kind: 'layout', dir: ref.dir }, { digest: artifact.digest }) : where;
    },
    async open() {
      layout = await LayoutReader.open(ref.dir);
      const entry = layout.resolve(ref);
      if (entry.mediaType !== MEDIA_TYPE_IMAGE_MANIFEST) {
        throw new ContainaiError('INPUT', `${where} names a ${entry.mediaType}, not an image manifest: not a containai release`, { hint: 'name the release tag: oci-layout:DIR:TAG' });
      }
      artifact = parseReleaseManifest(await layout.readBlob(entry, MAX_MANIFEST_BYTES, `the manifest ${entry.digest}`), entry.digest, where);
      const l = layout;
      return readParts(artifact, where, (layer, max, title) => l.readBlob(layer, max, title));
    },
    async writeAgent(arch, dest): Promise<WrittenAgent> {
      if (!artifact || !layout) throw new ContainaiError('INTERNAL', 'writeAgent() before open()');
      const layer = agentLayer(artifact, arch, where);
      // streamBlob throws after the last byte unless size and digest are the layer's.
      return writeStreamExclusive(dest, layout.streamBlob(layer, agentAssetName(arch)), 0o700);
    },
    async close() {},
  };
}

/** `--from` as self-update takes it: oci://REGISTRY/REPO[:TAG|@DIGEST] or oci-layout:DIR[:TAG|@DIGEST]. */
export function ociAgentSource(from: string, options: RegistryAgentSourceOptions = {}): AgentSource {
  const ref = parseOciReference(from, '--from');
  return ref.kind === 'layout' ? layoutAgentSource(ref) : registryAgentSource(ref, options);
}
