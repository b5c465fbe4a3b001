/**
 * A build context goes to the engine as a tar stream read from disk as it is
 * sent: a large context never sits in memory whole. Entries carry no owner
 * names and a fixed mtime, so the engine's layer cache depends on contents only.
 */
import { stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { ContainaiError } from '../errors.ts';
import { displayPath, dockerfilePath, type ImageSpec } from './config.ts';

const FIXED_MTIME = new Date(0);

/** Refuses, before anything is sent, a context folder or a Dockerfile that is not there. */
export async function checkContext(image: ImageSpec): Promise<void> {
  const context = await stat(image.context).catch(() => undefined);
  if (!context?.isDirectory()) {
    throw new ContainaiError('NOT_FOUND', `image "${image.name}": build context ${displayPath(image.context)} is not a folder`, {
      hint: 'fix "context" in the image-set file',
    });
  }
  const dockerfile = await stat(dockerfilePath(image)).catch(() => undefined);
  if (!dockerfile?.isFile()) {
    throw new ContainaiError('NOT_FOUND', `image "${image.name}": no Dockerfile at ${displayPath(dockerfilePath(image))}`, {
      hint: 'fix "dockerfile" in the image-set file (it is relative to the context)',
    });
  }
}

/**
 * Streams the context folder as an uncompressed tar. The stream reads files
 * lazily; errors (an unreadable file) are emitted on it for the caller to handle.
 */
export async function contextTarStream(image: ImageSpec): Promise<Readable> {
  const { create } = await import('tar');
  const pack = create(
    {
      cwd: image.context,
      portable: true,
      mtime: FIXED_MTIME,
      follow: false,
      noDirRecurse: false,
    },
    ['.'],
  );
  // node-tar's Pack is a Minipass stream; docker-modem only needs pipe() and events.
  return pack as unknown as Readable;
}
