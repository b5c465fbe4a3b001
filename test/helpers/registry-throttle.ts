/**
 * A pass-through HTTP proxy in front of a registry, for the tests that need a
 * download to stop at a known byte: every request is forwarded as it came
 * (Authorization and WWW-Authenticate included, so the client meets the
 * registry's own auth), and every answer comes back as the registry sent it,
 * except that a blob's body can be held after N bytes. The connection stays
 * open and silent (a registry that stalls), so the client has written
 * exactly N bytes when the test kills it. release() then lets go of the
 * held requests upstream, so the registry finishes and logs them.
 */
import { freePort, trackStop } from './services.ts';

export interface ThrottleProxy {
  /** host:port of the proxy (loopback: the client speaks plain http to it). */
  address: string;
  /** Hold each blob answer after this many body bytes; undefined forwards everything. */
  holdBlobsAfter(bytes: number | undefined): void;
  /** Body bytes of blob answers sent to clients so far. */
  readonly blobBytes: number;
  /** Requests currently held. */
  readonly held: number;
  /** Ends every held request (its upstream fetch aborted). */
  release(): void;
  stop(): void;
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'host', 'upgrade', 'proxy-connection', 'te', 'trailer']);

export async function startThrottleProxy(upstream: string): Promise<ThrottleProxy> {
  let holdAfter: number | undefined;
  let blobBytes = 0;
  const held = new Set<AbortController>();
  const port = await freePort();
  const server = Bun.serve({
    hostname: '127.0.0.1',
    port,
    // A held answer is silent for as long as the test needs; Bun's default would close it after 10 s.
    idleTimeout: 0,
    async fetch(request) {
      const url = new URL(request.url);
      const headers = new Headers();
      request.headers.forEach((value, key) => {
        if (!HOP_BY_HOP.has(key.toLowerCase())) headers.set(key, value);
      });
      const controller = new AbortController();
      request.signal.addEventListener('abort', () => controller.abort());
      const hasBody = request.method !== 'GET' && request.method !== 'HEAD';
      const answer = await fetch(`http://${upstream}${url.pathname}${url.search}`, {
        method: request.method,
        headers,
        body: hasBody ? await request.arrayBuffer() : undefined,
        redirect: 'manual',
        signal: controller.signal,
        decompress: false,
      } as RequestInit);
      const out = new Headers();
      answer.headers.forEach((value, key) => {
        if (!HOP_BY_HOP.has(key.toLowerCase())) out.set(key, value);
      });
      const isBlob = request.method === 'GET' && url.pathname.includes('/blobs/sha256:') && answer.body !== null;
      if (!isBlob || holdAfter === undefined) {
        if (isBlob && answer.body) {
          const counted = answer.body.pipeThrough(
            new TransformStream<Uint8Array, Uint8Array>({
              transform(chunk, sink) {
                blobBytes += chunk.byteLength;
                sink.enqueue(chunk);
              },
            }),
          );
          return new Response(counted, { status: answer.status, headers: out });
        }
        return new Response(answer.body, { status: answer.status, headers: out });
      }
      const limit = holdAfter;
      const reader = (answer.body as ReadableStream<Uint8Array>).getReader();
      let sent = 0;
      const body = new ReadableStream<Uint8Array>({
        async pull(sink) {
          if (sent >= limit) {
            // Hold: no more bytes, no end, until the test lets go.
            held.add(controller);
            await new Promise<void>((resolve) => controller.signal.addEventListener('abort', () => resolve(), { once: true }));
            held.delete(controller);
            await reader.cancel().catch(() => undefined);
            sink.error(new Error('released'));
            return;
          }
          const { value, done } = await reader.read();
          if (done) return sink.close();
          const chunk = value.subarray(0, Math.min(value.byteLength, limit - sent));
          sent += chunk.byteLength;
          blobBytes += chunk.byteLength;
          sink.enqueue(chunk);
        },
        cancel() {
          controller.abort();
        },
      });
      return new Response(body, { status: answer.status, headers: out });
    },
  });
  const stop = () => {
    for (const c of held) c.abort();
    server.stop(true);
  };
  trackStop(stop);
  return {
    address: `127.0.0.1:${port}`,
    holdBlobsAfter(bytes) {
      holdAfter = bytes;
    },
    get blobBytes() {
      return blobBytes;
    },
    get held() {
      return held.size;
    },
    release() {
      for (const c of held) c.abort();
    },
    stop,
  };
}
