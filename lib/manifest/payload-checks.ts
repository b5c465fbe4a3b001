/**
 * The install side of the one verifier (verify.ts): the facts gathered from
 * payload.tar.gz as it streams into the staging folder. The payload opens with
 * SHA256SUMS and release.json; SHA256SUMS must be byte for byte the manifest
 * whose signature was verified, release.json gives the manifest (step 2),
 * and from then on every entry is judged at its header, before a byte of it
 * is written, and every file by its digest as it is written (step 3). The
 * first refusal stops the extraction.
 */
import type { TarHeader } from '../archive/tar.ts';
import type { ExtractionChecks } from '../archive/extract.ts';
import { RELEASE_FILE, SUMS_FILE } from '../bundle/layout.ts';
import { type Manifest, readManifest } from './manifest.ts';
import { ReleaseRefusal } from './refusal.ts';
import { EntryJudge, type SeenEntry, throwFirst } from './verify.ts';

export interface PayloadChecksOptions {
  /** SHA256SUMS as its signature was verified. */
  sums: Uint8Array;
  /** The version asked for; undefined when the verified release.json decides (a registry install). */
  version?: string;
  /** The manifest, when release.json came apart from the payload (a registry layer) and was read already. */
  manifest?: Manifest;
}

function seen(path: string, header: TarHeader): SeenEntry {
  const type = header.kind === 'directory' ? 'dir' : header.kind === 'file' || header.kind === 'symlink' ? header.kind : 'other';
  return { path, type, mode: header.mode, target: header.kind === 'symlink' ? header.linkpath : undefined };
}

export class PayloadChecks implements ExtractionChecks {
  private judge: EntryJudge | undefined;
  /** The manifest's own two entries, judged once release.json has made the manifest. */
  private readonly early: Array<{ entry: SeenEntry; sha256?: string }> = [];

  private manifestRead: Manifest | undefined;

  constructor(private readonly options: PayloadChecksOptions) {
    if (options.manifest) {
      this.manifestRead = options.manifest;
      this.judge = new EntryJudge(options.manifest);
    }
  }

  /** The manifest, once known. */
  get manifest(): Manifest | undefined {
    return this.manifestRead;
  }

  entry(path: string, header: TarHeader): void {
    if (this.judge) {
      throwFirst([this.judge.entry(seen(path, header))]);
      return;
    }
    const expected = this.early.length === 0 ? SUMS_FILE : this.early.length === 1 ? RELEASE_FILE : undefined;
    if (path !== expected || header.kind !== 'file') {
      throw new ReleaseRefusal('manifest', `the payload must open with ${SUMS_FILE} and ${RELEASE_FILE}, and ${expected === undefined ? 'release.json gave no manifest' : `its entry ${this.early.length + 1} is not ${expected}`}`, { entry: path });
    }
    this.early.push({ entry: seen(path, header) });
  }

  capture(path: string): boolean {
    return path === SUMS_FILE || path === RELEASE_FILE;
  }

  file(path: string, sha256: string, bytes?: Uint8Array): void {
    if (path === SUMS_FILE && bytes && !Buffer.from(bytes).equals(Buffer.from(this.options.sums))) {
      throw new ReleaseRefusal('digest', `is not the ${SUMS_FILE} whose signature was verified`, { entry: path });
    }
    if (!this.judge) {
      const early = this.early.find((e) => e.entry.path === path);
      if (early) early.sha256 = sha256;
      if (path === RELEASE_FILE && bytes) this.useManifest(readManifest(this.options.sums, bytes, this.options.version));
      return;
    }
    throwFirst([this.judge.digest(path, sha256)]);
  }

  finish(): void {
    if (!this.judge) throw new ReleaseRefusal('manifest', `the payload holds no ${RELEASE_FILE}, so nothing signed says what it is`);
    throwFirst(this.judge.missing());
  }

  private useManifest(manifest: Manifest): void {
    this.manifestRead = manifest;
    const judge = new EntryJudge(manifest);
    this.judge = judge;
    for (const { entry, sha256 } of this.early) {
      throwFirst([judge.entry(entry), sha256 === undefined ? undefined : judge.digest(entry.path, sha256)]);
    }
  }
}
