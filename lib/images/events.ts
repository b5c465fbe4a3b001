/**
 * The engine answers /build and /images/{name}/push with a stream of JSON
 * objects, one per line; a failure arrives as an object with "error" inside a
 * 200 response, not as an HTTP error. This reads that stream and turns the
 * engine's errors into ContainaiErrors at this boundary, redacted.
 */
import { ContainaiError, describeCause, type ErrorCode } from '../errors.ts';
import { redact } from '../secrets.ts';

export interface EngineEvent {
  stream?: string;
  status?: string;
  id?: string;
  progress?: string;
  error?: string;
  errorDetail?: { message?: string; code?: number };
  aux?: { ID?: string; Tag?: string; Digest?: string; Size?: number };
}

/** Yields each JSON object of an engine progress stream. */
export async function* engineEvents(stream: NodeJS.ReadableStream): AsyncGenerator<EngineEvent> {
  const decoder = new TextDecoder();
  let buffer = '';
  for await (const chunk of stream) {
    buffer += typeof chunk === 'string' ? chunk : decoder.decode(chunk as Uint8Array, { stream: true });
    let newline: number;
    while ((newline = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, newline).trim();
      buffer = buffer.slice(newline + 1);
      if (line) yield parseLine(line);
    }
  }
  const rest = (buffer + decoder.decode()).trim();
  if (rest) yield parseLine(rest);
}

function parseLine(line: string): EngineEvent {
  try {
    return JSON.parse(line) as EngineEvent;
  } catch {
    // Not JSON: keep it as text rather than lose what the engine said.
    return { stream: line };
  }
}

/** The engine's own words for a failure event. */
export function eventError(event: EngineEvent): string | undefined {
  const message = event.errorDetail?.message ?? event.error;
  return message ? redact(message.trim()) : undefined;
}

/**
 * Wraps an error thrown by dockerode (socket refused, HTTP 4xx/5xx with the
 * engine's JSON message) into one line the user can act on. Secrets the engine
 * echoed are redacted.
 */
export function wrapEngineError(err: unknown, what: string, code: ErrorCode = 'ENGINE', hint?: string): ContainaiError {
  if (err instanceof ContainaiError) return err;
  const e = err as { json?: { message?: string } | string; reason?: string; statusCode?: number; code?: string };
  let detail: string;
  if (e?.json && typeof e.json === 'object' && e.json.message) detail = e.json.message;
  else if (typeof e?.json === 'string' && e.json.trim()) detail = e.json.trim();
  // dockerode prefixes the engine's words with its own: "(HTTP code 400) unexpected - <message>".
  else detail = describeCause(err).replace(/^\(HTTP code \d+\) [^-]*- /, '');
  const socketProblem = e?.code === 'ECONNREFUSED' || e?.code === 'ENOENT' || e?.code === 'EACCES';
  return new ContainaiError(code, redact(`${what}: ${detail.trim()}`), {
    cause: err,
    hint:
      hint ??
      (socketProblem
        ? 'the Docker engine did not answer: start dockerd, or set DOCKER_HOST to its socket (unix:///path or tcp://host:port)'
        : undefined),
  });
}
