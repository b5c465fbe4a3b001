/**
 * Releases of the first format, kept installing and verifying as before, and
 * kept apart so the current format's path stays simple. In the first format
 * the signature (or attestation) covers payload.tar.gz's bytes, the agent is
 * inside the payload (tools/containai-host), and nothing signed lists modes
 * or links: trust in the tree comes from the payload's own SHA256SUMS, which
 * is trusted because the payload's digest is signed. So the whole bundle is
 * kept (.containai/containai-<v>.tar.gz) to verify the release again later,
 * and the tree is judged by the first format's rules: every file listed and
 * equal, nothing unlisted, links inside the release to a listed file or a
 * folder, no unsafe mode bits. Releases the first format's agent installed
 * (install.json and the bundle at the release's top) verify here too.
 *
 * The same steps as lib/manifest/verify.ts, over other facts: signature
 * (verifySigned over the payload digest), manifest (the payload's SHA256SUMS
 * and release.json's version), entries (Format1Judge, the TreeJudge of
 * verify-installed.ts).
 */
import { createHash } from 'node:crypto';
import { closeSync, constants, openSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFully } from '../archive/hash-pool.ts';
import { extractArchive, type ExtractResult } from '../archive/extract.ts';
import { PAYLOAD_LIMITS, quote } from '../archive/policy.ts';
import { archiveError, fileChunks, gunzipChunks, TarParser, type EntrySink, type TarHeader } from '../archive/tar.ts';
import { PayloadSumsReader, type PayloadSums } from '../bundle/payload-sums.ts';
import { ATTESTATION_FILE, bundleFileName, FORMAT1_MEMBERS, type Format1Member, INSTALL_RECORD, isFormat1Member, KEPT_DIR, PAYLOAD_ARCHIVE, PAYLOAD_SHA256, PAYLOAD_TOP, RELEASE_FILE, SUMS_FILE } from '../bundle/layout.ts';
import { parseSingleSum } from '../digest.ts';
import { isContainaiError } from '../errors.ts';
import { EntryTree, parentsFirst } from '../manifest/entry-tree.ts';
import { ReleaseRefusal } from '../manifest/refusal.ts';
import { parseReleaseJson } from '../manifest/release-json.ts';
import { readSums } from '../manifest/manifest.ts';
import { signerOf, type SeenEntry } from '../manifest/verify.ts';
import { printableName } from '../text.ts';
import type { TrustPolicy } from '../trust/policy.ts';
import type { Format1Record, RecordPlace, Signer } from './record.ts';
import { checkKeptDir, judgeTree, type TreeCheck, type TreeJudge } from './verify-installed.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
const MEMBER_LIMITS: Readonly<Record<Format1Member, number>> = {
  'payload.tar.gz': PAYLOAD_LIMITS.maxTotalBytes,
  'payload.sha256': 4 * KiB,
  'attestation.intoto.jsonl': 64 * MiB,
  'payload.sigstore.json': 16 * MiB,
  'payload.sig': 64 * KiB,
  cosign: 512 * MiB,
  'trusted_root.json': 16 * MiB,
};
const STREAM_LIMIT = Object.values(MEMBER_LIMITS).reduce((a, b) => a + b, 0) + MiB;
const HINT = 'the bundle is damaged or was not made by containai-build: download it again';
/** Members read into memory; the payload and cosign are only passed through. */
const SMALL: readonly Format1Member[] = ['payload.sha256', 'attestation.intoto.jsonl', 'payload.sigstore.json', 'payload.sig'];
/** The mode bits an installed file or folder may never have. */
const UNSAFE_MODE_BITS = 0o7022;

interface Format1Head {
  members: Map<Format1Member, Uint8Array>;
  payloadSha256: string;
  bundleSha256: string;
  payloadSums: PayloadSums;
}

/**
 * One pass over a first-format bundle: the small members, payload.tar.gz's digest, its SHA256SUMS
 * (lib/bundle/payload-sums.ts), the bundle's own digest; and, with copyTo, a private copy of exactly
 * the bytes read.
 */
