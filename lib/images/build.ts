/**
 * Builds images of the set through the Docker Engine API: the context goes up
 * as a tar stream, the engine's output comes back as progress lines, and a
 * failure is reported with the image, the Dockerfile step and the engine's
 * own message. Nothing here pushes.
 */
import type Docker from 'dockerode';
import { ContainaiError, describeCause } from '../errors.ts';
import { redact } from '../secrets.ts';
import { BASE_IMAGE_ARG, displayPath, dockerfilePath, type ImageSpec } from './config.ts';
import { checkContext, contextTarStream } from './context.ts';
import { engineEvents, eventError, wrapEngineError } from './events.ts';

export interface BuiltImage {
  name: string;
  reference: string;
  /** The local image ID (sha256:…), when the engine said it. */
  id?: string;
}

/** Receives the engine's build output, one line at a time, for the person watching. */
export type BuildOutput = (image: ImageSpec, line: string) => void;

const STEP = /^Step (\d+\/\d+) : (.*)$/;

/** Builds one image tagged `reference`; `baseReference` fills BASE_IMAGE when the image is built from another. */
export async function buildImage(
  engine: Docker,
  image: ImageSpec,
  reference: string,
  baseReference: string | undefined,
  output: BuildOutput,
): Promise<BuiltImage> {
  await checkContext(image);
  const context = await contextTarStream(image);
  const abort = new AbortController();
  let contextError: unknown;
  context.on('error', (err) => {
    contextError = err;
    abort.abort();
  });

  const failed = (message: string, step?: string) =>
    new ContainaiError('ENGINE', `image "${image.name}" failed to build${step ? ` at step ${step}` : ''}: ${message}`, {
      hint: `fix ${displayPath(dockerfilePath(image))} or its build context; the engine's output is above`,
      details: { image: image.name, step, engineMessage: message },
    });
  const contextFailed = () =>
    new ContainaiError('INPUT', `image "${image.name}": cannot read build context ${displayPath(image.context)}: ${describeCause(contextError)}`, {
      cause: contextError,
      hint: 'every file in the context folder must be readable',
    });

  let response: NodeJS.ReadableStream;
  try {
    response = await engine.buildImage(context, {
      t: reference,
      dockerfile: image.dockerfile,
      buildargs: baseReference ? { [BASE_IMAGE_ARG]: baseReference } : undefined,
      rm: true,
      forcerm: true,
      abortSignal: abort.signal,
    } as Docker.ImageBuildOptions);
  } catch (err) {
    if (contextError) throw contextFailed();
    throw wrapEngineError(err, `image "${image.name}" failed to build`, 'ENGINE', `fix ${displayPath(dockerfilePath(image))}, or check that the Docker engine answers`);
  }

  let step: string | undefined;
  let id: string | undefined;
  try {
    for await (const event of engineEvents(response)) {
      const message = eventError(event);
      if (message) throw failed(message, step);
      if (event.aux?.ID) id = event.aux.ID;
      const text = event.stream ?? (event.status ? [event.status, event.id, event.progress].filter(Boolean).join(' ') : '');
      for (const raw of text.split('\n')) {
        const line = raw.trimEnd();
        if (!line) continue;
        const match = STEP.exec(line);
        if (match) step = `${match[1]} (${match[2]})`;
        output(image, redact(line));
      }
    }
  } catch (err) {
    if (contextError) throw contextFailed();
    if (err instanceof ContainaiError) throw err;
    throw failed(`the engine's output stopped: ${describeCause(err)}`, step);
  }
  if (contextError) throw contextFailed();
  return { name: image.name, reference, id };
}

/** The dev namespace of profile.sample.env: what `images build` tags. */
export function devReference(name: string): string {
  return `containai-dev-${name}:devlocal`;
}
