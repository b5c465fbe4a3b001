/**
 * `containai-build publish`: dist/<version>/ pushed to a registry as one
 * release artifact (lib/oci/release-artifact.ts), as ordered steps:
 *
 *   check    the folder is a format-2 release: SHA256SUMS, release.json, the
 *            payload, both agents and their sums are there, and SHA256SUMS and
 *            release.json are the payload's own (payload/SHA256SUMS,
 *            payload/release.json); otherwise nothing is pushed;
 *   digest   every file hashed (streamed);
 *   blobs    each uploaded unless the registry has it (HEAD first);
 *   manifest pushed under the version tag;
 *   referrers the signature material attached with subject = the release;
 *   channel  the channel tag moved last, so a host following it finds a
 *            complete release with its referrers.
 *
 * The manifest holds no time but `created`, taken from SOURCE_DATE_EPOCH when
 * set, so publishing the same release twice gives the same digest.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { readTarGz, type EntrySink } from '../archive/tar.ts';
import { PAYLOAD_ARCHIVE, PAYLOAD_SHA256, PAYLOAD_TOP, RELEASE_FILE, SUMS_FILE } from '../bundle/layout.ts';
import { parseSingleSum, sha256File } from '../digest.ts';
import { ContainaiError } from '../errors.ts';
import { parseReleaseJson, RELEASE_FILE_MAX_BYTES } from '../manifest/release-json.ts';
import { RegistryClient } from './client.ts';
import { pushCredentials, type RegistryCredentials } from './credentials.ts';
import { formatReference, type RegistryReference } from './reference.ts';
import { attachReferrers, EMPTY_CONFIG, referrerManifest, type AttachResult } from './referrers.ts';
import { putManifest, uploadBlob } from './registry.ts';
import { RELEASE_ARTIFACT_TYPE, RELEASE_LAYERS, REFERRER_TITLES, type LayerSpec } from './release-artifact.ts';
import {
  ANNOTATION_CREATED,
  ANNOTATION_REVISION,
  ANNOTATION_SOURCE,
  ANNOTATION_TITLE,
  ANNOTATION_VERSION,
  canonicalBytes,
  digestOf,
  EMPTY_CONFIG_BYTES,
  MEDIA_TYPE_IMAGE_MANIFEST,
  type Descriptor,
} from './types.ts';

export interface PublishOptions {
  version: string;
  /** <out>/<version>/ */
  releaseDir: string;
  to: RegistryReference;
  channel?: string;
  env?: NodeJS.ProcessEnv;
  credentials?: RegistryCredentials | null;
  fetch?: typeof fetch;
  log?: (line: string) => void;
}

export interface PublishResult {
  reference: string;
  digest: string;
  tags: string[];
  uploaded: number;
  skipped: number;
  referrers: { via: AttachResult['via']; digests: string[] };
}

interface LayerFile {
  spec: LayerSpec;
  path: string;
  descriptor: Descriptor;
}

const NOT_FORMAT2_HINT = 'publish takes a release made by `containai-build package` of this version (format 2: SHA256SUMS beside payload.tar.gz); package it again';

