/**
 * Installing a release, as ordered steps over one context (STYLE: goreleaser):
 *
 *   fetch    the source's small parts: SHA256SUMS and its signature material
 *   verify   the manifest's signature under the policy (lib/manifest/verify.ts)
 *   decide   the version (asked for, or the verified release.json's): not bad,
 *            not below the floor, not already current
 *   extract  payload.tar.gz streamed into a private staging folder; every
 *            entry judged at its header and every file hashed as it is written
 *            against the verified manifest (lib/manifest/payload-checks.ts);
 *            the first refusal stops it
 *   keep     .containai/: install.json and the signature material
 *   sync     the staged tree flushed to disk (one syncfs)
 *   floor    the downgrade floor raised, before the switch
 *   place    one rename into releases/<dir>
 *   activate one rename of a fresh symlink over current: the commit point
 *
 * The bundle is read once; the payload is never written anywhere but the tree.
 * Everything before "activate" happens in releases/.staging-<version>-<random>/
 * (0700), which no link names: a failure or a kill leaves current untouched,
 * and the next run removes the staging folder. After the switch the install
 * has happened: what cannot be written then (the event, the cleanup) is a
 * warning, never a failure. A bundle of the first format takes format1.ts's
 * path through the same fetch, keep and commit steps.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, constants, openSync } from 'node:fs';
import { mkdir, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { extractArchive } from '../archive/extract.ts';
import { PAYLOAD_LIMITS } from '../archive/policy.ts';
import { PAYLOAD_ARCHIVE, PAYLOAD_TOP } from '../bundle/layout.ts';
import { createProgress } from '../cli/progress.ts';
import { log } from '../cli/output.ts';
import { sha256Bytes } from '../digest.ts';
import { ContainaiError, describeCause, isContainaiError } from '../errors.ts';
import { fsyncDir } from '../fs/atomic.ts';
import { fsError } from '../fs/errors.ts';
import { PayloadChecks } from '../manifest/payload-checks.ts';
import { type Manifest, readManifest, verifyManifestSignature } from '../manifest/verify.ts';
import { runSteps, type Step, type StepRecord } from '../steps.ts';
import type { TrustPolicy } from '../trust/policy.ts';
import { VERSION } from '../version.ts';
import { activateRelease, readReleaseLink } from './activate.ts';
import { removeLeftovers, removeRelease } from './cleanup.ts';
import { appendEvent } from './events.ts';
import { downgradeReason, type Floor, raiseFloor, readFloor } from './floor.ts';
import { writeKept } from './kept.ts';
import { CURRENT_LINK, freeReleaseDirName, type InstallLayout, installLayout, isReleaseDirName, PREVIOUS_LINK, STAGING_PREFIX, versionOfDir } from './layout.ts';
import { acquireLock } from './lock.ts';
import type { InstallRecord, Signer } from './record.ts';
import type { ReleaseParts, ReleaseSource } from './source.ts';
import { syncFilesystem } from './sys.ts';
import { verifyInstalledRelease, type ReleaseVerification } from './verify-installed.ts';

export interface InstallHooks {
  /** After every check passed on the staged tree, before the switch: throw to refuse (the gate's probe files). */
  beforeActivate?(tree: string, version: string): Promise<void>;
  /**
   * With the lock held, the release placed in releases/<dirName> and current not yet switched to it:
   * the gate writes its trial here, so a crash at any instant leaves a trial the next run decides
   * (after the switch would leave a window where the release is current with no trial). Throw to
   * refuse: the placed folder is removed and current is not touched.
   */
  beforeSwitch?(layout: InstallLayout, version: string, dirName: string): Promise<void>;
  /** Right after the switch, with the lock held. A failure is a warning. */
  afterActivate?(layout: InstallLayout, version: string, dirName: string, previous: string | undefined): Promise<void>;
  /** Refuses a version before anything is fetched for it (the gate's bad list); returns the reason. */
  refuseVersion?(layout: InstallLayout, version: string): Promise<string | undefined>;
}

export interface InstallRequest {
  installRoot: string;
  /** The version asked for; undefined when the verified release.json decides (a registry install). */
  version?: string;
  /** The repository the release belongs to, recorded in install.json. */
  repo?: string;
  source: ReleaseSource;
  policy: TrustPolicy;
  force: boolean;
  allowDowngrade: boolean;
  lockWaitMs: number;
  hooks?: InstallHooks;
}

export interface InstallResult {
  outcome: 'installed' | 'already-current';
  version: string;
  format?: 1 | 2;
  dirName: string;
  previous?: string;
  signer?: Signer;
  steps: StepRecord[];
  verification?: ReleaseVerification;
  /** What could not be done after the switch (the install itself happened). */
  warnings: string[];
}

