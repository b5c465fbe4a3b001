/**
 * The payload's manifest (SPEC "The release"): release.json names the version
 * and every entry's type, mode and link target; SHA256SUMS lists every regular
 * file but itself, release.json included, and is what is signed and attested.
 *
 * Both are derived from one list of entries, and payload.tar.gz is written from
 * that same list, so what the manifest says is what the archive holds: one
 * scan of the staged tree decides every path, type, mode and link.
 *
 * Every name and link is judged here by the rules a host installs by
 * (lib/manifest/entry-tree.ts): a link must lead to a file or folder of the
 * release without passing through another link, and a name must be one a host
 * accepts. A release package makes is a release a host can install.
 *
 * Modes are normalised: git records only the executable bit, so the other bits
 * of a checkout depend on the umask of the machine; 0755/0644 (folders 0755)
 * makes the payload the same everywhere and drops setuid, setgid and sticky.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ArchiveEntry } from '../archive/write.ts';
import { PAYLOAD_TOP, RELEASE_FILE, SUMS_FILE } from '../bundle/layout.ts';
import { comparePaths, formatSums } from '../digest.ts';
import { ContainaiError } from '../errors.ts';
import { EntryTree, pathProblem } from '../manifest/entry-tree.ts';
import { entryMode, formatReleaseJson, type ReleaseEntry } from '../manifest/release-json.ts';
import { printableName } from '../text.ts';
import { hashFiles } from './sums.ts';
import { scanTree } from './tree.ts';

/** One entry of the payload, relative to payload/. */
export interface PayloadEntry {
  path: string;
  type: 'file' | 'dir' | 'symlink';
  /** 0o644 or 0o755 for a file, 0o755 for a folder, 0o777 for a link (tar's convention). */
  mode: number;
  /** A file's bytes on disk. */
  source?: string;
  size?: number;
  target?: string;
}

export interface Manifest {
  /** In the archive's order: SHA256SUMS, release.json, then every other entry sorted byte-wise. */
  entries: PayloadEntry[];
  /** Regular files SHA256SUMS lists. */
  files: number;
  /** Bytes of every regular file, for a progress bar. */
  bytes: number;
}

/** The two files written here, and first in the archive (a host reads them before any other byte). */
const MANIFEST_FILES = [SUMS_FILE, RELEASE_FILE] as const;

/** Writes payload/release.json and payload/SHA256SUMS for the staged tree; returns the entries to archive. */
export async function writeManifest(payloadDir: string, version: string): Promise<Manifest> {
  const scanned = await scanTree(payloadDir, PAYLOAD_TOP);
  const clash = scanned.find((e) => (MANIFEST_FILES as readonly string[]).includes(e.path));
  if (clash) throw new ContainaiError('INTERNAL', `the staged payload already holds ${clash.path}`);

  const rest: PayloadEntry[] = scanned.map((e): PayloadEntry => {
    if (e.type === 'directory') return { path: e.path, type: 'dir', mode: 0o755 };
    if (e.type === 'symlink') return { path: e.path, type: 'symlink', mode: 0o777, target: e.linkTarget };
    return { path: e.path, type: 'file', mode: (e.mode & 0o111) !== 0 ? 0o755 : 0o644, source: e.absolute, size: e.size };
  });
  const [sumsEntry, releaseEntry] = MANIFEST_FILES.map((name): PayloadEntry => ({ path: name, type: 'file', mode: 0o644, source: join(payloadDir, name) })) as [
    PayloadEntry,
    PayloadEntry,
  ];
  const entries = [sumsEntry, releaseEntry, ...rest.sort((a, b) => comparePaths(a.path, b.path))];
  assertInstallable(entries);

  const releaseText = formatReleaseJson(version, new Map(entries.map((e) => [e.path, describeEntry(e)])));
  await writeFile(releaseEntry.source as string, releaseText, { mode: 0o644, flag: 'wx' });
  releaseEntry.size = Buffer.byteLength(releaseText);

  const listed = entries.filter((e) => e.type === 'file' && e !== sumsEntry);
  const hashes = await hashFiles(listed.map((e) => e.source as string));
  const sumsText = formatSums(listed.map((e, i) => ({ path: e.path, sha256: hashes[i] as string })));
  await writeFile(sumsEntry.source as string, sumsText, { mode: 0o644, flag: 'wx' });
  sumsEntry.size = Buffer.byteLength(sumsText);

  const bytes = entries.reduce((n, e) => n + (e.size ?? 0), 0);
  return { entries, files: listed.length, bytes };
}

const MAX_LISTED = 10;

/** Refuses, naming each, the entries a host would refuse: bad names, and links that do not resolve inside the release. */
function assertInstallable(entries: readonly PayloadEntry[]): void {
  const tree = new EntryTree();
  const problems: string[] = [];
  // Sorted byte-wise, a folder comes before everything under it.
  for (const e of [...entries].sort((a, b) => comparePaths(a.path, b.path))) {
    const problem = pathProblem(e.path) ?? tree.add(e.path, e.type, e.target);
    if (problem) problems.push(`${printableName(e.path)}: ${problem}`);
  }
  for (const link of tree.links()) {
    const problem = tree.linkProblem(link);
    if (problem) problems.push(`${printableName(link.path)} -> ${printableName(link.target ?? '')}: the link ${problem}`);
  }
  if (problems.length === 0) return;
  const more = problems.length > MAX_LISTED ? `; and ${problems.length - MAX_LISTED} more` : '';
  throw new ContainaiError('INPUT', `the payload would not install: ${problems.slice(0, MAX_LISTED).join('; ')}${more}`, {
    hint: 'a host refuses these entries: fix or remove them under host/ and run again',
    details: { problems },
  });
}

/** An entry as release.json states it. */
function describeEntry(e: PayloadEntry): ReleaseEntry {
  if (e.type === 'symlink') return { type: 'symlink', target: e.target as string };
  return entryMode(e.type, e.mode);
}

/** The archive's entries: the top folder payload/, then the manifest's entries in their order. */
export function archiveEntries(manifest: Manifest): ArchiveEntry[] {
  return [
    { path: PAYLOAD_TOP, type: 'directory', mode: 0o755 },
    ...manifest.entries.map((e): ArchiveEntry => {
      const path = `${PAYLOAD_TOP}/${e.path}`;
      if (e.type === 'dir') return { path, type: 'directory', mode: e.mode };
      if (e.type === 'symlink') return { path, type: 'symlink', mode: e.mode, linkTarget: e.target };
      return { path, type: 'file', mode: e.mode, source: e.source };
    }),
  ];
}
