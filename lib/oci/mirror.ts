/**
 * `containai-host mirror`: a release (or every release of a repository) and
 * its referrers copied from a registry into an OCI image layout, for hosts
 * with no network (`install --from oci-layout:DIR`). Every blob is checked
 * against its digest on the way in (a blob already in the layout is
 * re-hashed, not trusted); a large blob's download resumes like an install's.
 * index.json is rewritten last and whole: an interrupted mirror leaves the
 * layout as it was, plus blobs.
 */
import { rename, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { ContainaiError } from '../errors.ts';
import { downloadBlob, partialPath } from './blob-download.ts';
import { RegistryClient } from './client.ts';
import { pullCredentials, type RegistryCredentials } from './credentials.ts';
import { blobPath, LayoutWriter } from './layout.ts';
import { formatReference, type RegistryReference } from './reference.ts';
import { listReferrers } from './referrers.ts';
import { fetchSmallBlob, getManifest, listTags, type FetchedManifest } from './registry.ts';
import { parseReleaseManifest, RELEASE_ARTIFACT_TYPE } from './release-artifact.ts';
import { ImageManifestSchema, MEDIA_TYPE_IMAGE_MANIFEST, parseJsonDocument, type Descriptor } from './types.ts';

export interface MirrorOptions {
  from: RegistryReference;
  to: string;
  env?: NodeJS.ProcessEnv;
  credentials?: RegistryCredentials | null;
  fetch?: typeof fetch;
  log?: (line: string) => void;
}

export interface MirroredRelease {
  tag?: string;
  digest: string;
  version?: string;
  referrers: number;
}

export interface MirrorResult {
  dir: string;
  releases: MirroredRelease[];
  fetched: number;
  present: number;
}

/** Small blobs (manifests' configs, signatures) are read whole; larger ones go through a resumable download. */
const SMALL_BLOB = 4 * 1024 * 1024;
const PARTIAL_DIR = '.containai-partial';

export async function mirrorReleases(options: MirrorOptions): Promise<MirrorResult> {
  const env = options.env ?? process.env;
  const log = options.log ?? (() => undefined);
  const credentials = options.credentials === null ? undefined : (options.credentials ?? (await pullCredentials(options.from.registry, env)));
  const client = new RegistryClient(options.from, { credentials, fetch: options.fetch });
  // Which releases, checked before anything is written: a reference that names no release leaves the folder as it was.
  const named = options.from.digest ?? options.from.tag;
  const wanted = named ? [await wantedRelease(client, options.from, named)] : await releaseTags(client, options.from, log);
  if (wanted.length === 0) {
    throw new ContainaiError('NOT_FOUND', `${formatReference(options.from)} has no release tags`, { hint: 'name one: --from oci://REGISTRY/REPO:TAG' });
  }

  const layout = await LayoutWriter.open(options.to);
  const partials = join(options.to, PARTIAL_DIR);
  let fetched = 0;
  let present = 0;

  const copyBlob = async (descriptor: Descriptor, label: string) => {
    if (await layout.hasBlob(descriptor)) {
      present++;
      return;
    }
    if (descriptor.size <= SMALL_BLOB) {
      await layout.writeBlobBytes(descriptor, await fetchSmallBlob(client, descriptor, SMALL_BLOB, label));
    } else {
      for await (const _ of downloadBlob(client, descriptor, { dir: partials, label, keep: true })) {
        // The bytes are in the partial file; it is verified when the iteration ends.
      }
      await rename(partialPath(partials, descriptor.digest), blobPath(options.to, descriptor.digest));
    }
    fetched++;
    log(`fetched ${label} (${descriptor.size} bytes)`);
  };

  const keepManifest = async (manifest: FetchedManifest): Promise<{ descriptor: Descriptor; bytes: Uint8Array }> => {
    const descriptor: Descriptor = { mediaType: MEDIA_TYPE_IMAGE_MANIFEST, digest: manifest.digest, size: manifest.bytes.byteLength };
    if (!(await layout.hasBlob(descriptor))) await layout.writeBlobBytes(descriptor, manifest.bytes);
    return { descriptor, bytes: manifest.bytes };
  };

  const releases: MirroredRelease[] = [];
  for (const { reference, manifest, artifact } of wanted) {
    const { descriptor } = await keepManifest(manifest);
    for (const blob of [artifact.manifest.config, ...artifact.manifest.layers]) await copyBlob(blob, blob.annotations?.['org.opencontainers.image.title'] ?? blob.digest);
    const isTag = reference !== options.from.digest;
    layout.addManifest({ ...descriptor, artifactType: RELEASE_ARTIFACT_TYPE }, isTag ? reference : undefined);

    const { referrers } = await listReferrers(client, descriptor.digest);
    for (const referrer of referrers.filter((r) => r.mediaType === MEDIA_TYPE_IMAGE_MANIFEST)) {
      const copied = await keepManifest(await getManifest(client, referrer.digest));
      const parsed = parseJsonDocument(copied.bytes, ImageManifestSchema, `the referrer ${referrer.digest}`, 'tell the registry operator');
      if (parsed.subject?.digest !== descriptor.digest) continue;
      for (const blob of [parsed.config, ...parsed.layers]) await copyBlob(blob, `referrer blob ${blob.digest}`);
      layout.addManifest({ ...copied.descriptor, artifactType: parsed.artifactType, annotations: referrer.annotations });
    }
    releases.push({ tag: isTag ? reference : undefined, digest: descriptor.digest, version: artifact.annotatedVersion, referrers: referrers.length });
    log(`mirrored ${formatReference(options.from, { tag: reference })} (${descriptor.digest}) with ${referrers.length} referrer(s)`);
  }
  await layout.commit();
  await rmdir(partials).catch(() => undefined);
  return { dir: options.to, releases, fetched, present };
}

interface WantedRelease {
  reference: string;
  manifest: FetchedManifest;
  artifact: ReturnType<typeof parseReleaseManifest>;
}

async function wantedRelease(client: RegistryClient, from: RegistryReference, reference: string): Promise<WantedRelease> {
  const manifest = await getManifest(client, reference);
  return { reference, manifest, artifact: parseReleaseManifest(manifest.bytes, manifest.digest, formatReference(from, { tag: reference })) };
}

/** Every tag of the repository that names a release (the referrers tag schema's sha256-<hex> tags left out). */
async function releaseTags(client: RegistryClient, from: RegistryReference, log: (line: string) => void): Promise<WantedRelease[]> {
  const tags = (await listTags(client)).filter((t) => !/^sha256-[0-9a-f]{64}$/.test(t));
  const releases: WantedRelease[] = [];
  for (const tag of tags) {
    try {
      releases.push(await wantedRelease(client, from, tag));
    } catch (err) {
      if (!(err instanceof ContainaiError) || err.code !== 'INPUT') throw err;
      log(`skipped tag ${tag}: not a containai release`);
    }
  }
  return releases;
}
