/**
 * Writes the flat bundle containai-<version>.tar.gz (SPEC "The release"): the
 * members present, in the order lib/bundle/layout.ts fixes (SHA256SUMS and the
 * signature material first, payload.tar.gz after them, cosign last), so a host
 * verifies the manifest before it reads a byte of the payload. Reproducible,
 * and replacing any old bundle atomically.
 *
 * The bundle is a function of the files of dist/<version>/: package, sign and
 * repack all write it from that folder (writeReleaseBundle), never from an old
 * bundle, so there is one way a bundle comes to be.
 */
import { createReadStream } from 'node:fs';
import { lstat, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { z } from 'zod';
import { type ArchiveEntry, writeTarGzUnhashed } from '../archive/write.ts';
import { ContainaiError, describeCause } from '../errors.ts';
import {
  ATTESTATION_FILE,
  BUNDLE_MEMBERS,
  type BundleMember,
  bundleFileName,
  COSIGN_FILE,
  REQUIRED_MEMBERS,
  SUMS_SIGSTORE_FILE,
  TRUSTED_ROOT_FILE,
} from './layout.ts';

/** Members that are programs keep their executable bit; the rest are data. */
const EXECUTABLE_MEMBERS: readonly BundleMember[] = [COSIGN_FILE];

export async function writeBundle(outPath: string, members: Partial<Record<BundleMember, string>>, options: { mtime: number }): Promise<BundleMember[]> {
  const missing = REQUIRED_MEMBERS.filter((m) => !members[m]);
  if (missing.length > 0) throw new ContainaiError('INTERNAL', `a bundle needs ${missing.join(' and ')}`);
  const unknown = Object.keys(members).filter((name) => !(BUNDLE_MEMBERS as readonly string[]).includes(name));
  if (unknown.length > 0) throw new ContainaiError('INTERNAL', `not a bundle member: ${unknown.join(', ')}`);
  const present = BUNDLE_MEMBERS.filter((name) => typeof members[name] === 'string');
  for (const name of present) await checkMember(name, members[name] as string);

  const entries: ArchiveEntry[] = present.map((name) => ({
    path: name,
    type: 'file',
    source: members[name],
    mode: EXECUTABLE_MEMBERS.includes(name) ? 0o755 : 0o644,
  }));
  // The members (payload.tar.gz, cosign) are mostly compressed or random already:
  // the writer stores such data and deflates the rest at level 1.
  await writeTarGzUnhashed(entries, outPath, { mtime: options.mtime, level: 1, order: 'given' });
  return present;
}

/**
 * The bundle of dist/<version>/ from the members found there; `replace` points a member at
 * another file (a signature or attestation not yet renamed into the folder). Returns the members.
 */
export async function writeReleaseBundle(
  releaseDir: string,
  version: string,
  options: { mtime: number; replace?: Partial<Record<BundleMember, string>> },
): Promise<BundleMember[]> {
  const members: Partial<Record<BundleMember, string>> = {};
  for (const name of BUNDLE_MEMBERS) {
    const path = options.replace?.[name] ?? join(releaseDir, name);
    if (await lstat(path).then(() => true, () => false)) members[name] = path;
  }
  return writeBundle(join(releaseDir, bundleFileName(version)), members, { mtime: options.mtime });
}

const jsonObject = z.record(z.string(), z.unknown());

/** A member must be a readable regular file; the JSON members must parse, so a truncated download is caught here. */
export async function checkMember(name: BundleMember, path: string): Promise<void> {
  let info;
  try {
    info = await stat(path);
  } catch (err) {
    throw new ContainaiError('NOT_FOUND', `${name}: cannot read ${path}: ${describeCause(err)}`, { cause: err });
  }
  if (!info.isFile()) throw new ContainaiError('INPUT', `${name}: ${path} is not a regular file`);
  if (name === TRUSTED_ROOT_FILE || name === SUMS_SIGSTORE_FILE) {
    const problem = await jsonProblem(path);
    if (problem) {
      throw new ContainaiError('INPUT', `${name}: ${path} is not a JSON object (${problem})`, {
        hint: name === TRUSTED_ROOT_FILE ? 'pass the trusted_root.json that CI used (Sigstore trusted root JSON)' : undefined,
      });
    }
  }
  if (name === ATTESTATION_FILE) await checkJsonLines(name, path);
}

async function jsonProblem(path: string): Promise<string | undefined> {
  try {
    const parsed = jsonObject.safeParse(await Bun.file(path).json());
    return parsed.success ? undefined : 'not an object';
  } catch (err) {
    return describeCause(err);
  }
}

/** attestation.intoto.jsonl: one Sigstore bundle per line, as `gh attestation download` writes it. */
async function checkJsonLines(name: BundleMember, path: string): Promise<void> {
  const lines = createInterface({ input: createReadStream(path), crlfDelay: Infinity });
  let number = 0;
  let count = 0;
  for await (const line of lines) {
    number++;
    if (line.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (err) {
      throw new ContainaiError('INPUT', `${name}: ${path}:${number} is not JSON (${describeCause(err)})`, {
        hint: 'pass the file `gh attestation download` wrote: one Sigstore bundle per line',
      });
    }
    if (!jsonObject.safeParse(value).success) throw new ContainaiError('INPUT', `${name}: ${path}:${number} is not a JSON object`);
    count++;
  }
  if (count === 0) throw new ContainaiError('INPUT', `${name}: ${path} holds no attestation`, { hint: 'pass the file `gh attestation download` wrote' });
}
