/**
 * The OCI image layout (image-spec image-layout.md), written and read:
 *
 *   DIR/oci-layout        {"imageLayoutVersion": "1.0.0"}
 *   DIR/index.json        an image index; a tag is the entry's
 *                         org.opencontainers.image.ref.name annotation
 *   DIR/blobs/sha256/HEX  every manifest and blob, named by its digest
 *
 * This is what `skopeo copy … oci:DIR:TAG` writes and what mirror writes for
 * air-gapped hosts. Referrers are kept as untagged index entries (as ORAS
 * does), and a reader also follows a `sha256-<hex>` tag-schema index. Every
 * blob read is checked against its digest and size; a blob is written beside
 * its final name and renamed into place only once its digest matched.
 */
import { constants, existsSync } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256File } from '../digest.ts';
import { ContainaiError, describeCause } from '../errors.ts';
import { fsyncDir, tempSibling, writeFileAtomic } from '../fs/atomic.ts';
import { printableName } from '../text.ts';
import {
  ANNOTATION_REF_NAME,
  canonicalBytes,
  digestHex,
  digestOf,
  ImageIndexSchema,
  ImageManifestSchema,
  MAX_MANIFEST_BYTES,
  MEDIA_TYPE_IMAGE_INDEX,
  MEDIA_TYPE_IMAGE_MANIFEST,
  parseJsonDocument,
  referrersTag,
  type Descriptor,
  type ImageIndex,
} from './types.ts';

export const LAYOUT_FILE = 'oci-layout';
export const INDEX_FILE = 'index.json';
export const LAYOUT_VERSION = '1.0.0';
const CHUNK = 1 << 20;

const HINT = 'point at a folder written by `containai-host mirror` or `skopeo copy … oci:DIR:TAG`';

export function blobPath(dir: string, digest: string): string {
  return join(dir, 'blobs', 'sha256', digestHex(digest));
}

function mismatch(what: string, dir: string, expected: string, actual: string): ContainaiError {
  return new ContainaiError('VERIFY', `${what} in the layout ${printableName(dir)} does not match its digest (expected ${expected}, got ${actual})`, {
    hint: 'the layout is damaged or was changed: mirror it again from the registry',
  });
}

/** Reads an OCI image layout; every blob checked against its digest. */
export class LayoutReader {
  private constructor(
    readonly dir: string,
    readonly index: ImageIndex,
  ) {}

  static async open(dir: string): Promise<LayoutReader> {
    let header: Uint8Array;
    try {
      header = await readFile(join(dir, LAYOUT_FILE));
    } catch (err) {
      throw new ContainaiError('NOT_FOUND', `${printableName(dir)} is not an OCI image layout (no ${LAYOUT_FILE}: ${describeCause(err)})`, { hint: HINT });
    }
    let version: unknown;
    try {
      version = (JSON.parse(new TextDecoder().decode(header)) as { imageLayoutVersion?: unknown }).imageLayoutVersion;
    } catch {
      version = undefined;
    }
    if (version !== LAYOUT_VERSION) {
      throw new ContainaiError('INPUT', `${printableName(dir)}/${LAYOUT_FILE} does not say imageLayoutVersion ${LAYOUT_VERSION}`, { hint: HINT });
    }
    let indexBytes: Uint8Array;
    try {
      indexBytes = await readFile(join(dir, INDEX_FILE));
    } catch (err) {
      throw new ContainaiError('NOT_FOUND', `${printableName(dir)} has no readable ${INDEX_FILE} (${describeCause(err)})`, { hint: HINT });
    }
    if (indexBytes.byteLength > MAX_MANIFEST_BYTES) throw new ContainaiError('INPUT', `${printableName(dir)}/${INDEX_FILE} is too large`, { hint: HINT });
    const index = parseJsonDocument(indexBytes, ImageIndexSchema, `${printableName(dir)}/${INDEX_FILE}`, HINT);
    return new LayoutReader(dir, index);
  }

  /** The tags of the layout (ref.name annotations), referrers-schema tags left out. */
  tags(): string[] {
    return this.index.manifests.map((m) => m.annotations?.[ANNOTATION_REF_NAME]).filter((t): t is string => !!t && !/^sha256-[0-9a-f]{64}$/.test(t));
  }