async function readHead(bundlePath: string, copyTo?: string): Promise<Format1Head> {
  const label = bundlePath.split('/').pop() || bundlePath;
  const members = new Map<Format1Member, Uint8Array>();
  const seen = new Set<string>();
  const payloadHash = createHash('sha256');
  const bundleHash = createHash('sha256');
  const sums = new PayloadSumsReader();
  let sawPayload = false;
  const copyFd = copyTo === undefined ? undefined : openSync(copyTo, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o644);
  const raw = async function* () {
    for await (const chunk of fileChunks(bundlePath)) {
      bundleHash.update(chunk);
      if (copyFd !== undefined) writeFully(copyFd, chunk);
      yield chunk;
    }
  };
  const parser = new TarParser(
    {
      entry(header: TarHeader): EntrySink | undefined {
        const name = header.path;
        const q = quote(name);
        if (!isFormat1Member(name)) throw archiveError(`${label}: ${q} is not a member of a bundle (allowed: ${FORMAT1_MEMBERS.join(', ')})`, HINT);
        if (header.kind !== 'file') throw archiveError(`${label}: member ${q} is a ${header.kind}, not a regular file`, HINT);
        if (seen.has(name)) throw archiveError(`${label}: member ${q} appears twice`, HINT);
        if (header.size > MEMBER_LIMITS[name]) throw archiveError(`${label}: member ${q} declares ${header.size} bytes (limit ${MEMBER_LIMITS[name]})`, HINT);
        seen.add(name);
        if (name === PAYLOAD_ARCHIVE) {
          sawPayload = true;
          return { write: (c) => { payloadHash.update(c); sums.write(c); }, end() {} };
        }
        if (!SMALL.includes(name)) return undefined;
        const parts: Uint8Array[] = [];
        return { write: (c) => void parts.push(c.slice()), end: () => void members.set(name, Buffer.concat(parts)) };
      },
    },
    STREAM_LIMIT,
    label,
  );
  try {
    for await (const chunk of gunzipChunks(raw())) parser.feed(chunk);
    parser.finish();
  } catch (err) {
    if (copyTo !== undefined) await rm(copyTo, { force: true });
    if (isContainaiError(err)) throw err;
    throw archiveError(`${label}: cannot be unpacked: ${err instanceof Error ? err.message : String(err)}`, HINT, err);
  } finally {
    if (copyFd !== undefined) closeSync(copyFd);
  }
  if (!sawPayload || !members.has('payload.sha256')) throw archiveError(`${label}: the bundle lacks ${!sawPayload ? PAYLOAD_ARCHIVE : PAYLOAD_SHA256}`, HINT);
  return { members, payloadSha256: payloadHash.digest('hex'), bundleSha256: bundleHash.digest('hex'), payloadSums: sums.end() };
}

/** payload.tar.gz's bytes as they pass in the bundle, from a second read of the (kept) file. */
async function* payloadChunks(bundlePath: string): AsyncGenerator<Uint8Array> {
  const queue: Uint8Array[] = [];
  let inPayload = false;
  let done = false;
  const parser = new TarParser(
    {
      entry(header) {
        if (header.path !== PAYLOAD_ARCHIVE) return undefined;
        inPayload = true;
        return { write: (c) => void queue.push(c), end: () => void (done = true) };
      },
    },
    STREAM_LIMIT,
    'bundle',
  );
  const source = gunzipChunks(fileChunks(bundlePath))[Symbol.asyncIterator]();
  try {
    while (!done) {
      const next = await source.next();
      if (next.done) break;
      parser.feed(next.value);
      while (queue.length > 0) yield queue.shift() as Uint8Array;
    }
    if (!inPayload) throw archiveError(`the bundle has no ${PAYLOAD_ARCHIVE}`, HINT);
  } finally {
    await source.return?.(undefined);
  }
}

const text = (bytes: Uint8Array | undefined) => (bytes === undefined ? undefined : new TextDecoder().decode(bytes));