interface InstallContext {
  request: InstallRequest;
  layout: InstallLayout;
  floor: Floor;
  /** releases/.staging-…: private work folder. */
  work: string;
  /** work/tree: becomes releases/<dirName>. */
  tree: string;
  version?: string;
  parts?: ReleaseParts;
  signer?: Signer;
  manifest?: Manifest;
  record?: InstallRecord;
  dirName?: string;
  oldCurrent?: string;
  /** Set by "decide" when the version is already current and verifies: the pipeline stops there. */
  alreadyCurrent?: ReleaseVerification;
}

/** Thrown inside the steps to end the pipeline early with "already current" (not an error). */
class AlreadyCurrent {
  constructor(readonly verification: ReleaseVerification) {}
}

/** The checks that need only the version: the bad list, already current, the floor. */
async function decideVersion(ctx: InstallContext, version: string): Promise<void> {
  const { request, layout } = ctx;
  const bad = request.force ? undefined : await request.hooks?.refuseVersion?.(layout, version);
  if (bad) {
    throw new ContainaiError('VERIFY', `refusing ${version}: ${bad}`, { hint: 'install another version, or rerun with --force if the cause is fixed' });
  }
  const current = await readReleaseLink(layout, CURRENT_LINK);
  if (current.kind === 'release' && versionOfDir(current.dirName) === version && !request.force) {
    const verification = await verifyInstalledRelease(layout.root, { policy: request.policy });
    if (!verification.ok) {
      throw new ContainaiError('VERIFY', `${version} is already current but does not verify: ${verification.problems.slice(0, 3).join('; ')}`, {
        hint: 'reinstall it with --force (the live tree is replaced atomically)',
        details: { problems: verification.problems },
      });
    }
    throw new AlreadyCurrent(verification);
  }
  const present = (await readdir(layout.releases)).filter(isReleaseDirName).map(versionOfDir);
  const below = downgradeReason(ctx.floor, version, present);
  if (below && !request.allowDowngrade) {
    throw new ContainaiError('VERIFY', `refusing a downgrade: ${below}`, {
      hint: 'an old release may carry fixed vulnerabilities; if you mean it, rerun with --allow-downgrade (or use rollback)',
    });
  }
  ctx.version = version;
}

const isFormat1 = (ctx: InstallContext) => (ctx.parts?.format === 1 ? 'a bundle of the first format' : undefined);

