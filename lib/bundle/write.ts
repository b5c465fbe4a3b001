/**
 * Writes the flat bundle containai-<version>.tar.gz (SPEC "The release") from
 * member files: sorted, reproducible, and replacing any old bundle atomically.
 * Every member is checked first, so a bad input leaves the old bundle as it was.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { z } from 'zod';
import { type ArchiveEntry, writeTarGzUnhashed } from '../archive/write.ts';
import { ContainaiError, describeCause } from '../errors.ts';
import { type Format1Member, isFormat1Member, FORMAT1_REQUIRED } from './layout.ts';

/** Members that are programs keep their executable bit; the rest are data. */
const EXECUTABLE_MEMBERS: readonly Format1Member[] = ['cosign'];

export async function writeBundle(
  outPath: string,
  members: Partial<Record<Format1Member, string>>,
  options: { mtime: number },
): Promise<void> {
  const given = Object.entries(members).filter((e): e is [Format1Member, string] => typeof e[1] === 'string');
  const missing = FORMAT1_REQUIRED.filter((m) => !members[m]);
  if (missing.length > 0) throw new ContainaiError('INTERNAL', `a bundle needs ${missing.join(' and ')}`);
  const unknown = given.map(([name]) => name).filter((name) => !isFormat1Member(name));
  if (unknown.length > 0) throw new ContainaiError('INTERNAL', `not a bundle member: ${unknown.join(', ')}`);
  for (const [name, path] of given) await checkMember(name, path);

  const entries: ArchiveEntry[] = given.map(([name, path]) => ({
    path: name,
    type: 'file',
    source: path,
    mode: EXECUTABLE_MEMBERS.includes(name) ? 0o755 : 0o644,
  }));
  // The members (payload.tar.gz, cosign) are mostly compressed or random already:
  // the writer stores such data and deflates the rest at level 1.
  await writeTarGzUnhashed(entries, outPath, { mtime: options.mtime, level: 1 });
}

const jsonObject = z.record(z.string(), z.unknown());

/** A member must be a readable regular file; the JSON members must parse, so a truncated download is caught here. */
export async function checkMember(name: Format1Member, path: string): Promise<void> {
  let info;
  try {
    info = await stat(path);
  } catch (err) {
    throw new ContainaiError('NOT_FOUND', `${name}: cannot read ${path}: ${describeCause(err)}`, { cause: err });
  }
  if (!info.isFile()) throw new ContainaiError('INPUT', `${name}: ${path} is not a regular file`);
  if (name === 'trusted_root.json' || name === 'payload.sigstore.json') {
    const problem = await jsonProblem(path);
    if (problem) {
      throw new ContainaiError('INPUT', `${name}: ${path} is not a JSON object (${problem})`, {
        hint: name === 'trusted_root.json' ? 'pass the trusted_root.json that CI used (Sigstore trusted root JSON)' : undefined,
      });
    }
  }
  if (name === 'attestation.intoto.jsonl') await checkJsonLines(name, path);
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
async function checkJsonLines(name: Format1Member, path: string): Promise<void> {
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