/** The signature over the payload's digest, under the policy; Ed25519 (which signs the bytes) gets them from a temp copy. */
async function verifyPayloadSignature(head: Format1Head, bundlePath: string, policy: TrustPolicy): Promise<Signer> {
  const expected = parseSingleSum(text(head.members.get('payload.sha256')) ?? '', PAYLOAD_ARCHIVE, PAYLOAD_SHA256);
  if (expected !== head.payloadSha256) {
    throw new ReleaseRefusal('digest', `does not match ${PAYLOAD_SHA256} (sha256 ${head.payloadSha256}, expected ${expected})`, { entry: PAYLOAD_ARCHIVE });
  }
  const material = {
    attestation: nonEmpty(text(head.members.get(ATTESTATION_FILE))),
    sigstoreBundle: nonEmpty(text(head.members.get('payload.sigstore.json'))),
    sig: nonEmpty(text(head.members.get('payload.sig'))),
  };
  const labels = { artifact: PAYLOAD_ARCHIVE, attestation: ATTESTATION_FILE, sigstoreBundle: 'payload.sigstore.json', sig: 'payload.sig' };
  const { verifySigned, PayloadBytesNeeded } = await import('../trust/verify.ts');
  try {
    return signerOf(await verifySigned({ sha256: head.payloadSha256 }, material, policy, labels));
  } catch (err) {
    if (err instanceof PayloadBytesNeeded) {
      const dir = await mkdtemp(join(bundlePath, '..', '.payload-'));
      try {
        const path = join(dir, PAYLOAD_ARCHIVE);
        const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
        try {
          for await (const chunk of payloadChunks(bundlePath)) writeFully(fd, chunk);
        } finally {
          closeSync(fd);
        }
        return signerOf(await verifySigned({ sha256: head.payloadSha256, path }, material, policy, labels));
      } catch (inner) {
        throw asRefusal(inner);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    }
    throw asRefusal(err);
  }
}

/** The placeholder the first format's package wrote for "no attestation" is an empty member. */
function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value;
}

function asRefusal(err: unknown): unknown {
  return isContainaiError(err) && err.code !== 'INTERNAL' && !(err instanceof ReleaseRefusal)
    ? new ReleaseRefusal('signature', err.message, { hint: err.hint, cause: err })
    : err;
}

/** The first format's rules over a tree, fed entry by entry; it judges when the tree is whole (missing()). */
export class Format1Judge implements TreeJudge {
  private readonly entries: SeenEntry[] = [];
  private readonly digests = new Map<string, string>();

  constructor(private readonly listed: ReadonlyMap<string, string>) {}

  entry(found: SeenEntry): ReleaseRefusal | undefined {
    this.entries.push(found);
    if (found.type === 'other') return new ReleaseRefusal('type', 'not a regular file, folder or link', { entry: found.path });
    if (found.type !== 'symlink' && (found.mode & UNSAFE_MODE_BITS) !== 0) {
      return new ReleaseRefusal('mode', `mode ${(found.mode & 0o7777).toString(8).padStart(4, '0')} (setuid, setgid, sticky or writable by group or others)`, { entry: found.path });
    }
    if (found.path.split('/')[0] === KEPT_DIR) return new ReleaseRefusal('unlisted', 'a name the install reserves for itself', { entry: found.path });
    if (found.type === 'file' && found.path !== SUMS_FILE && !this.listed.has(found.path)) return new ReleaseRefusal('unlisted', `not listed in ${SUMS_FILE}`, { entry: found.path });
    return undefined;
  }

  digest(path: string, sha256: string): ReleaseRefusal | undefined {
    this.digests.set(path, sha256);
    if (path === SUMS_FILE) return undefined;
    const expected = this.listed.get(path);
    return expected === undefined || expected === sha256 ? undefined : new ReleaseRefusal('digest', `content does not match ${SUMS_FILE}`, { entry: path });
  }