function installSteps(): Step<InstallContext>[] {
  return [
    {
      name: 'fetch',
      title: 'Fetch the manifest and its signature',
      async run(ctx) {
        ctx.parts = await ctx.request.source.open({ work: ctx.work, downloads: ctx.layout.downloads });
        if (ctx.parts.format === 1 && ctx.version === undefined) {
          throw new ContainaiError('USAGE', 'a bundle of the first format needs --version', { hint: 'give --version V' });
        }
      },
    },
    {
      name: 'verify',
      title: 'Verify the manifest',
      skip: isFormat1,
      async run(ctx) {
        const parts = ctx.parts as Extract<ReleaseParts, { format: 2 }>;
        ctx.signer = await verifyManifestSignature(parts.sums, parts.signatures, ctx.request.policy);
        if (ctx.signer === 'UNSIGNED') log().warn('the release is installed UNSIGNED (--allow-unsigned: development only)');
        if (parts.releaseJson) ctx.manifest = readManifest(parts.sums, parts.releaseJson, ctx.request.version);
      },
    },
    {
      name: 'decide',
      title: 'Check the version',
      skip: (ctx) => (ctx.version !== undefined ? 'checked before the fetch' : undefined),
      async run(ctx) {
        if (!ctx.manifest) throw new ContainaiError('USAGE', 'this source does not say which version it holds before its payload: give --version', { hint: 'give --version V' });
        await decideVersion(ctx, ctx.manifest.version);
      },
    },
    {
      name: 'extract',
      title: 'Extract and check the payload',
      async run(ctx) {
        const version = ctx.version as string;
        if (ctx.parts?.format === 1) {
          const { installFormat1 } = await import('./format1.ts');
          const done = await installFormat1(ctx.parts.bundlePath, ctx.work, ctx.tree, version, ctx.request.policy);
          ctx.signer = done.signer;
          ctx.record = record(ctx, { bundle: done.bundle, bundleSha256: done.bundleSha256, payloadSha256: done.payloadSha256 });
          return;
        }
        const parts = ctx.parts as Extract<ReleaseParts, { format: 2 }>;
        const checks = new PayloadChecks({ sums: parts.sums, version, manifest: ctx.manifest });
        const progress = createProgress(PAYLOAD_ARCHIVE);
        try {
          await extractArchive(ctx.request.source.payload(), ctx.tree, {
            label: PAYLOAD_ARCHIVE,
            topFolder: PAYLOAD_TOP,
            limits: PAYLOAD_LIMITS,
            checks,
            keepRecords: false,
            onBytes: (n) => progress.advance(n),
          });
        } finally {
          progress.done();
        }
        ctx.manifest = checks.manifest;
        ctx.record = record(ctx, {});
      },
    },
    {
      name: 'keep',
      title: 'Keep install.json and the signature material',
      async run(ctx) {
        const parts = ctx.parts as ReleaseParts;
        if (parts.format === 2) {
          await writeKept(ctx.tree, ctx.record as InstallRecord, parts.signatures);
        } else {
          const { writeFile } = await import('node:fs/promises');
          await writeFile(join(ctx.tree, '.containai', 'install.json'), `${JSON.stringify(ctx.record, null, 2)}\n`, { mode: 0o644, flag: 'wx' });
        }
        await ctx.request.hooks?.beforeActivate?.(ctx.tree, ctx.version as string);
      },
    },
    {
      name: 'sync',
      title: 'Flush the release to disk',
      run(ctx) {
        // One syncfs(2) flushes every file and folder written above; fsync of each would cost thousands of calls.
        const fd = openSync(ctx.tree, constants.O_RDONLY | constants.O_DIRECTORY);
        try {
          if (!syncFilesystem(fd)) throw new ContainaiError('STATE', `could not flush ${ctx.tree} to disk`, { hint: 'check the file system (dmesg) and run again' });
        } finally {
          closeSync(fd);
        }
      },
    },
    {
      name: 'floor',
      title: 'Raise the downgrade floor',
      // Before the switch: once current names the release, the floor must already say it was installed.
      run: (ctx) => raiseFloor(ctx.layout, ctx.floor, ctx.version as string, new Date().toISOString()),
    },
    {
      name: 'place',
      title: 'Move the release into releases/',
      async run(ctx) {
        const taken = new Set(await readdir(ctx.layout.releases));
        ctx.dirName = freeReleaseDirName(ctx.version as string, taken);
        await rename(ctx.tree, join(ctx.layout.releases, ctx.dirName));
        await fsyncDir(ctx.layout.releases);
      },
    },
    {
      name: 'activate',
      title: 'Switch current',
      async run(ctx) {
        try {
          await ctx.request.hooks?.beforeSwitch?.(ctx.layout, ctx.version as string, ctx.dirName as string);
        } catch (err) {
          // No link names the placed folder yet: removing it leaves releases/ as it was.
          await removeRelease(ctx.layout, ctx.dirName as string).catch(() => undefined);
          throw err;
        }
        const { oldCurrent } = await activateRelease(ctx.layout, ctx.dirName as string);
        ctx.oldCurrent = oldCurrent;
      },
    },
  ];
}

function record(ctx: InstallContext, format1: { bundle?: string; bundleSha256?: string; payloadSha256?: string }): InstallRecord {
  const common = {
    version: ctx.version as string,
    repo: ctx.request.repo,
    source: ctx.request.source.location,
    signer: ctx.signer as Signer,
    installedAt: new Date().toISOString(),
    installedBy: `containai-host ${VERSION}`,
  };
  if (ctx.parts?.format === 1) return { format: 1, ...common, bundle: format1.bundle as string, bundleSha256: format1.bundleSha256 as string, payloadSha256: format1.payloadSha256 as string };
  const parts = ctx.parts as Extract<ReleaseParts, { format: 2 }>;
  return { format: 2, ...common, manifestSha256: sha256Bytes(parts.sums) };
}

/** Removes other copies of the version just installed that neither link names any more. */
async function removeOtherCopies(layout: InstallLayout, version: string): Promise<void> {
  const current = await readReleaseLink(layout, CURRENT_LINK);
  const previous = await readReleaseLink(layout, PREVIOUS_LINK);
  const named = new Set([current, previous].flatMap((l) => (l.kind === 'release' ? [l.dirName] : [])));
  for (const name of await readdir(layout.releases)) {
    if (isReleaseDirName(name) && versionOfDir(name) === version && !named.has(name)) await removeRelease(layout, name);
  }
}

function outcomeOf(err: unknown): 'refused' | 'failed' {
  return err instanceof ContainaiError && ['VERIFY', 'ARCHIVE', 'INPUT', 'PERMISSION', 'NOT_FOUND', 'USAGE'].includes(err.code) ? 'refused' : 'failed';
}

