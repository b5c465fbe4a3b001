/**
 * Making dist/<version>/ (SPEC "The release") as ordered steps over one
 * context: stage → sbom → manifest → archive → agents → bundle. Everything is
 * built in a hidden work folder beside the output and renamed into place at
 * the end, so dist/<version>/ is never half-written: it is the old release or
 * the new one. Every input that can be checked (SBOM, bundle members, the two
 * agents) is checked before anything is written.
 */
import { copyFile, mkdir, readdir, readFile, realpath, rename, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { archiveMtime, writeTarGz } from '../archive/write.ts';
import { checkMember, writeReleaseBundle } from '../bundle/write.ts';
import {
  ATTESTATION_FILE,
  COSIGN_FILE,
  PAYLOAD_ARCHIVE,
  PAYLOAD_SHA256,
  PAYLOAD_TOP,
  RELEASE_FILE,
  SBOM_FILE,
  SUMS_FILE,
  TRUSTED_ROOT_FILE,
} from '../bundle/layout.ts';
import { createProgress } from '../cli/progress.ts';
import { sha256Bytes } from '../digest.ts';
import { ContainaiError, describeCause } from '../errors.ts';
import { fsyncDir, tempSibling } from '../fs/atomic.ts';
import { readProfileEntries } from '../profile.ts';
import { embedSbom, findSyft, parseSbom, runSyft, skippedSbom } from '../sbom.ts';
import type { Step } from '../steps.ts';
import { type Agent, findAgents, placeAgents, placeExecutable } from './agents.ts';
import { assertAttestationCoversSums } from './attestation.ts';
import { archiveEntries, type Manifest, writeManifest } from './manifest.ts';
import { type PayloadSources, stagePayload } from './stage.ts';

export type SbomSource = { kind: 'file'; path: string } | { kind: 'syft' } | { kind: 'skip' };

/** The members a release may carry beyond what package makes (given to package or repack). */
export type ExtraMember = typeof ATTESTATION_FILE | typeof COSIGN_FILE | typeof TRUSTED_ROOT_FILE;

export interface ReleaseInput {
  version: string;
  outDir: string;
  sources: PayloadSources;
  sbom: SbomSource;
  extras: Partial<Record<ExtraMember, string>>;
  /** Where containai-host-linux-x64 and -arm64 are, and how to name that folder in messages. */
  agents: { dir: string; where: string };
}

export interface ReleaseContext extends Omit<ReleaseInput, 'agents'> {
  mtime: number;
  /** The hidden work folder beside dist/<version>. */
  work: string;
  /** <work>/stage/payload: the tree that becomes payload.tar.gz. */
  payloadDir: string;
  /** <work>/release: becomes dist/<version>. */
  releaseDir: string;
  /** Checked by prepareRelease. */
  agents: Agent[];
  /** The first folder of outDir this run created, removed again if the run fails (bad input writes nothing). */
  createdOut?: string;
  published?: boolean;
  manifest?: Manifest;
  payload?: { sha256: string; bytes: number };
  /** SHA256SUMS's digest: what is signed and attested. */
  sumsSha256?: string;
  files?: number;
}

export const RELEASE_STEPS: readonly Step<ReleaseContext>[] = [
  { name: 'stage', title: 'stage the payload tree', run: (ctx) => stagePayload(ctx.sources, ctx.payloadDir) },
  { name: 'sbom', title: 'SBOM', run: makeSbom },
  {
    name: 'manifest',
    title: `${RELEASE_FILE} and ${SUMS_FILE}`,
    run: async (ctx) => {
      ctx.manifest = await writeManifest(ctx.payloadDir, ctx.version);
      ctx.files = ctx.manifest.files;
    },
  },
  { name: 'archive', title: PAYLOAD_ARCHIVE, run: archivePayload },
  {
    name: 'agents',
    title: 'containai-host-linux-x64 and -arm64',
    run: async (ctx) => void (await placeAgents(ctx.agents, ctx.releaseDir)),
  },
  { name: 'bundle', title: 'bundle', run: bundleRelease },
];

/**
 * Checks every input that can be checked before anything is written, then
 * opens the work folder. A --skip-sbom for a prod profile is refused here.
 */
export async function prepareRelease(input: ReleaseInput): Promise<ReleaseContext> {
  const mtime = archiveMtime();
  if (input.sbom.kind === 'skip' && (await profileIsProd(input.sources.hostDir))) {
    throw new ContainaiError('INPUT', '--skip-sbom is refused: host/profile.env says PROFILE=prod', {
      hint: 'a prod release ships an SBOM: install syft, or pass a pre-generated --sbom FILE',
    });
  }
  if (input.sbom.kind === 'file') parseSbom(await readText(input.sbom.path, '--sbom'), input.sbom.path);
  if (input.sbom.kind === 'syft') findSyft();
  for (const [name, path] of Object.entries(input.extras) as Array<[ExtraMember, string]>) await checkMember(name, path);
  const agents = await findAgents(input.agents.dir, input.agents.where);

  const createdOut = await mkdir(input.outDir, { recursive: true });
  await removeAbandonedWork(input.outDir, input.version);
  const work = tempSibling(join(input.outDir, input.version), 'tmp');
  const payloadDir = join(work, 'stage', PAYLOAD_TOP);
  const releaseDir = join(work, 'release');
  await mkdir(payloadDir, { recursive: true });
  await mkdir(releaseDir);
  return { ...input, agents, mtime, work, payloadDir, releaseDir, createdOut };
}

/** Moves the finished release to <out>/<version>, replacing an older one; returns its path. */
export async function publishRelease(ctx: ReleaseContext): Promise<string> {
  const final = join(ctx.outDir, ctx.version);
  const exists = await stat(final).then(
    () => true,
    () => false,
  );
  const old = exists ? tempSibling(final, 'old') : undefined;
  if (old) await rename(final, old);
  try {
    await rename(ctx.releaseDir, final);
  } catch (err) {
    if (old) await rename(old, final);
    throw new ContainaiError('INPUT', `cannot move the release into ${final}: ${describeCause(err)}`, { cause: err });
  }
  ctx.published = true;
  await fsyncDir(ctx.outDir);
  if (old) await rm(old, { recursive: true, force: true });
  return final;
}

/** Removes the work folder, whether the release was published or failed, and an output folder a failed run made. */
export async function discardWork(ctx: ReleaseContext): Promise<void> {
  await rm(ctx.work, { recursive: true, force: true });
  if (!ctx.published && ctx.createdOut) {
    // Only what this run made, and only if still empty (recursive: false): dist/ as it was.
    const made = ctx.createdOut;
    for (let dir = ctx.outDir; dir.startsWith(made); dir = dirname(dir)) {
      if (!(await rmdir(dir).then(() => true, () => false))) break;
      if (dir === made) break;
    }
  }
}

async function makeSbom(ctx: ReleaseContext): Promise<void> {
  const out = join(ctx.payloadDir, SBOM_FILE);
  if (ctx.sbom.kind === 'file') await embedSbom(ctx.sbom.path, out);
  else if (ctx.sbom.kind === 'syft') await runSyft(ctx.payloadDir, out, ctx.mtime);
  else await writeFile(out, skippedSbom(ctx.version, ctx.mtime), { mode: 0o644 });
}

async function archivePayload(ctx: ReleaseContext): Promise<void> {
  const manifest = ctx.manifest as Manifest;
  const progress = createProgress(PAYLOAD_ARCHIVE, manifest.bytes);
  ctx.payload = await writeTarGz(archiveEntries(manifest), join(ctx.releaseDir, PAYLOAD_ARCHIVE), {
    mtime: ctx.mtime,
    order: 'given',
    onBytes: (n) => progress.advance(n),
  });
  progress.done();
  await writeFile(join(ctx.releaseDir, PAYLOAD_SHA256), `${ctx.payload.sha256}  ${PAYLOAD_ARCHIVE}\n`, { mode: 0o644 });
  // Beside the payload, byte for byte: SHA256SUMS is what is signed and attested, release.json
  // lets a registry tell a host the version before it downloads the payload.
  for (const name of [SBOM_FILE, SUMS_FILE, RELEASE_FILE]) await copyFile(join(ctx.payloadDir, name), join(ctx.releaseDir, name));
  ctx.sumsSha256 = sha256Bytes(await readFile(join(ctx.releaseDir, SUMS_FILE)));
}

/** The given members join the release folder (an attestation only if it covers SHA256SUMS), then the bundle is written from it. */
async function bundleRelease(ctx: ReleaseContext): Promise<void> {
  const { extras, releaseDir } = ctx;
  if (extras[ATTESTATION_FILE]) {
    const text = await readFile(extras[ATTESTATION_FILE], 'utf8');
    assertAttestationCoversSums(text, `--attestation ${extras[ATTESTATION_FILE]}`, ctx.sumsSha256 as string);
    await writeFile(join(releaseDir, ATTESTATION_FILE), text, { mode: 0o644, flag: 'wx' });
  }
  if (extras[TRUSTED_ROOT_FILE]) await copyFile(extras[TRUSTED_ROOT_FILE], join(releaseDir, TRUSTED_ROOT_FILE));
  // --cosign-asset "$(command -v cosign)" may name a link: the file it names ships.
  if (extras[COSIGN_FILE]) await placeExecutable(await realpath(extras[COSIGN_FILE]), join(releaseDir, COSIGN_FILE));
  await writeReleaseBundle(releaseDir, ctx.version, { mtime: ctx.mtime });
}

async function profileIsProd(hostDir: string): Promise<boolean> {
  const path = join(hostDir, 'profile.env');
  const exists = await stat(path).then(
    () => true,
    () => false,
  );
  return exists && (await readProfileEntries(path)).get('PROFILE') === 'prod';
}

async function readText(path: string, flag: string): Promise<string> {
  try {
    return await Bun.file(path).text();
  } catch (err) {
    throw new ContainaiError('NOT_FOUND', `cannot read ${flag} ${path} (${describeCause(err)})`, { cause: err });
  }
}

/** Work folders of runs that were killed (their process is gone) are removed by the next run. */
async function removeAbandonedWork(outDir: string, version: string): Promise<void> {
  const prefix = `.${version}.`;
  for (const name of await readdir(outDir)) {
    if (!name.startsWith(prefix)) continue;
    const match = /^(?:tmp|old)-(\d+)-[0-9a-f]+$/.exec(name.slice(prefix.length));
    if (match && !processAlive(Number(match[1]))) await rm(join(outDir, name), { recursive: true, force: true });
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
