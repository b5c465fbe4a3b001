/**
 * payload/release.json: which release a payload is, and every entry it holds.
 *
 * SHA256SUMS lists the regular files and their digests; release.json, itself
 * listed in SHA256SUMS, adds what a digest cannot say: the version (so a
 * validly signed old release served under a newer name is refused) and each
 * entry's type, mode and link target (so a link, a folder or an executable bit
 * is as signed as a file's bytes). One signature over SHA256SUMS covers both.
 *
 *   {
 *     "format": 2,
 *     "version": "v1.2.3",
 *     "entries": {
 *       "LICENSE": { "type": "file", "mode": "0644" },
 *       "host": { "type": "dir", "mode": "0755" },
 *       "host/utils/latest": { "type": "symlink", "target": "health.sh" },
 *       ...
 *     }
 *   }
 *
 * Paths are relative to payload/, "/"-separated; every entry of the payload is
 * listed (SHA256SUMS and release.json too), and every parent of an entry is a
 * "dir" entry. Modes are what containai-build writes and nothing else: 0644 or
 * 0755 for a file, 0755 for a folder. Keys are sorted byte-wise and the text
 * holds no time or machine, so the payload stays reproducible.
 *
 * The first format's release.json is {"version": "..."} alone (no "format").
 */
import { z } from 'zod';
import { comparePaths } from '../digest.ts';
import { RELEASE_FILE } from '../bundle/layout.ts';

/** A real release.json of 50,000 entries is about 3 MB. */
export const RELEASE_FILE_MAX_BYTES = 16 * 1024 * 1024;

export const FILE_MODES = ['0644', '0755'] as const;
export const DIR_MODE = '0755';

const FileEntry = z.object({ type: z.literal('file'), mode: z.enum(FILE_MODES) }).strict();
const DirEntry = z.object({ type: z.literal('dir'), mode: z.literal(DIR_MODE) }).strict();
const SymlinkEntry = z.object({ type: z.literal('symlink'), target: z.string().min(1) }).strict();
export const ReleaseEntrySchema = z.discriminatedUnion('type', [FileEntry, DirEntry, SymlinkEntry]);
export type ReleaseEntry = z.infer<typeof ReleaseEntrySchema>;
export type EntryType = ReleaseEntry['type'];

const ReleaseJsonSchema = z
  .object({
    format: z.literal(2),
    version: z.string().min(1),
    entries: z.record(z.string(), ReleaseEntrySchema),
  })
  .strict();
export type ReleaseJson = z.infer<typeof ReleaseJsonSchema>;

/**
 * The document's shape without its entries: zod would copy every one of up to 100,000 entry objects
 * (measured: a third of the manifest's memory on the 50,000-file tree); each entry is checked in
 * place by entryProblem instead, with the same rules as ReleaseEntrySchema.
 */
const ReleaseJsonShape = z
  .object({
    format: z.literal(2),
    version: z.string().min(1),
    entries: z.custom<Record<string, unknown>>((v) => typeof v === 'object' && v !== null && !Array.isArray(v), 'must be an object of entries'),
  })
  .strict();

/** Why a raw entry is not one ReleaseEntrySchema accepts, or undefined; the object is kept as it is. */
function entryProblem(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'must be an object';
  const entry = value as Record<string, unknown>;
  const keys = Object.keys(entry);
  switch (entry.type) {
    case 'file':
      if (!(FILE_MODES as readonly unknown[]).includes(entry.mode)) return `mode must be one of ${FILE_MODES.join(', ')}`;
      return keys.length === 2 ? undefined : 'has a field a file entry does not take';
    case 'dir':
      if (entry.mode !== DIR_MODE) return `mode must be ${DIR_MODE}`;
      return keys.length === 2 ? undefined : 'has a field a dir entry does not take';
    case 'symlink':
      if (typeof entry.target !== 'string' || entry.target.length === 0) return 'target must be a non-empty string';
      return keys.length === 2 ? undefined : 'has a field a symlink entry does not take';
    default:
      return 'type must be file, dir or symlink';
  }
}

const Format1Schema = z.object({ version: z.string().min(1) });

/** The mode an entry of this type and mode bits gets ("0644"/"0755" for files by the executable bit). */
export function entryMode(type: 'file' | 'dir', modeBits: number): ReleaseEntry & { type: 'file' | 'dir' } {
  if (type === 'dir') return { type: 'dir', mode: DIR_MODE };
  return { type: 'file', mode: (modeBits & 0o111) !== 0 ? '0755' : '0644' };
}

/** The numeric permission bits of a file or folder entry. */
export function modeBits(entry: ReleaseEntry & { type: 'file' | 'dir' }): number {
  return Number.parseInt(entry.mode, 8);
}

/** release.json's text: sorted keys, two-space indent, a final newline. */
export function formatReleaseJson(version: string, entries: ReadonlyMap<string, ReleaseEntry> | Record<string, ReleaseEntry>): string {
  const list = entries instanceof Map ? [...entries] : Object.entries(entries);
  list.sort(([a], [b]) => comparePaths(a, b));
  const doc: ReleaseJson = { format: 2, version, entries: Object.fromEntries(list) };
  return `${JSON.stringify(doc, null, 2)}\n`;
}

export type ParsedReleaseJson = { format: 2; version: string; entries: Map<string, ReleaseEntry> } | { format: 1; version: string };

/** Parses release.json's text; a string says what is wrong with it (every problem, as path: message). */
export function parseReleaseJson(text: string): ParsedReleaseJson | string {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return `${RELEASE_FILE} is not JSON`;
  }
  if (typeof json === 'object' && json !== null && !Array.isArray(json) && !('format' in json)) {
    const old = Format1Schema.safeParse(json);
    return old.success ? { format: 1, version: old.data.version } : describe(old.error);
  }
  const parsed = ReleaseJsonShape.safeParse(json);
  if (!parsed.success) return describe(parsed.error);
  const entries = new Map<string, ReleaseEntry>();
  const problems: string[] = [];
  for (const path in parsed.data.entries) {
    const value = parsed.data.entries[path];
    const problem = entryProblem(value);
    if (problem) {
      if (problems.length < 5) problems.push(`entries.${path}: ${problem}`);
      continue;
    }
    entries.set(path, value as ReleaseEntry);
  }
  if (problems.length > 0) return `${RELEASE_FILE}: ${problems.join('; ')}`;
  return { format: 2, version: parsed.data.version, entries };
}

function describe(error: z.ZodError): string {
  const issues = error.issues.slice(0, 5).map((i) => `${i.path.map(String).join('.') || '(top)'}: ${i.message}`);
  return `${RELEASE_FILE}: ${issues.join('; ')}${error.issues.length > 5 ? `; and ${error.issues.length - 5} more` : ''}`;
}