/** An errno error as the operator's message (read-only, not writable, full), anything else as it is. */
function explain(err: unknown, layout: InstallLayout): unknown {
  if (isContainaiError(err)) return err;
  return fsError(err, 'install', layout.root) ?? err;
}

/** current must be a link (or absent): a folder there would be replaced by the switch, so it is refused first. */
async function assertCurrentIsLink(layout: InstallLayout): Promise<void> {
  const current = await readReleaseLink(layout, CURRENT_LINK);
  if (current.kind !== 'invalid') return;
  throw new ContainaiError('STATE', `${layout.current}: ${current.reason}; refusing to replace it`, {
    hint: `install makes current a link to a release: look at what ${layout.current} holds, move it away (mv ${layout.current} ${layout.current}.old), then run again; nothing was changed`,
  });
}

export async function installRelease(request: InstallRequest): Promise<InstallResult> {
  const layout = installLayout(request.installRoot);
  try {
    await mkdir(layout.root, { recursive: true, mode: 0o755 });
  } catch (err) {
    throw explain(err, layout);
  }
  // The lock first: it refuses a releases/ or state/ that is not a real folder (lib/release/guard.ts).
  const lock = await acquireLock(layout, `containai-host install ${request.version ?? request.source.location}`, request.lockWaitMs).catch((err) => {
    throw explain(err, layout);
  });
  let work: string | undefined;
  let ctx: InstallContext | undefined;
  try {
    await mkdir(layout.releases, { recursive: true, mode: 0o755 });
    if (lock.staleHolder) log().info(`took over the lock left by pid ${lock.staleHolder.pid} (${lock.staleHolder.command}), which ended without releasing it`);
    const removed = await removeLeftovers(layout);
    if (removed.length > 0) log().info(`removed what an interrupted run left: ${removed.join(', ')}`);
    await assertCurrentIsLink(layout);

    work = join(layout.releases, `${STAGING_PREFIX}${request.version ?? 'oci'}-${randomBytes(6).toString('hex')}`);
    ctx = { request, layout, floor: await readFloor(layout), work, tree: join(work, 'tree') };
    if (request.version !== undefined) await decideVersion(ctx, request.version);
    await mkdir(work, { mode: 0o700 });
    const steps = await runSteps(installSteps(), ctx);
    return await afterCommit(ctx, steps);
  } catch (err) {
    if (err instanceof AlreadyCurrent) {
      const version = ctx?.version ?? versionOfDir(err.verification.release?.dirName ?? '');
      await appendEvent(layout, { action: 'install', version, outcome: 'unchanged', reason: 'already current' });
      return { outcome: 'already-current', version, dirName: err.verification.release?.dirName ?? version, steps: [], verification: err.verification, warnings: [] };
    }
    const error = explain(err, layout);
    await appendEvent(layout, { action: 'install', version: ctx?.version ?? request.version, outcome: outcomeOf(error), reason: error instanceof Error ? error.message : String(error) });
    throw error;
  } finally {
    await request.source.close().catch(() => undefined);
    if (work) await rm(work, { recursive: true, force: true }).catch(() => undefined);
    lock.release();
  }
}

/** After the switch: the release is current. Everything here is reported, never failed. */
async function afterCommit(ctx: InstallContext, steps: StepRecord[]): Promise<InstallResult> {
  const warnings: string[] = [];
  const attempt = async (what: string, run: () => Promise<void>) => {
    try {
      await run();
    } catch (err) {
      const line = `${what}: ${describeCause(err)}`;
      warnings.push(line);
      log().warn(`the install is done, but ${line}`);
    }
  };
  const version = ctx.version as string;
  const dirName = ctx.dirName as string;
  const { layout, request } = ctx;
  await attempt('the trial could not start', async () => request.hooks?.afterActivate?.(layout, version, dirName, ctx.oldCurrent));
  await attempt('the event could not be logged', () => appendEvent(layout, { action: 'install', version, outcome: 'ok', dir: `releases/${dirName}`, replaced: ctx.oldCurrent, format: ctx.parts?.format }, { strict: true }));
  await attempt('an older copy of this version could not be removed', () => removeOtherCopies(layout, version));
  const previous = await readReleaseLink(layout, PREVIOUS_LINK).catch(() => ({ kind: 'absent' as const }));
  return {
    outcome: 'installed',
    version,
    format: ctx.parts?.format,
    dirName,
    previous: previous.kind === 'release' ? previous.dirName : undefined,
    signer: ctx.signer,
    steps,
    warnings,
  };
}
