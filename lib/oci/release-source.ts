/**
 * A release read from a registry or from an OCI image layout on disk, as the
 * install pipeline consumes it (DESIGN.md's ReleaseSource):
 *
 *   open()     resolves the tag to a digest, reads the manifest (refusing one
 *              that is not a containai release), and fetches only the small
 *              layers: SHA256SUMS, release.json and the signature material;
 *   payload()  streams payload.tar.gz's blob, only once the caller has verified
 *              the small parts: from the registry through a resumable download
 *              file, or from the layout's blob; the digest is checked at the
 *              end and a mismatch throws;
 *   close()    always called.
 *
 * A source opened but whose payload() is never called has requested no
 * payload byte: a manifest whose signature fails costs the registry the
 * manifest and a few KB.
 */
import { readdir, rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { ATTESTATION_FILE, PAYLOAD_ARCHIVE, RELEASE_FILE, SUMS_FILE, SUMS_SIG_FILE, SUMS_SIGSTORE_FILE } from '../bundle/layout.ts';
import { ContainaiError } from '../errors.ts';
import { downloadBlob, partialPath } from './blob-download.ts';
import { RegistryClient, type ClientOptions } from './client.ts';
import { pullCredentials } from './credentials.ts';
import { LayoutReader } from './layout.ts';
import type { ManifestParts, ReleaseSource } from '../release/source.ts';
import { DIGEST, formatReference, type LayoutReference, type RegistryReference } from './reference.ts';
import { fetchSmallBlob, getManifest, headManifest } from './registry.ts';
import { layerSpec, parseReleaseManifest, requireLayer, ROLLOUT_ARTIFACT_TYPE, type ReleaseArtifact } from './release-artifact.ts';
import { MAX_MANIFEST_BYTES, MEDIA_TYPE_IMAGE_MANIFEST, type Descriptor } from './types.ts';

export type { ManifestParts, ReleaseParts, ReleaseSource } from '../release/source.ts';

export interface OciReleaseSource extends ReleaseSource {
  open(): Promise<ManifestParts>;
  /** After open(): the release manifest's digest. */
  readonly digest: string | undefined;
  /** After open(): the parsed artifact (layers, the version annotation: informative only). */
  readonly artifact: ReleaseArtifact | undefined;
}

/**
 * A partial download of another blob is one an earlier run gave up on (another release was
 * installed since, under the same lock): removed when a download starts, so abandoned payloads
 * do not pile up in state/downloads. The one of this blob is kept: it is what resumes.
 */
async function removeOtherPartials(dir: string, digest: string): Promise<void> {
  const keep = basename(partialPath(dir, digest));
  const names = await readdir(dir).catch(() => [] as string[]);
  await Promise.all(names.filter((n) => /^sha256-[0-9a-f]{64}\.partial$/.test(n) && n !== keep).map((n) => rm(join(dir, n), { force: true })));
}

/** Where an install keeps resumable downloads: <install-root>/state/downloads. */
export function downloadsDir(installRoot: string): string {
  return join(installRoot, 'state', 'downloads');
}

export interface RegistrySourceOptions {
  /** Where the payload's partial download lives: <install-root>/state/downloads. */
  downloadDir: string;
  env?: NodeJS.ProcessEnv;
  /** Explicit credentials (default: pullCredentials from config.json / GITHUB_TOKEN). */
  credentials?: ClientOptions['credentials'] | null;
  fetch?: typeof fetch;
  onRequest?: ClientOptions['onRequest'];
  /** Keep the verified download file after payload() finished (default: removed). */
  keepDownload?: boolean;
  signal?: AbortSignal;
}

export interface RegistryReleaseSource extends OciReleaseSource {
  /**
   * The digest the reference names now: one HEAD (a digest reference costs
   * nothing). The update timer compares it with what is installed and stops
   * there when the tag has not moved.
   */
  resolve(): Promise<string>;
}

/** Turns the small layers' bytes into ReleaseParts. */
function partsFrom(small: Map<string, Uint8Array>): ManifestParts {
  const text = (name: string) => {
    const bytes = small.get(name);
    return bytes ? new TextDecoder().decode(bytes) : undefined;
  };
  const sums = small.get(SUMS_FILE);
  if (!sums) throw new ContainaiError('INTERNAL', 'SHA256SUMS was not read');
  return {
    format: 2,
    sums,
    releaseJson: small.get(RELEASE_FILE),
    signatures: { attestation: text(ATTESTATION_FILE), sigstoreBundle: text(SUMS_SIGSTORE_FILE), sig: text(SUMS_SIG_FILE) },
  };
}

/** The release digest a rollout manifest names as its subject, or undefined for any other manifest. */
function rolloutSubject(bytes: Uint8Array): string | undefined {
  try {
    const doc = JSON.parse(new TextDecoder().decode(bytes)) as { artifactType?: unknown; subject?: { digest?: unknown } };
    const digest = doc.subject?.digest;
    return doc.artifactType === ROLLOUT_ARTIFACT_TYPE && typeof digest === 'string' && DIGEST.test(digest) ? digest : undefined;
  } catch {
    return undefined; // parseReleaseManifest says what is wrong with it
  }
}

/** The layers open() reads: the manifest and its signature material, nothing large. */
const SMALL_TITLES = [SUMS_FILE, RELEASE_FILE, ATTESTATION_FILE, SUMS_SIGSTORE_FILE, SUMS_SIG_FILE] as const;

function notOpened(): ContainaiError {
  return new ContainaiError('INTERNAL', 'payload() was called before open()');
}

export function registryReleaseSource(ref: RegistryReference, options: RegistrySourceOptions): RegistryReleaseSource {
  const controller = new AbortController();
  options.signal?.addEventListener('abort', () => controller.abort(options.signal?.reason));
  let client: RegistryClient | undefined;
  let artifact: ReleaseArtifact | undefined;
  const getClient = async () => {
    client ??= new RegistryClient(ref, {
      credentials: options.credentials === null ? undefined : (options.credentials ?? (await pullCredentials(ref.registry, options.env))),
      fetch: options.fetch,
      onRequest: options.onRequest,
    });
    return client;
  };
  const reference = () => ref.digest ?? ref.tag ?? 'latest';

  return {
    get location() {
      // The tag it came by, and the digest it is: oci://host/repo:stable@sha256:…
      return artifact ? `${formatReference({ ...ref, digest: undefined })}@${artifact.digest}` : formatReference(ref);
    },
    get digest() {
      return artifact?.digest;
    },
    get artifact() {
      return artifact;
    },
    async resolve() {
      if (ref.digest) return ref.digest;
      const head = await headManifest(await getClient(), reference(), controller.signal);
      if (!head) throw new ContainaiError('NOT_FOUND', `${formatReference(ref)} was not found`, { hint: 'check the repository and tag' });
      return head.digest;
    },
    async open() {
      const c = await getClient();
      // One GET resolves the tag and reads the manifest; its digest is computed from the bytes.
      let fetched = await getManifest(c, reference(), controller.signal);
      // A channel tag that carries a rollout statement (lib/rollout/artifact.ts) leads to its subject,
      // the release, fetched by digest. The statement is update's to verify; the release is verified as always.
      const subject = rolloutSubject(fetched.bytes);
      if (subject) fetched = await getManifest(c, subject, controller.signal);
      artifact = parseReleaseManifest(fetched.bytes, fetched.digest, formatReference(ref));
      // The small layers side by side (the manifest's answer settled the auth): one round trip instead of five.
      const present = SMALL_TITLES.flatMap((title) => {
        const layer = (artifact as ReleaseArtifact).layers.get(title);
        return layer ? [{ title, layer }] : [];
      });
      const fetchedSmall = await Promise.all(present.map(({ title, layer }) => fetchSmallBlob(c, layer, layerSpec(title)?.maxBytes ?? 0, title, controller.signal)));
      return partsFrom(new Map(present.map(({ title }, i) => [title, fetchedSmall[i] as Uint8Array])));
    },
    payload() {
      if (!artifact || !client) throw notOpened();
      const layer = requireLayer(artifact, PAYLOAD_ARCHIVE);
      const download = downloadBlob(client, layer, { dir: options.downloadDir, label: PAYLOAD_ARCHIVE, keep: options.keepDownload, signal: controller.signal });
      return (async function* () {
        await removeOtherPartials(options.downloadDir, layer.digest);
        yield* download;
      })();
    },
    async close() {
      controller.abort();
    },
  };
}

/** A release in an OCI image layout (mirror's output, or skopeo's): no network at all. */
export function layoutReleaseSource(dir: string, ref: Pick<LayoutReference, 'tag' | 'digest'> = {}): OciReleaseSource {
  let layout: LayoutReader | undefined;
  let artifact: ReleaseArtifact | undefined;
  const where = formatReference({ kind: 'layout', dir, ...ref });
  return {
    get location() {
      return artifact ? formatReference({ kind: 'layout', dir }, { digest: artifact.digest }) : where;
    },
    get digest() {
      return artifact?.digest;
    },
    get artifact() {
      return artifact;
    },
    async open() {
      layout = await LayoutReader.open(dir);
      const entry = layout.resolve(ref);
      if (entry.mediaType !== MEDIA_TYPE_IMAGE_MANIFEST) {
        throw new ContainaiError('INPUT', `${where} names a ${entry.mediaType}, not an image manifest: not a containai release`, { hint: 'name the release tag: oci-layout:DIR:TAG' });
      }
      const bytes = await layout.readBlob(entry, MAX_MANIFEST_BYTES, `the manifest ${entry.digest}`);
      artifact = parseReleaseManifest(bytes, entry.digest, where);
      const small = new Map<string, Uint8Array>();
      for (const title of SMALL_TITLES) {
        const layer = artifact.layers.get(title);
        if (layer) small.set(title, await layout.readBlob(layer, layerSpec(title)?.maxBytes ?? 0, title));
      }
      return partsFrom(small);
    },
    payload() {
      if (!artifact || !layout) throw notOpened();
      const layer: Descriptor = requireLayer(artifact, PAYLOAD_ARCHIVE);
      return layout.streamBlob(layer, PAYLOAD_ARCHIVE);
    },
    async close() {},
  };
}
