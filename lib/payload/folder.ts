/**
 * dist/<version>/ after package, as sign and repack find it: the checks they
 * make before they sign or rewrite anything, and the one way they change it.
 *
 * The bundle is a function of the folder's files (lib/bundle/write.ts), so the
 * folder must hold one build: SHA256SUMS must be the payload's own
 * payload/SHA256SUMS (and the bundle's, before signing), payload.tar.gz must
 * match payload.sha256, and the agents must match containai-host.SHA256SUMS.
 * A folder mixing two builds is refused: signing it would sign a manifest that
 * does not describe the payload shipped beside it.
 *
 * The payload and the bundle are read only as far as their first entries,
 * where the format puts SHA256SUMS.
 */
import { createReadStream } from 'node:fs';
import { lstat, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createGunzip } from 'node:zlib';
import { TarParser } from '../archive/tar.ts';
import { writeReleaseBundle } from '../bundle/write.ts';
import {
  AGENT_ARCHES,
  AGENT_SUMS_FILE,
  agentAssetName,
  type BundleMember,
  bundleFileName,
  PAYLOAD_ARCHIVE,
  PAYLOAD_SHA256,
  PAYLOAD_TOP,
  SUMS_FILE,
} from '../bundle/layout.ts';
import { parseSingleSum, parseSums, sha256Bytes } from '../digest.ts';
import { ContainaiError, describeCause } from '../errors.ts';
import { fsyncDir, tempSibling } from '../fs/atomic.ts';
import { hashFiles } from './sums.ts';

export interface ReleaseFolder {
  version: string;
  /** <out>/<version> */
  dir: string;
  bundle: string;
  /** SHA256SUMS's bytes and digest: what is signed and attested. */
  sums: Buffer;
  sumsSha256: string;
  payloadSha256: string;
  /** Whether containai-host.SHA256SUMS is there (and matched the agents). */
  agentSums: boolean;
}

const MIXED_HINT = 'the release folder mixes two builds: build it again with "containai-build package"';
/** The largest SHA256SUMS read back (500,000 files are about 40 MB). */
const MAX_SUMS_BYTES = 64 * 1024 * 1024;

/**
 * Checks dist/<version>/ before sign or repack touch it. `bundle: true` (sign) also requires the
 * bundle and its SHA256SUMS member to be the folder's.
 */
export async function checkReleaseFolder(outDir: string, version: string, options: { bundle: boolean }): Promise<ReleaseFolder> {
  const dir = join(outDir, version);
  const bundle = join(dir, bundleFileName(version));
  if (!(await lstat(dir).then((i) => i.isDirectory(), () => false))) {
    throw new ContainaiError('NOT_FOUND', `no release at ${dir}`, {
      hint: `build the release first with "containai-build package --version ${version}", or pass the --out it used`,
    });
  }
  for (const name of [SUMS_FILE, PAYLOAD_SHA256, PAYLOAD_ARCHIVE, ...(options.bundle ? [bundleFileName(version)] : [])]) await requireFile(dir, name, version);

  const sums = await readFile(join(dir, SUMS_FILE));
  const payloadSha256 = parseSingleSum(await readFile(join(dir, PAYLOAD_SHA256), 'utf8'), PAYLOAD_ARCHIVE, join(dir, PAYLOAD_SHA256));
  const [actual] = await hashFiles([join(dir, PAYLOAD_ARCHIVE)]);
  if (actual !== payloadSha256) {
    throw new ContainaiError('VERIFY', `${join(dir, PAYLOAD_ARCHIVE)} does not match ${PAYLOAD_SHA256} (sha256 ${actual})`, { hint: MIXED_HINT });
  }

  const inPayload = await readLeadingEntry(join(dir, PAYLOAD_ARCHIVE), `${PAYLOAD_TOP}/${SUMS_FILE}`, 2, PAYLOAD_ARCHIVE);
  if ('problem' in inPayload) {
    throw new ContainaiError('VERIFY', `cannot read ${PAYLOAD_TOP}/${SUMS_FILE} from ${PAYLOAD_ARCHIVE}: ${inPayload.problem}`, {
      hint: 'a payload of this format starts with payload/SHA256SUMS: build the release again with this containai-build',
    });
  }
  if (!inPayload.bytes.equals(sums)) {
    throw new ContainaiError('VERIFY', `${join(dir, SUMS_FILE)} is not the ${PAYLOAD_TOP}/${SUMS_FILE} inside ${PAYLOAD_ARCHIVE}`, { hint: MIXED_HINT });
  }

  if (options.bundle) {
    const inBundle = await readLeadingEntry(bundle, SUMS_FILE, 1, bundleFileName(version));
    if ('problem' in inBundle || !inBundle.bytes.equals(sums)) {
      const why = 'problem' in inBundle ? `cannot read its ${SUMS_FILE} (${inBundle.problem})` : `its ${SUMS_FILE} is not the folder's`;
      throw new ContainaiError('VERIFY', `${bundle} is not this release's bundle: ${why}`, { hint: MIXED_HINT });
    }
  }

  const agentSums = await checkAgentSums(dir, version);
  return { version, dir, bundle, sums, sumsSha256: sha256Bytes(sums), payloadSha256, agentSums };
}

