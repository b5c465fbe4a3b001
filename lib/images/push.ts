/**
 * Pushes built images through the engine and records what the registry now
 * serves: each image's manifest digest, as the engine read it back from the
 * registry at the end of the push (the push stream's aux.Digest).
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { ContainaiError, describeCause } from '../errors.ts';
import { writeFileAtomic } from '../fs/atomic.ts';
import { redact } from '../secrets.ts';
import type { RegistryAuth } from './auth.ts';
import { engineEvents, eventError, wrapEngineError } from './events.ts';

export interface PushedImage {
  name: string;
  reference: string;
  digest: string;
}

export interface ImagesRecord {
  version: string;
  images: PushedImage[];
}

export const IMAGES_RECORD_FILE = 'images.json';

const DIGEST = /^sha256:[0-9a-f]{64}$/;
/** The engine's closing status line, for engines that do not send aux: "v1.2.3: digest: sha256:… size: 528". */
const DIGEST_STATUS = /: digest: (sha256:[0-9a-f]{64}) size: \d+/;

/** Splits host:port/path/name:tag into repository and tag (the port's colon is not the tag's). */
export function splitReference(reference: string): { repository: string; tag: string } {
  const slash = reference.lastIndexOf('/');
  const colon = reference.lastIndexOf(':');
  if (colon <= slash) return { repository: reference, tag: 'latest' };
  return { repository: reference.slice(0, colon), tag: reference.slice(colon + 1) };
}

/** What to tell the user about a push the registry or the network refused. */
function pushHint(message: string, registry: string): string {
  if (/unauthori[sz]ed|authentication required|denied|forbidden|\b401\b|\b403\b|incorrect username or password/i.test(message)) {
    return `the registry refused the credentials: check that GHCR_PAT (or GITHUB_TOKEN) may write packages to ${registry} and that GHCR_USER (or GITHUB_ACTOR) is its owner`;
  }
  if (/connection refused|no such host|i\/o timeout|dial tcp|no route to host|network is unreachable|connection reset|EOF/i.test(message)) {
    return `the registry ${registry} did not answer: check REGISTRY in the profile and that the engine can reach it`;
  }
  return `check REGISTRY in the profile and the registry's status; nothing after this image was pushed`;
}

/** Pushes one image by its reference; resolves to the manifest digest the registry stored. */
export async function pushImage(
  engine: Docker,
  name: string,
  reference: string,
  auth: RegistryAuth,
  output: (line: string) => void,
): Promise<PushedImage> {
  const { repository, tag } = splitReference(reference);
  const registry = auth.serveraddress;
  const failed = (message: string, cause?: unknown) =>
    new ContainaiError('NETWORK', redact(`push of image "${name}" to ${reference} failed: ${message}`), {
      cause,
      hint: pushHint(message, registry),
      details: { image: name, reference },
    });

  let response: NodeJS.ReadableStream;
  try {
    response = await engine.getImage(repository).push({ tag, authconfig: auth });
  } catch (err) {
    throw wrapEngineError(err, `push of image "${name}" to ${reference} failed`, 'NETWORK');
  }

  let digest: string | undefined;
  try {
    for await (const event of engineEvents(response)) {
      const message = eventError(event);
      if (message) throw failed(message);
      if (event.aux?.Digest && DIGEST.test(event.aux.Digest)) digest = event.aux.Digest;
      const status = event.status ? [event.id, event.status].filter(Boolean).join(': ') : '';
      const fromStatus = DIGEST_STATUS.exec(status)?.[1];
      if (!digest && fromStatus) digest = fromStatus;
      // Per-layer "Preparing"/"Waiting" lines are noise in a CI log; keep the ones that say something happened.
      if (status && !/^(?:[0-9a-f]{12}: )?(?:Preparing|Waiting|Pushing)$/.test(status)) output(redact(status));
    }
  } catch (err) {
    if (err instanceof ContainaiError) throw err;
    throw failed(`the engine's output stopped: ${describeCause(err)}`, err);
  }
  if (!digest) throw failed('the engine finished without reporting the manifest digest');
  return { name, reference, digest };
}

/** Writes <out>/<version>/images.json whole (a reader never sees half of it). */
export async function writeImagesRecord(outDir: string, record: ImagesRecord): Promise<string> {
  const dir = join(outDir, record.version);
  await mkdir(dir, { recursive: true });
  const path = join(dir, IMAGES_RECORD_FILE);
  await writeFileAtomic(path, `${JSON.stringify(record, null, 2)}\n`);
  return path;
}

