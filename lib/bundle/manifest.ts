/**
 * payload/release.json: which release a payload is. The signature and the
 * attestation cover payload.tar.gz's digest, not the name it is served under;
 * this file, listed in SHA256SUMS like every other, puts the version inside
 * what is signed, so a validly signed old payload served as a newer version
 * (a freeze or rollback attack) is refused instead of installed under the new
 * name. It holds only what the build is given, so the payload stays
 * reproducible: no time, no machine, no commit.
 */
import { z } from 'zod';

/** Where the manifest lives, relative to payload/. */
export const RELEASE_FILE = 'release.json';
/** A real manifest is a few dozen bytes; anything larger is not one. */
export const RELEASE_FILE_MAX_BYTES = 4096;

const ReleaseManifestSchema = z.object({ version: z.string().min(1) });
export type ReleaseManifest = z.infer<typeof ReleaseManifestSchema>;

export function formatReleaseManifest(version: string): string {
  return `${JSON.stringify({ version } satisfies ReleaseManifest, null, 2)}\n`;
}

/** Parses release.json's text; a string says what is wrong with it. */
export function parseReleaseManifest(text: string): ReleaseManifest | string {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return `${RELEASE_FILE} is not JSON`;
  }
  const parsed = ReleaseManifestSchema.safeParse(json);
  if (!parsed.success) return `${RELEASE_FILE}: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(top)'}: ${i.message}`).join('; ')}`;
  return parsed.data;
}