  /** The index entry a tag or digest names; with neither, the layout's only tagged manifest. */
  resolve(ref: { tag?: string; digest?: string }): Descriptor {
    const entries = this.index.manifests;
    if (ref.digest) {
      const found = entries.find((m) => m.digest === ref.digest);
      if (found) return found;
      throw new ContainaiError('NOT_FOUND', `the layout ${printableName(this.dir)} has no manifest ${ref.digest} in its index`, { hint: `its tags: ${this.tags().join(', ') || '(none)'}` });
    }
    if (ref.tag) {
      const found = entries.filter((m) => m.annotations?.[ANNOTATION_REF_NAME] === ref.tag);
      const digests = new Set(found.map((m) => m.digest));
      if (digests.size === 1) return found[0] as Descriptor;
      if (digests.size > 1) throw new ContainaiError('INPUT', `the layout ${printableName(this.dir)} names tag ${ref.tag} for more than one manifest`, { hint: 'mirror it again' });
      throw new ContainaiError('NOT_FOUND', `the layout ${printableName(this.dir)} has no tag ${ref.tag}`, { hint: `its tags: ${this.tags().join(', ') || '(none)'}` });
    }
    const tagged = [...new Set(entries.filter((m) => this.tags().includes(m.annotations?.[ANNOTATION_REF_NAME] ?? '')).map((m) => m.digest))];
    if (tagged.length === 1) return entries.find((m) => m.digest === tagged[0]) as Descriptor;
    throw new ContainaiError('USAGE', `the layout ${printableName(this.dir)} holds ${tagged.length === 0 ? 'no tagged manifest' : 'several releases'}: name one with oci-layout:DIR:TAG`, {
      hint: `its tags: ${this.tags().join(', ') || '(none)'}`,
    });
  }

  /** A small blob (a manifest, a signature) read whole, checked against its size and digest. */
  async readBlob(descriptor: Descriptor, maxBytes: number, label = `blob ${descriptor.digest}`): Promise<Uint8Array> {
    if (descriptor.size > maxBytes) throw new ContainaiError('INPUT', `${label} in the layout is ${descriptor.size} bytes (at most ${maxBytes})`, { hint: HINT });
    const chunks: Uint8Array[] = [];
    for await (const chunk of this.streamBlob(descriptor, label)) chunks.push(chunk);
    return Buffer.concat(chunks);
  }

  /** A blob's bytes in order; throws after the last byte when size or digest does not match. */
  async *streamBlob(descriptor: Descriptor, label = `blob ${descriptor.digest}`): AsyncGenerator<Uint8Array> {
    const path = blobPath(this.dir, descriptor.digest);
    let handle;
    try {
      // Not through a link: a blob is a file of the layout.
      handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
    } catch (err) {
      throw new ContainaiError('NOT_FOUND', `${label} is missing from the layout ${printableName(this.dir)} (${describeCause(err)})`, { hint: 'the layout is incomplete: mirror it again' });
    }
    const hasher = new Bun.CryptoHasher('sha256');
    let total = 0;
    try {
      for (;;) {
        const buffer = Buffer.allocUnsafe(CHUNK);
        const { bytesRead } = await handle.read(buffer, 0, CHUNK, null);
        if (bytesRead === 0) break;
        total += bytesRead;
        if (total > descriptor.size) throw mismatch(label, this.dir, `${descriptor.size} bytes`, `more`);
        const chunk = buffer.subarray(0, bytesRead);
        hasher.update(chunk);
        yield chunk;
      }
    } finally {
      await handle.close();
    }
    const actual = `sha256:${hasher.digest('hex')}`;
    if (total !== descriptor.size || actual !== descriptor.digest) throw mismatch(label, this.dir, descriptor.digest, actual);
  }

  /** The manifests whose subject is `subjectDigest`: untagged index entries, and a sha256-<hex> tag-schema index. */
  async referrers(subjectDigest: string): Promise<Descriptor[]> {
    const found = new Map<string, Descriptor>();
    for (const entry of this.index.manifests) {
      if (entry.mediaType === MEDIA_TYPE_IMAGE_MANIFEST && entry.digest !== subjectDigest) {
        const bytes = await this.readBlob(entry, MAX_MANIFEST_BYTES).catch(() => undefined);
        if (!bytes) continue;
        let json: unknown;
        try {
          json = JSON.parse(new TextDecoder().decode(bytes));
        } catch {
          continue;
        }
        const parsed = ImageManifestSchema.safeParse(json);
        if (parsed.success && parsed.data.subject?.digest === subjectDigest) found.set(entry.digest, { ...entry, artifactType: entry.artifactType ?? parsed.data.artifactType });
      }
      if (entry.mediaType === MEDIA_TYPE_IMAGE_INDEX && entry.annotations?.[ANNOTATION_REF_NAME] === referrersTag(subjectDigest)) {
        const bytes = await this.readBlob(entry, MAX_MANIFEST_BYTES);
        const index = parseJsonDocument(bytes, ImageIndexSchema, `the referrers index in ${printableName(this.dir)}`, HINT);
        for (const m of index.manifests) found.set(m.digest, m);
      }
    }
    return [...found.values()];
  }
}