  missing(): ReleaseRefusal[] {
    const out: ReleaseRefusal[] = [];
    const tree = new EntryTree();
    const byPath = new Map(this.entries.map((e) => [e.path, e]));
    for (const e of parentsFirst(this.entries, (x) => x.path)) {
      tree.add(e.path, e.type === 'other' ? 'file' : e.type, e.target);
    }
    for (const link of tree.links()) {
      const problem = tree.linkProblem(link);
      if (problem) {
        out.push(new ReleaseRefusal('link', `-> ${quote(link.target ?? '')} ${problem}`, { entry: link.path }));
        continue;
      }
      // A link adds no content of its own: it may name a listed file or a folder, and a listed one is checked through its file.
      let end = link;
      while (end.kind === 'symlink' && end.end && end.end !== 'walking') end = end.end;
      const expected = this.listed.get(link.path);
      if (end.kind === 'file') {
        const digest = this.digests.get(end.path);
        if (expected !== undefined && digest !== undefined && digest !== expected) out.push(new ReleaseRefusal('digest', `link target does not match ${SUMS_FILE}`, { entry: link.path }));
        else if (expected === undefined && !this.listed.has(end.path)) out.push(new ReleaseRefusal('link', `links to a file ${SUMS_FILE} does not list`, { entry: link.path }));
      } else if (expected !== undefined) {
        out.push(new ReleaseRefusal('type', `listed in ${SUMS_FILE} but links to a folder`, { entry: link.path }));
      }
    }
    for (const path of this.listed.keys()) {
      const e = byPath.get(path);
      if (!e) out.push(new ReleaseRefusal('missing', `listed in ${SUMS_FILE} and not there`, { entry: path }));
      else if (e.type === 'dir') out.push(new ReleaseRefusal('type', `listed in ${SUMS_FILE} but is a folder`, { entry: path }));
    }
    return out;
  }
}

/** release.json (its digest already judged against SHA256SUMS) must name the version. */
async function checkVersion(treeDir: string, version: string): Promise<ReleaseRefusal | undefined> {
  const parsed = parseReleaseJson(await readFile(join(treeDir, RELEASE_FILE), 'utf8').catch(() => ''));
  if (typeof parsed === 'string') return new ReleaseRefusal('manifest', parsed, { entry: RELEASE_FILE });
  const named = parsed.format === 1 ? parsed.version : parsed.version;
  return named === version ? undefined : new ReleaseRefusal('version', `the payload is release ${printableName(named)} (its ${RELEASE_FILE}), not ${version}`, { entry: RELEASE_FILE });
}

function sumsOf(head: Format1Head): Map<string, string> {
  if ('problem' in head.payloadSums) throw new ReleaseRefusal('manifest', head.payloadSums.problem);
  return readSums(head.payloadSums.sums);
}

/** Judges an extracted tree (the extractor's result) by the first format's rules; throws the first refusal. */
function judgeExtracted(extracted: ExtractResult, listed: ReadonlyMap<string, string>): void {
  const judge = new Format1Judge(listed);
  const refusals: Array<ReleaseRefusal | undefined> = [];
  for (const d of extracted.directories) refusals.push(judge.entry({ path: d, type: 'dir', mode: 0o755 }));
  for (const f of extracted.files) refusals.push(judge.entry({ path: f.path, type: 'file', mode: f.mode }), judge.digest(f.path, f.sha256));
  for (const l of extracted.symlinks) refusals.push(judge.entry({ path: l.path, type: 'symlink', mode: 0, target: l.target }));
  refusals.push(...judge.missing());
  const first = refusals.find((r) => r !== undefined);
  if (first) throw first;
}

export interface Format1Install {
  signer: Signer;
  bundle: string;
  bundleSha256: string;
  payloadSha256: string;
}

/**
 * Installs a first-format bundle into `tree` (which must not exist): a private copy of the bundle is
 * made while it is read, its payload's signature verified, then the payload extracted from that copy,
 * judged, and the copy kept in tree/.containai/.
 */
