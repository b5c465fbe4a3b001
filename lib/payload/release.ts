/**
 * Making dist/<version>/ (SPEC "The release") as ordered steps over one
 * context: stage → sbom → sums → archive → bundle. Everything is built in a
 * hidden work folder beside the output and renamed into place at the end, so
 * dist/<version>/ is never half-written: it is the old release or the new one.
 */
import { copyFile, mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { archiveMtime, writeTarGz } from '../archive/write.ts';
import { checkMember, writeBundle } from '../bundle/write.ts';
import {
  bundleFileName,
  type Format1Member,
  PAYLOAD_ARCHIVE,
  PAYLOAD_SHA256,
  PAYLOAD_TOP,
  SBOM_FILE,
} from '../bundle/layout.ts';
import { formatReleaseManifest, RELEASE_FILE } from '../bundle/manifest.ts';
import { createProgress } from '../cli/progress.ts';
import { ContainaiError, describeCause } from '../errors.ts';
import { fsyncDir, tempSibling } from '../fs/atomic.ts';
import { readProfileEntries } from '../profile.ts';
import { embedSbom, findSyft, parseSbom, runSyft, skippedSbom } from '../sbom.ts';
import type { Step } from '../steps.ts';
import { assertHostBinary, payloadEntries, type PayloadSources, stagePayload } from './stage.ts';
import { writePayloadSums } from './sums.ts';

export type SbomSource = { kind: 'file'; path: string } | { kind: 'syft' } | { kind: 'skip' };

/** The members a release may carry beyond the payload and its hash (given to package or repack). */
export type ExtraMember = Extract<Format1Member, 'attestation.intoto.jsonl' | 'cosign' | 'trusted_root.json'>;

export interface ReleaseInput {
  version: string;
  outDir: string;
  sources: PayloadSources;
  sbom: SbomSource;
  extras: Partial<Record<ExtraMember, string>>;
}

export interface ReleaseContext extends ReleaseInput {
  mtime: number;
  /** The hidden work folder beside dist/<version>. */
  work: string;
  /** <work>/stage/payload: the tree that becomes payload.tar.gz. */
  payloadDir: string;
  /** <work>/release: becomes dist/<version>. */
  releaseDir: string;
  payload?: { sha256: string; bytes: number };
  files?: number;
}

export const RELEASE_STEPS: readonly Step<ReleaseContext>[] = [
  {
    name: 'stage',
    title: 'stage the payload tree',
    run: async (ctx) => {
      await stagePayload(ctx.sources, ctx.payloadDir);
      // Inside the payload, so inside what SHA256SUMS and the signature cover (lib/bundle/manifest.ts).
      await writeFile(join(ctx.payloadDir, RELEASE_FILE), formatReleaseManifest(ctx.version), { mode: 0o644, flag: 'wx' });
    },
  },
  { name: 'sbom', title: 'SBOM', run: makeSbom },
  {
    name: 'sums',
    title: 'SHA256SUMS',
    run: async (ctx) => {
      ctx.files = await writePayloadSums(ctx.payloadDir);
    },
  },
  { name: 'archive', title: PAYLOAD_ARCHIVE, run: archivePayload },
  {
    name: 'bundle',
    title: 'bundle',
    run: (ctx) =>
      writeBundle(
        join(ctx.releaseDir, bundleFileName(ctx.version)),
        { [PAYLOAD_ARCHIVE]: join(ctx.releaseDir, PAYLOAD_ARCHIVE), [PAYLOAD_SHA256]: join(ctx.releaseDir, PAYLOAD_SHA256), ...ctx.extras },
        { mtime: ctx.mtime },
      ),
  },
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
  await assertHostBinary(input.sources.hostBinary);

  await mkdir(input.outDir, { recursive: true });
  await removeAbandonedWork(input.outDir, input.version);
  const work = tempSibling(join(input.outDir, input.version), 'tmp');
  const payloadDir = join(work, 'stage', PAYLOAD_TOP);
  const releaseDir = join(work, 'release');
  await mkdir(payloadDir, { recursive: true });
  await mkdir(releaseDir);
  return { ...input, mtime, work, payloadDir, releaseDir };
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
  await fsyncDir(ctx.outDir);
  if (old) await rm(old, { recursive: true, force: true });
  return final;
}

/** Removes the work folder, whether the release was published or failed. */
export async function discardWork(ctx: ReleaseContext): Promise<void> {
  await rm(ctx.work, { recursive: true, force: true });
}

async function makeSbom(ctx: ReleaseContext): Promise<void> {
  const out = join(ctx.payloadDir, SBOM_FILE);
  if (ctx.sbom.kind === 'file') await embedSbom(ctx.sbom.path, out);
  else if (ctx.sbom.kind === 'syft') await runSyft(ctx.payloadDir, out, ctx.mtime);
  else await writeFile(out, skippedSbom(ctx.version, ctx.mtime), { mode: 0o644 });
}

async function archivePayload(ctx: ReleaseContext): Promise<void> {
  const entries = await payloadEntries(ctx.payloadDir);
  let total = 0;
  for (const e of entries) if (e.source) total += (await stat(e.source)).size;
  const progress = createProgress(PAYLOAD_ARCHIVE, total);
  ctx.payload = await writeTarGz(entries, join(ctx.releaseDir, PAYLOAD_ARCHIVE), {
    mtime: ctx.mtime,
    onBytes: (n) => progress.advance(n),
  });
  progress.done();
  await writeFile(join(ctx.releaseDir, PAYLOAD_SHA256), `${ctx.payload.sha256}  ${PAYLOAD_ARCHIVE}\n`, { mode: 0o644 });
  await copyFile(join(ctx.payloadDir, SBOM_FILE), join(ctx.releaseDir, SBOM_FILE));
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