/** The payload's own SHA256SUMS and release.json (the first members), read from the archive's stream. */
async function payloadManifestFiles(payloadPath: string): Promise<{ sums?: Uint8Array; releaseJson?: Uint8Array }> {
  const wanted = new Map<string, 'sums' | 'releaseJson'>([
    [`${PAYLOAD_TOP}/${SUMS_FILE}`, 'sums'],
    [`${PAYLOAD_TOP}/${RELEASE_FILE}`, 'releaseJson'],
  ]);
  const found: { sums?: Uint8Array; releaseJson?: Uint8Array } = {};
  const done = new Error('found');
  try {
    await readTarGz(
      payloadPath,
      {
        entry(header) {
          const key = wanted.get(header.path.replace(/^\.\//, ''));
          if (!key || header.kind !== 'file') return undefined;
          if (header.size > RELEASE_FILE_MAX_BYTES) throw new ContainaiError('INPUT', `${PAYLOAD_ARCHIVE}: ${header.path} is too large`, { hint: NOT_FORMAT2_HINT });
          const chunks: Uint8Array[] = [];
          const sink: EntrySink = {
            write: (chunk) => void chunks.push(Uint8Array.from(chunk)),
            end: () => {
              found[key] = Buffer.concat(chunks);
              if (found.sums && found.releaseJson) throw done;
            },
          };
          return sink;
        },
      },
      { maxStreamBytes: 64 * 1024 ** 3, label: PAYLOAD_ARCHIVE },
    );
  } catch (err) {
    if (err !== done) throw err;
  }
  return found;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0;
}

/** Refuses a folder that is not a format-2 release of `version`; nothing is pushed before this passed. */
export async function checkPublishable(releaseDir: string, version: string): Promise<void> {
  const missing = RELEASE_LAYERS.filter((l) => l.required && !existsSync(join(releaseDir, l.title))).map((l) => l.title);
  if (missing.length > 0) {
    throw new ContainaiError('INPUT', `${releaseDir} is not a format-2 release: ${missing.join(', ')} ${missing.length === 1 ? 'is' : 'are'} missing; nothing was pushed`, { hint: NOT_FORMAT2_HINT });
  }
  const payloadPath = join(releaseDir, PAYLOAD_ARCHIVE);
  const inside = await payloadManifestFiles(payloadPath);
  const sums = new Uint8Array(await Bun.file(join(releaseDir, SUMS_FILE)).arrayBuffer());
  const releaseJson = new Uint8Array(await Bun.file(join(releaseDir, RELEASE_FILE)).arrayBuffer());
  if (!inside.sums || !sameBytes(inside.sums, sums)) {
    throw new ContainaiError('INPUT', `${releaseDir}/${SUMS_FILE} is not the payload's (${inside.sums ? `differs from ${PAYLOAD_TOP}/${SUMS_FILE}` : `${PAYLOAD_ARCHIVE} has no ${PAYLOAD_TOP}/${SUMS_FILE}`}); nothing was pushed`, { hint: NOT_FORMAT2_HINT });
  }
  if (!inside.releaseJson || !sameBytes(inside.releaseJson, releaseJson)) {
    throw new ContainaiError('INPUT', `${releaseDir}/${RELEASE_FILE} is not the payload's; nothing was pushed`, { hint: NOT_FORMAT2_HINT });
  }
  const parsed = parseReleaseJson(new TextDecoder().decode(releaseJson));
  if (typeof parsed === 'string' || parsed.format !== 2) {
    throw new ContainaiError('INPUT', `${releaseDir}/${RELEASE_FILE} is not a format-2 release.json${typeof parsed === 'string' ? `: ${parsed}` : ''}; nothing was pushed`, { hint: NOT_FORMAT2_HINT });
  }
  if (parsed.version !== version) {
    throw new ContainaiError('INPUT', `${releaseDir} holds release ${parsed.version}, not ${version}; nothing was pushed`, { hint: 'give the version the release was packaged as' });
  }
  if (existsSync(join(releaseDir, PAYLOAD_SHA256))) {
    const expected = parseSingleSum(await Bun.file(join(releaseDir, PAYLOAD_SHA256)).text(), PAYLOAD_ARCHIVE, PAYLOAD_SHA256);
    if ((await sha256File(payloadPath)) !== expected) {
      throw new ContainaiError('VERIFY', `${PAYLOAD_ARCHIVE} does not match ${PAYLOAD_SHA256}; nothing was pushed`, { hint: 'the release folder was changed after packaging: package it again' });
    }
  }
}

/** `created`: SOURCE_DATE_EPOCH when set (a re-publish is byte-identical), else now. */
export function createdTime(env: NodeJS.ProcessEnv): string {
  const raw = env.SOURCE_DATE_EPOCH;
  if (raw === undefined || raw === '') return new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
  if (!/^\d{1,11}$/.test(raw)) {
    throw new ContainaiError('INPUT', `SOURCE_DATE_EPOCH "${raw}" is not a number of seconds since 1970`, { hint: 'set it to a unix time such as $(git log -1 --format=%ct), or unset it' });
  }
  return new Date(Number(raw) * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** org.opencontainers.image.{source,revision}: from the CI's environment, else the checkout's HEAD. */
function provenanceAnnotations(env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {};
  if (env.GITHUB_REPOSITORY && /^[A-Za-z0-9._-]+\/[A-Za-z0-9._-]+$/.test(env.GITHUB_REPOSITORY)) {
    const server = env.GITHUB_SERVER_URL && /^https:\/\/[A-Za-z0-9.-]+(:\d+)?$/.test(env.GITHUB_SERVER_URL) ? env.GITHUB_SERVER_URL : 'https://github.com';
    out[ANNOTATION_SOURCE] = `${server}/${env.GITHUB_REPOSITORY}`;
  }
  let revision = env.GITHUB_SHA;
  if (!revision) {
    const git = Bun.spawnSync(['git', 'rev-parse', 'HEAD'], { stdout: 'pipe', stderr: 'ignore', env: { PATH: env.PATH ?? '/usr/bin:/bin' } });
    revision = git.exitCode === 0 ? git.stdout.toString().trim() : undefined;
  }
  if (revision && /^[0-9a-f]{40}([0-9a-f]{24})?$/.test(revision)) out[ANNOTATION_REVISION] = revision;
  return out;
}

export interface ReleaseManifestBuild {
  bytes: Uint8Array;
  descriptor: Descriptor;
  layers: LayerFile[];
}

/** Hashes the release's files and writes the manifest (no network). */
export async function buildReleaseManifest(releaseDir: string, version: string, env: NodeJS.ProcessEnv, created = createdTime(env)): Promise<ReleaseManifestBuild> {
  const layers: LayerFile[] = [];
  for (const spec of RELEASE_LAYERS) {
    const path = join(releaseDir, spec.title);
    if (!existsSync(path)) continue;
    const size = Bun.file(path).size;
    const digest = `sha256:${await sha256File(path)}`;
    layers.push({ spec, path, descriptor: { mediaType: spec.mediaType, digest, size, annotations: { [ANNOTATION_TITLE]: spec.title } } });
  }
  const manifest = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPE_IMAGE_MANIFEST,
    artifactType: RELEASE_ARTIFACT_TYPE,
    config: EMPTY_CONFIG,
    layers: layers.map((l) => l.descriptor),
    annotations: { [ANNOTATION_VERSION]: version, ...provenanceAnnotations(env), [ANNOTATION_CREATED]: created },
  };
  const bytes = canonicalBytes(manifest);
  return { bytes, layers, descriptor: { mediaType: MEDIA_TYPE_IMAGE_MANIFEST, digest: digestOf(bytes), size: bytes.byteLength, artifactType: RELEASE_ARTIFACT_TYPE } };
}

export async function publishRelease(options: PublishOptions): Promise<PublishResult> {
  const env = options.env ?? process.env;
  const log = options.log ?? (() => undefined);
  if (options.to.tag || options.to.digest) {
    throw new ContainaiError('USAGE', `--to names a tag or digest (${formatReference(options.to)}); publish tags the version and the channel itself`, { hint: 'give --to oci://REGISTRY/REPO' });
  }
  await checkPublishable(options.releaseDir, options.version);
  const created = createdTime(env);
  const built = await buildReleaseManifest(options.releaseDir, options.version, env, created);
  const credentials = options.credentials === null ? undefined : (options.credentials ?? (await pushCredentials(options.to.registry, env)));
  const client = new RegistryClient(options.to, { credentials, actions: 'pull,push', fetch: options.fetch });

  let uploaded = 0;
  let skipped = 0;
  const push = async (descriptor: Descriptor, body: () => Bun.BodyInit, name: string) => {
    const outcome = await uploadBlob(client, descriptor, body);
    if (outcome === 'uploaded') uploaded++;
    else skipped++;
    log(`${outcome === 'uploaded' ? 'pushed' : 'already there'}: ${name} (${descriptor.size} bytes)`);
  };
  await push(EMPTY_CONFIG, () => EMPTY_CONFIG_BYTES, 'config {}');
  for (const layer of built.layers) await push(layer.descriptor, () => Bun.file(layer.path), layer.spec.title);

  const tags = [options.version];
  await putManifest(client, options.version, built.bytes, MEDIA_TYPE_IMAGE_MANIFEST);
  log(`tagged ${options.version}: ${built.descriptor.digest}`);

  const referrers = built.layers
    .filter((l) => REFERRER_TITLES.includes(l.spec.title))
    .map((l) => referrerManifest(built.descriptor, l.descriptor, l.spec.mediaType, created));
  const attached = await attachReferrers(client, built.descriptor, referrers);
  if (referrers.length > 0) log(`attached ${referrers.length} referrer(s) through ${attached.via === 'referrers-api' ? 'the referrers API' : 'the sha256-<hex> tag schema'}`);

  if (options.channel && options.channel !== options.version) {
    await putManifest(client, options.channel, built.bytes, MEDIA_TYPE_IMAGE_MANIFEST);
    tags.push(options.channel);
    log(`tagged ${options.channel}: ${built.descriptor.digest}`);
  }
  return {
    reference: formatReference(options.to, { digest: built.descriptor.digest }),
    digest: built.descriptor.digest,
    tags,
    uploaded,
    skipped,
    referrers: { via: attached.via, digests: referrers.map((r) => r.descriptor.digest) },
  };
}