async function requireFile(dir: string, name: string, version: string): Promise<void> {
  const info = await lstat(join(dir, name)).catch(() => undefined);
  if (!info) {
    throw new ContainaiError('NOT_FOUND', `${join(dir, name)} is missing`, {
      hint: `build the release with "containai-build package --version ${version}" (this containai-build writes ${SUMS_FILE} beside the payload)`,
    });
  }
  if (!info.isFile()) throw new ContainaiError('INPUT', `${join(dir, name)} is not a regular file${info.isSymbolicLink() ? ' (a symlink)' : ''}`, { hint: MIXED_HINT });
}

/** containai-host.SHA256SUMS, when present, lists exactly the agents of the folder, each matching. */
async function checkAgentSums(dir: string, version: string): Promise<boolean> {
  const path = join(dir, AGENT_SUMS_FILE);
  const text = await readFile(path, 'utf8').catch(() => undefined);
  if (text === undefined) return false;
  const listed = parseSums(text, path);
  const names = AGENT_ARCHES.map(agentAssetName);
  const strays = listed.filter((e) => !names.includes(e.path)).map((e) => e.path);
  if (strays.length > 0 || listed.length !== names.length) {
    throw new ContainaiError('VERIFY', `${path} does not list exactly ${names.join(' and ')}`, { hint: MIXED_HINT });
  }
  for (const entry of listed) await requireFile(dir, entry.path, version);
  const hashes = await hashFiles(listed.map((e) => join(dir, e.path)));
  const wrong = listed.filter((e, i) => hashes[i] !== e.sha256).map((e) => e.path);
  if (wrong.length > 0) throw new ContainaiError('VERIFY', `${wrong.join(' and ')} in ${dir} ${wrong.length > 1 ? 'do' : 'does'} not match ${AGENT_SUMS_FILE}`, { hint: MIXED_HINT });
  return true;
}

/**
 * The bytes of `name` when it is among the first `within` entries of the tar.gz; the rest of the
 * archive is not read.
 */
export async function readLeadingEntry(archive: string, name: string, within: number, label: string): Promise<{ bytes: Buffer } | { problem: string }> {
  let seen = 0;
  let parts: Buffer[] | undefined;
  let whole = false;
  let problem: string | undefined;
  const parser = new TarParser(
    {
      entry(header) {
        // The chunk that held the entry may hold later ones: once found, the rest is ignored.
        if (parts) return undefined;
        seen++;
        if (header.path === name) {
          if (header.kind !== 'file') throw new Error(`${name} is a ${header.kind}, not a file`);
          if (header.size > MAX_SUMS_BYTES) throw new Error(`${name} declares ${header.size} bytes (at most ${MAX_SUMS_BYTES})`);
          const body: Buffer[] = [];
          parts = body;
          return { write: (chunk) => void body.push(Buffer.from(chunk)), end: () => void (whole = true) };
        }
        if (seen >= within) throw new Error(`${name} is not among its first ${within === 1 ? 'entry' : `${within} entries`}`);
        return undefined;
      },
    },
    MAX_SUMS_BYTES + 1024 * 1024,
    label,
  );
  const input = createReadStream(archive, { highWaterMark: 64 * 1024 });
  const gunzip = createGunzip();
  input.on('error', (err) => gunzip.destroy(err));
  input.pipe(gunzip);
  try {
    for await (const chunk of gunzip as AsyncIterable<Buffer>) {
      parser.feed(chunk);
      if (whole) break;
    }
  } catch (err) {
    problem = describeCause(err);
  } finally {
    input.destroy();
    gunzip.destroy();
  }
  if (problem) return { problem };
  if (!whole || !parts) return { problem: `${label} ends before ${name}` };
  return { bytes: Buffer.concat(parts) };
}

/**
 * Adds or replaces files of dist/<version>/ and rewrites the bundle from the folder: the new
 * files are written beside their names first, the bundle is written from them (atomically), and
 * only then are they renamed into place. A failure before the bundle is replaced leaves the
 * folder as it was.
 */
export async function updateReleaseFolder(
  folder: Pick<ReleaseFolder, 'dir' | 'version'>,
  files: Partial<Record<BundleMember | string, { data: string | Uint8Array } | { write: (temp: string) => Promise<void> }>>,
  mtime: number,
): Promise<BundleMember[]> {
  const temps = new Map<string, string>();
  try {
    for (const [name, content] of Object.entries(files)) {
      if (!content) continue;
      const temp = tempSibling(join(folder.dir, name));
      temps.set(name, temp);
      if ('data' in content) await writeFile(temp, content.data, { mode: 0o644, flag: 'wx' });
      else await content.write(temp);
    }
    const replace = Object.fromEntries(temps) as Partial<Record<BundleMember, string>>;
    const members = await writeReleaseBundle(folder.dir, folder.version, { mtime, replace });
    for (const [name, temp] of temps) await rename(temp, join(folder.dir, name));
    temps.clear();
    await fsyncDir(folder.dir);
    return members;
  } finally {
    for (const temp of temps.values()) await rm(temp, { force: true });
  }
}
