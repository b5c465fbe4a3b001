/**
 * payload/SHA256SUMS, read out of a payload.tar.gz as its bytes pass.
 *
 * An installed release's own SHA256SUMS is a file on disk like any other:
 * checked only against itself it proves nothing (change a file, rewrite its
 * line). Verifying a release again therefore compares it byte for byte with
 * the SHA256SUMS inside the kept bundle's payload, whose digest the signature
 * covers. containai-build sorts the payload's entries, so SHA256SUMS comes in
 * its first blocks (after LICENSE and README.md): the compressed prefix is kept
 * and inflated again each time it doubles, until the entry is whole; the rest
 * of the payload is never inflated. A payload that puts it later still works,
 * up to MAX_PREFIX_BYTES of compressed prefix.
 */
import { constants, gunzipSync } from 'node:zlib';
import { PAYLOAD_TOP, SUMS_FILE } from './layout.ts';
import { TarParser } from '../archive/tar.ts';
import { describeCause, isContainaiError } from '../errors.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
/** The SHA256SUMS of 500,000 files is about 40 MB. */
const MAX_SUMS_BYTES = 64 * MiB;
/** What is inflated to reach it: LICENSE, README.md and SHA256SUMS itself, with headers. */
const MAX_WINDOW_BYTES = MAX_SUMS_BYTES + 16 * MiB;
const MAX_PREFIX_BYTES = MAX_WINDOW_BYTES;
const FIRST_TRY_BYTES = 64 * KiB;

export const PAYLOAD_SUMS_PATH = `${PAYLOAD_TOP}/${SUMS_FILE}`;

/** The payload's SHA256SUMS bytes, or why they could not be read. */
export type PayloadSums = { sums: Uint8Array } | { problem: string };

export class PayloadSumsReader {
  private chunks: Uint8Array[] = [];
  private bytes = 0;
  private nextTry = FIRST_TRY_BYTES;
  private outcome: PayloadSums | undefined;

  /** True once the entry was read whole (or the reader gave up): further bytes are not needed. */
  get done(): boolean {
    return this.outcome !== undefined;
  }

  /** The payload's next compressed bytes. Copied while they are needed: the caller may reuse its buffer. */
  write(chunk: Uint8Array): void {
    if (this.outcome) return;
    this.chunks.push(chunk.slice());
    this.bytes += chunk.length;
    if (this.bytes >= this.nextTry) {
      this.attempt(false);
      this.nextTry = this.bytes * 2;
    }
  }

  /** The payload ended: a last attempt over every byte, then the outcome. */
  end(): PayloadSums {
    if (!this.outcome) this.attempt(true);
    return this.outcome as PayloadSums;
  }

  private attempt(final: boolean): void {
    if (!final && this.bytes > MAX_PREFIX_BYTES) {
      this.settle({ problem: `${SUMS_FILE} is not within the first ${MAX_PREFIX_BYTES / MiB} MiB of payload.tar.gz` });
      return;
    }
    const prefix = Buffer.concat(this.chunks);
    let inflated: Buffer;
    try {
      // Z_SYNC_FLUSH: a prefix of a gzip stream inflates to what it holds, without a truncation error.
      inflated = gunzipSync(prefix, { finishFlush: constants.Z_SYNC_FLUSH, maxOutputLength: MAX_WINDOW_BYTES });
    } catch (err) {
      if (err instanceof RangeError || /larger than|maxOutputLength|ERR_BUFFER_TOO_LARGE/i.test(String(err))) {
        this.settle({ problem: `${SUMS_FILE} is not within the first ${MAX_WINDOW_BYTES / MiB} MiB of the unpacked payload` });
      } else {
        this.settle({ problem: `payload.tar.gz cannot be unpacked (${describeCause(err)})` });
      }
      return;
    }
    let sums: Uint8Array[] | undefined;
    let whole = false;
    const parser = new TarParser(
      {
        entry(header) {
          if (header.path !== PAYLOAD_SUMS_PATH || sums) return undefined;
          if (header.kind !== 'file') throw new Error(`${SUMS_FILE} is a ${header.kind}, not a file`);
          if (header.size > MAX_SUMS_BYTES) throw new Error(`${SUMS_FILE} declares ${header.size} bytes (at most ${MAX_SUMS_BYTES})`);
          const parts: Uint8Array[] = [];
          sums = parts;
          return { write: (chunk) => void parts.push(chunk.slice()), end: () => void (whole = true) };
        },
      },
      MAX_WINDOW_BYTES,
      'payload.tar.gz',
    );
    try {
      parser.feed(inflated);
      if (!whole && final) parser.finish();
    } catch (err) {
      this.settle({ problem: isContainaiError(err) ? err.message : `payload.tar.gz: ${describeCause(err)}` });
      return;
    }
    if (whole && sums) this.settle({ sums: Buffer.concat(sums) });
    else if (final) this.settle({ problem: `the payload has no ${SUMS_FILE}` });
  }

  private settle(outcome: PayloadSums): void {
    this.outcome = outcome;
    this.chunks = [];
  }
}

/** Why a release's SHA256SUMS is not the one its signed payload holds; undefined when it is. */
export function sumsMismatch(payload: PayloadSums | undefined, tree: Uint8Array): string | undefined {
  if (!payload) return `${SUMS_FILE} could not be read from the kept bundle's payload`;
  if ('problem' in payload) return `${SUMS_FILE} could not be read from the kept bundle's payload: ${payload.problem}`;
  return Buffer.from(payload.sums).equals(Buffer.from(tree))
    ? undefined
    : `the release's ${SUMS_FILE} is not the one in its kept bundle's payload (it was changed after install)`;
}
