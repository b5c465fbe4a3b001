/**
 * What is installed under an install root, read cheaply: where current and
 * previous point, every release folder with its install.json, and problems
 * found on the way (a link that leaves releases/, a damaged install.json).
 * Never hashes and never verifies: that is verify-installed.ts. Used by
 * status, prune, check-health and rollback.
 */
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { readReleaseLink, type LinkName, type LinkState } from './activate.ts';
import { CURRENT_LINK, installLayout, isReleaseDirName, PREVIOUS_LINK, versionOfDir } from './layout.ts';
import { readInstallRecord, recordFormat, type InstallRecord, type RecordPlace } from './record.ts';

export interface InstalledRelease {
  /** Folder name under releases/ (v1.2.3, or v1.2.3@2 for a forced reinstall). */
  dirName: string;
  dir: string;
  version: string;
  record?: InstallRecord;
  /** Where install.json was found (the first format's agent kept it at the top). */
  recordPlace?: RecordPlace;
  /** 2: the manifest is what was verified; 1: the first format (payload signature, bundle kept). */
  format?: 1 | 2;
  /** Why install.json could not be read, when it could not. */
  recordProblem?: string;
}

export interface InstalledState {
  root: string;
  current?: InstalledRelease;
  previous?: InstalledRelease;
  releases: InstalledRelease[];
  problems: string[];
}

export async function describeRelease(dir: string, dirName: string): Promise<InstalledRelease> {
  const read = await readInstallRecord(dir);
  if (typeof read === 'string') return { dirName, dir, version: versionOfDir(dirName), recordProblem: read };
  return { dirName, dir, version: read.record.version, record: read.record, recordPlace: read.place, format: recordFormat(read.record) };
}

function linkProblem(state: LinkState): string | undefined {
  return state.kind === 'invalid' ? state.reason : undefined;
}

/** Where current and previous point and what releases/ holds. */
export async function inspectInstalledRelease(installRoot: string): Promise<InstalledState> {
  const layout = installLayout(installRoot);
  const problems: string[] = [];
  const names = await readdir(layout.releases).catch(() => [] as string[]);
  const releases: InstalledRelease[] = [];
  for (const name of names.filter(isReleaseDirName).sort()) {
    const dir = join(layout.releases, name);
    if (!(await stat(dir).catch(() => undefined))?.isDirectory()) continue;
    releases.push(await describeRelease(dir, name));
  }
  const find = async (name: LinkName): Promise<InstalledRelease | undefined> => {
    const state = await readReleaseLink(layout, name);
    const problem = linkProblem(state);
    if (problem) problems.push(problem);
    return state.kind === 'release' ? releases.find((r) => r.dirName === state.dirName) : undefined;
  };
  const current = await find(CURRENT_LINK);
  const previous = await find(PREVIOUS_LINK);
  for (const r of releases) if (r.recordProblem && (r === current || r === previous)) problems.push(`releases/${r.dirName}/${r.recordProblem}`);
  return { root: installRoot, current, previous, releases, problems };
}
