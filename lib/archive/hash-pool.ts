/**
 * SHA-256 of extracted files on worker threads, so hashing (the largest CPU
 * cost of an install on a CPU without SHA extensions: ~200 MB/s) runs beside
 * gunzip (zlib's thread) and the writes (main thread) instead of after them.
 *
 * The main thread batches, per gunzip chunk and per worker, the byte ranges of
 * each file into one copied buffer that is transferred (not cloned) to the
 * worker. Bytes in flight are bounded: past the bound the reader waits, so
 * memory stays flat whatever the archive's size.
 *
 * The worker's code is inline (a Blob URL) so `bun build --compile` needs no
 * extra entry point for it.
 */
import { writeSync } from 'node:fs';

const WORKER_SOURCE = `
const hashers = new Map();
self.onmessage = (event) => {
  const { data, ops } = event.data;
  let off = 0;
  const done = [];
  for (let i = 0; i < ops.length; i += 2) {
    const id = ops[i];
    const len = ops[i + 1];
    let hasher = hashers.get(id);
    if (hasher === undefined) {
      hasher = new Bun.CryptoHasher('sha256');
      hashers.set(id, hasher);
    }
    if (len >= 0) {
      hasher.update(data.subarray(off, off + len));
      off += len;
    } else {
      done.push(id, hasher.digest('hex'));
      hashers.delete(id);
    }
  }
  postMessage({ bytes: data.length, done });
};
`;

/** Unacknowledged bytes allowed before the reader waits for the workers. */
const MAX_IN_FLIGHT = 16 * 1024 * 1024;

interface Batch {
  segments: Uint8Array[];
  ops: number[];
  bytes: number;
}

let workerUrl: string | undefined;

export class HashPool {
  private readonly workers: Worker[] = [];
  private readonly batches: Batch[] = [];
  private readonly callbacks = new Map<number, (hex: string) => void>();
  private nextId = 0;
  private inFlight = 0;
  private failure: Error | undefined;
  private wake: (() => void) | undefined;

  constructor(threads: number) {
    workerUrl ??= URL.createObjectURL(new Blob([WORKER_SOURCE], { type: 'application/javascript' }));
    for (let i = 0; i < threads; i++) {
      const worker = new Worker(workerUrl);
      worker.onmessage = (event: MessageEvent<{ bytes: number; done: Array<number | string> }>) => this.received(event.data);
      worker.onerror = (event) => {
        this.failure ??= new Error(`hash worker failed: ${event.message}`);
        this.wake?.();
      };
      this.workers.push(worker);
      this.batches.push({ segments: [], ops: [], bytes: 0 });
    }
  }

  /** A new file; its bytes go to one worker, in order. */
  begin(): number {
    return this.nextId++;
  }

  update(id: number, chunk: Uint8Array): void {
    const batch = this.batches[id % this.batches.length] as Batch;
    batch.segments.push(chunk);
    batch.ops.push(id, chunk.length);
    batch.bytes += chunk.length;
  }

  end(id: number, onDigest: (hex: string) => void): void {
    this.callbacks.set(id, onDigest);
    (this.batches[id % this.batches.length] as Batch).ops.push(id, -1);
  }

  /**
   * Sends what was batched (call once per input chunk: the chunks referenced
   * are copied here). Resolves when the bytes in flight are under the bound.
   */
  flush(): Promise<void> | undefined {
    this.batches.forEach((batch, i) => {
      if (batch.ops.length === 0) return;
      const data = new Uint8Array(batch.bytes);
      let off = 0;
      for (const segment of batch.segments) {
        data.set(segment, off);
        off += segment.length;
      }
      this.inFlight += Math.max(batch.bytes, 1);
      (this.workers[i] as Worker).postMessage({ data, ops: batch.ops }, [data.buffer]);
      this.batches[i] = { segments: [], ops: [], bytes: 0 };
    });
    if (this.failure) throw this.failure;
    if (this.inFlight <= MAX_IN_FLIGHT) return undefined;
    return this.waitUntil(() => this.inFlight <= MAX_IN_FLIGHT);
  }

  /** Flushes and waits for every digest. */
  async finish(): Promise<void> {
    await this.flush();
    await this.waitUntil(() => this.callbacks.size === 0 && this.inFlight === 0);
  }

  terminate(): void {
    for (const worker of this.workers) worker.terminate();
    this.workers.length = 0;
  }

  private received(message: { bytes: number; done: Array<number | string> }): void {
    this.inFlight -= Math.max(message.bytes, 1);
    for (let i = 0; i < message.done.length; i += 2) {
      const id = message.done[i] as number;
      this.callbacks.get(id)?.(message.done[i + 1] as string);
      this.callbacks.delete(id);
    }
    this.wake?.();
  }

  private async waitUntil(ready: () => boolean): Promise<void> {
    while (!ready()) {
      if (this.failure) throw this.failure;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
      this.wake = undefined;
    }
    if (this.failure) throw this.failure;
  }
}

/** One stream's SHA-256: on a pool worker when there is a pool, else in this thread. */
export interface StreamHash {
  update(chunk: Uint8Array): void;
  /** Calls back with the hex digest (later, when a worker computes it). */
  end(onDigest: (hex: string) => void): void;
}

export function startStreamHash(pool: HashPool | undefined): StreamHash {
  if (pool) {
    const id = pool.begin();
    return { update: (chunk) => pool.update(id, chunk), end: (onDigest) => pool.end(id, onDigest) };
  }
  const hasher = new Bun.CryptoHasher('sha256');
  return { update: (chunk) => void hasher.update(chunk), end: (onDigest) => onDigest(hasher.digest('hex')) };
}

/** writeSync until the whole chunk is written (a short write is not an error). */
export function writeFully(fd: number, chunk: Uint8Array): void {
  let off = 0;
  while (off < chunk.length) off += writeSync(fd, chunk, off, chunk.length - off);
}