/** Writes an OCI image layout, adding to what a folder already holds (a mirror refreshed). */
export class LayoutWriter {
  private constructor(
    readonly dir: string,
    private readonly entries: Descriptor[],
  ) {}

  /** Opens a layout to add to, or starts one in a new or empty folder; any other folder is refused untouched. */
  static async open(dir: string): Promise<LayoutWriter> {
    if (existsSync(join(dir, LAYOUT_FILE))) {
      const entries = [...(await LayoutReader.open(dir)).index.manifests];
      await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true, mode: 0o755 });
      return new LayoutWriter(dir, entries);
    }
    let existing: string[] = [];
    try {
      existing = await readdir(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new ContainaiError('INPUT', `${printableName(dir)} cannot be read (${describeCause(err)})`, { hint: 'give a new or empty folder, or an OCI image layout' });
    }
    if (existing.length > 0) {
      throw new ContainaiError('INPUT', `${printableName(dir)} is neither empty nor an OCI image layout (no ${LAYOUT_FILE}); nothing was written`, { hint: 'give a new or empty folder, or a layout written by mirror before' });
    }
    await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true, mode: 0o755 });
    await writeFileAtomic(join(dir, LAYOUT_FILE), `${JSON.stringify({ imageLayoutVersion: LAYOUT_VERSION })}\n`);
    return new LayoutWriter(dir, []);
  }

  /** Whether the layout holds this blob with the right bytes (re-hashed: a mirror is checked, not trusted). */
  async hasBlob(descriptor: Descriptor): Promise<boolean> {
    const path = blobPath(this.dir, descriptor.digest);
    try {
      const info = await stat(path);
      if (!info.isFile() || info.size !== descriptor.size) return false;
      return `sha256:${await sha256File(path)}` === descriptor.digest;
    } catch {
      return false;
    }
  }

  async writeBlobBytes(descriptor: Descriptor, bytes: Uint8Array): Promise<void> {
    const actual = digestOf(bytes);
    if (actual !== descriptor.digest || bytes.byteLength !== descriptor.size) throw mismatch(`blob ${descriptor.digest}`, this.dir, descriptor.digest, actual);
    await writeFileAtomic(blobPath(this.dir, descriptor.digest), bytes);
  }

  /** Writes a blob from a stream, renamed into place only when its digest matched. */
  async writeBlobStream(descriptor: Descriptor, chunks: AsyncIterable<Uint8Array>): Promise<void> {
    const path = blobPath(this.dir, descriptor.digest);
    const temp = tempSibling(path);
    const hasher = new Bun.CryptoHasher('sha256');
    let size = 0;
    const handle = await open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o644);
    try {
      for await (const chunk of chunks) {
        hasher.update(chunk);
        size += chunk.byteLength;
        let written = 0;
        while (written < chunk.byteLength) written += (await handle.write(chunk, written)).bytesWritten;
      }
      await handle.sync();
      await handle.close();
      const actual = `sha256:${hasher.digest('hex')}`;
      if (actual !== descriptor.digest || size !== descriptor.size) throw mismatch(`blob ${descriptor.digest}`, this.dir, descriptor.digest, actual);
      await rename(temp, path);
      await fsyncDir(join(this.dir, 'blobs', 'sha256'));
    } catch (err) {
      await handle.close().catch(() => undefined);
      await rm(temp, { force: true });
      throw err;
    }
  }

  /** Lists a manifest in index.json; with a tag, the tag moves to it (one entry per tag). */
  addManifest(descriptor: Descriptor, tag?: string): void {
    const entry: Descriptor = { mediaType: descriptor.mediaType, digest: descriptor.digest, size: descriptor.size };
    if (descriptor.artifactType) entry.artifactType = descriptor.artifactType;
    const annotations = { ...descriptor.annotations };
    delete annotations[ANNOTATION_REF_NAME];
    if (tag) annotations[ANNOTATION_REF_NAME] = tag;
    if (Object.keys(annotations).length > 0) entry.annotations = annotations;
    const sameTag = (m: Descriptor) => (tag ? m.annotations?.[ANNOTATION_REF_NAME] === tag : m.digest === descriptor.digest && !m.annotations?.[ANNOTATION_REF_NAME]);
    const at = this.entries.findIndex(sameTag);
    if (at >= 0) this.entries.splice(at, 1, entry);
    else this.entries.push(entry);
  }

  /** Writes index.json whole: a reader sees the old index or the new one. */
  async commit(): Promise<void> {
    const index: ImageIndex = { schemaVersion: 2, mediaType: MEDIA_TYPE_IMAGE_INDEX, manifests: this.entries };
    await writeFileAtomic(join(this.dir, INDEX_FILE), canonicalBytes(index));
  }
}