export async function installFormat1(bundlePath: string, work: string, tree: string, version: string, policy: TrustPolicy): Promise<Format1Install> {
  // A name of its own: a downloaded bundle already lies in work under bundleFileName(version).
  const copy = join(work, `kept-${bundleFileName(version)}`);
  const head = await readHead(bundlePath, copy);
  const signer = await verifyPayloadSignature(head, copy, policy);
  const listed = sumsOf(head);
  const extracted = await extractArchive(payloadChunks(copy), tree, { label: PAYLOAD_ARCHIVE, topFolder: PAYLOAD_TOP, limits: PAYLOAD_LIMITS });
  judgeExtracted(extracted, listed);
  const versionProblem = await checkVersion(tree, version);
  if (versionProblem) throw versionProblem;
  await mkdir(join(tree, KEPT_DIR), { mode: 0o755 });
  await rename(copy, join(tree, KEPT_DIR, bundleFileName(version)));
  return { signer, bundle: bundleFileName(version), bundleSha256: head.bundleSha256, payloadSha256: head.payloadSha256 };
}

/** `verify --bundle` of a first-format bundle: payload.sha256, then the signature over the payload, as before. */
export async function verifyFormat1Bundle(bundlePath: string, policy: TrustPolicy): Promise<{ signer: Signer; payloadSha256: string }> {
  const head = await readHead(bundlePath);
  return { signer: await verifyPayloadSignature(head, bundlePath, policy), payloadSha256: head.payloadSha256 };
}

/** The disk side for a first-format release: the kept bundle again, then the tree by the first format's rules. */
export async function verifyFormat1OnDisk(dir: string, record: Format1Record, place: RecordPlace, policy: TrustPolicy, known: ReadonlyMap<string, string>): Promise<TreeCheck> {
  const bundlePath = place === 'kept' ? join(dir, KEPT_DIR, record.bundle) : join(dir, record.bundle);
  const fail = (refusal: ReleaseRefusal): TreeCheck => ({ refusals: [refusal], filesChecked: 0, bytesChecked: 0, filesHashed: 0, identities: new Map() });
  let head: Format1Head;
  try {
    head = await readHead(bundlePath);
  } catch (err) {
    return fail(new ReleaseRefusal('missing', `the kept bundle cannot be read: ${isContainaiError(err) ? err.message : String(err)}`, { entry: place === 'kept' ? `${KEPT_DIR}/${record.bundle}` : record.bundle }));
  }
  try {
    if (record.signer === 'UNSIGNED') {
      if (!policy.allowUnsigned) throw new ReleaseRefusal('signature', 'the release was installed UNSIGNED', { hint: 'install a signed release, or accept it with --allow-unsigned (development only)' });
      if (head.bundleSha256 !== record.bundleSha256) throw new ReleaseRefusal('digest', `is not the bundle recorded in ${INSTALL_RECORD} (sha256 differs)`, { entry: record.bundle });
    } else {
      await verifyPayloadSignature(head, bundlePath, { ...policy, allowUnsigned: false });
      if (head.payloadSha256 !== record.payloadSha256) throw new ReleaseRefusal('digest', `its payload is not the one recorded in ${INSTALL_RECORD}`, { entry: record.bundle });
    }
  } catch (err) {
    if (err instanceof ReleaseRefusal) return fail(err);
    throw err;
  }
  let listed: Map<string, string>;
  try {
    listed = sumsOf(head);
  } catch (err) {
    if (err instanceof ReleaseRefusal) return fail(err);
    throw err;
  }
  const skip = new Set(place === 'kept' ? [KEPT_DIR] : [INSTALL_RECORD, record.bundle]);
  const check = await judgeTree(dir, new Format1Judge(listed), skip, known);
  // The tree's SHA256SUMS must be the payload's own (a file changed with its line would pass otherwise).
  const treeSums = await readFile(join(dir, SUMS_FILE)).catch(() => undefined);
  if ('sums' in head.payloadSums && (!treeSums || !Buffer.from(head.payloadSums.sums).equals(treeSums))) {
    check.refusals.push(new ReleaseRefusal('digest', "is not the one in the kept bundle's payload (it was changed after install)", { entry: SUMS_FILE }));
  }
  if (check.refusals.length === 0) {
    const versionProblem = await checkVersion(dir, record.version);
    if (versionProblem) check.refusals.push(versionProblem);
  }
  if (place === 'kept') check.refusals.unshift(...(await checkKeptDir(dir, [INSTALL_RECORD, record.bundle])));
  return check;
}


