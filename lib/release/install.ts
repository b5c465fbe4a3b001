/**
 * Installing a release (issue 3), as ordered steps over one context:
 *
 *   fetch → read bundle → check payload.sha256 → verify → extract → check
 *   SHA256SUMS → check release.json → keep bundle + install.json → sync →
 *   place → activate
 *
 * Everything before "place" happens in a private staging folder
 * releases/.staging-<version>-<random>/ (mode 0700) that no link ever names;
 * a failure or a kill at any point leaves current untouched, and the next run
 * removes the staging folder. "place" is one rename into releases/<dir>,
 * "activate" one rename of a fresh symlink over current (activate.ts).
 */
import { randomBytes } from 'node:crypto';
import { closeSync, constants, openSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { extractTarGz } from '../archive/extract.ts';
import { PAYLOAD_LIMITS } from '../archive/policy.ts';
import { checkPayloadHash, unpackBundle } from '../bundle/read.ts';
import { bundleFileName, isSafeVersion, PAYLOAD_TOP, SUMS_FILE } from '../bundle/layout.ts';
import { parseReleaseManifest, RELEASE_FILE, RELEASE_FILE_MAX_BYTES } from '../bundle/manifest.ts';
import { parseSums } from '../digest.ts';
import { ContainaiError, describeCause } from '../errors.ts';
import { fsyncDir } from '../fs/atomic.ts';
import { downloadReleaseAsset } from '../github/download.ts';
import { log } from '../cli/output.ts';
import { runSteps, type Step, type StepRecord } from '../steps.ts';
import { VERSION } from '../version.ts';
import { activateRelease, readReleaseLink } from './activate.ts';
import { removeLeftovers, removeRelease } from './cleanup.ts';
import { appendEvent } from './events.ts';
import { downgradeReason, raiseFloor, readFloor } from './floor.ts';
import { verifyInstalledRelease, type ReleaseVerification } from './installed.ts';
import { CURRENT_LINK, freeReleaseDirName, INSTALL_RECORD, type InstallLayout, installLayout, isReleaseDirName, PREVIOUS_LINK, STAGING_PREFIX, versionOfDir } from './layout.ts';
import { acquireLock } from './lock.ts';
import type { InstallRecord, Signer } from './record.ts';
import { syncFilesystem } from './sys.ts';
import { verifyBundleSigner, type ReleasePolicy } from './trust.ts';

export type BundleSource =
  | { kind: 'github'; baseUrl: string; repo: string; token?: string }
  | { kind: 'file'; path: string };

export interface InstallRequest {
  installRoot: string;
  version: string;
  /** The repository the release belongs to, recorded in install.json. */
  repo?: string;
  source: BundleSource;
  policy: ReleasePolicy;
  force: boolean;
  allowDowngrade: boolean;
  lockWaitMs: number;
}

export interface InstallResult {
  outcome: 'installed' | 'already-current';
  version: string;
  dirName: string;
  previous?: string;
  signer?: Signer;
  steps: StepRecord[];
  verification?: ReleaseVerification;
}

type UnpackedBundle = Awaited<ReturnType<typeof unpackBundle>>;
type Extracted = Awaited<ReturnType<typeof extractTarGz>>;

interface InstallContext {
  request: InstallRequest;
  layout: InstallLayout;
  bundleName: string;
  /** releases/.staging-…: private work folder. */
  work: string;
  /** work/tree: becomes releases/<dirName>. */
  tree: string;
  /** The bundle as fetched (a download) or copied while read (a file), inside work/ until it is kept inside the tree. */
  bundlePath: string;
  source?: string;
  /** The bundle's sha256: of the download as it was written, or of a file's bytes as they were read. */
  bundleSha256?: string;
  bundle?: UnpackedBundle;
  payloadSha256?: string;
  signer?: Signer;
  extracted?: Extracted;
  dirName?: string;
  oldCurrent?: string;
}

/**
 * The operator's bundle file, checked before it is read: it exists and is a
 * regular file (not a FIFO or a device that would never end).
 */
async function assertBundleFile(path: string): Promise<void> {
  const info = await stat(path).catch((err: NodeJS.ErrnoException) => {
    throw new ContainaiError(err.code === 'ENOENT' ? 'NOT_FOUND' : 'INPUT', `cannot read the bundle ${path} (${err.code ?? describeCause(err)})`, {
      hint: 'check --bundle / --asset-dir and --version',
    });
  });
  if (!info.isFile()) throw new ContainaiError('INPUT', `the bundle ${path} is not a regular file`, { hint: 'check --bundle / --asset-dir and --version' });
}

/**
 * A bundle file named for one version (containai-<v>.tar.gz) is not installed
 * as another: refused before a byte is read. A name that states no version
 * (bundle.tgz, "containai-v1 (1).tar.gz") leaves the decision to release.json.
 */
function assertBundleNamed(path: string, version: string): void {
  const name = basename(path);
  const named = /^containai-(.+)\.tar\.gz$/.exec(name)?.[1];
  if (named !== undefined && isSafeVersion(named) && named !== version) {
    throw new ContainaiError('VERIFY', `refusing to install ${name} as ${version}: the bundle file is named for ${named}`, {
      hint: `install it as --version ${named}, or take containai-${version}.tar.gz`,
    });
  }
}

/**
 * The payload says which release it is (payload/release.json, covered by
 * SHA256SUMS and so by the signature; lib/bundle/manifest.ts): a signed old
 * payload served under a newer version is refused here, before anything is
 * kept or switched. Runs after check-sums, so the bytes read are the listed ones.
 */
async function assertPayloadIsRelease(tree: string, extracted: Extracted, version: string): Promise<void> {
  const hint = `a signed release served under another version's name (a replayed old bundle) must not install: take containai-${version}.tar.gz from a trusted source, or install the release under its own version`;
  const file = extracted.files.find((f) => f.path === RELEASE_FILE);
  if (!file) {
    throw new ContainaiError('VERIFY', `refusing to install ${version}: the payload has no ${RELEASE_FILE}, so nothing signed says which release it is`, {
      hint: 'rebuild the release with a containai-build that writes payload/release.json',
    });
  }
  const manifest = file.size > RELEASE_FILE_MAX_BYTES ? `${RELEASE_FILE} is ${file.size} bytes (at most ${RELEASE_FILE_MAX_BYTES})` : parseReleaseManifest(await readFile(join(tree, RELEASE_FILE), 'utf8'));
  if (typeof manifest === 'string') throw new ContainaiError('VERIFY', `refusing to install ${version}: ${manifest}`, { hint });
  if (manifest.version !== version) {
    throw new ContainaiError('VERIFY', `refusing to install ${version}: the payload is release ${manifest.version} (its ${RELEASE_FILE}), not ${version}`, {
      hint,
      details: { requested: version, payload: manifest.version },
    });
  }
}

/**
 * Compares the extracted files with SHA256SUMS, using the digests computed while
 * they were written: every listed file present and equal, nothing unlisted.
 */
export function compareExtractedWithSums(extracted: Extracted, sumsText: string, reserved: readonly string[]): string[] {
  const problems: string[] = [];
  const sums = parseSums(sumsText);
  const listed = new Map(sums.map((e) => [e.path, e.sha256]));
  const files = new Map(extracted.files.map((f) => [f.path, f]));
  const links = new Map(extracted.symlinks.map((l) => [l.path, l.target]));
  for (const name of reserved) if (files.has(name) || links.has(name) || extracted.directories.includes(name)) problems.push(`${name}: the payload may not hold this name (the install writes it)`);
  for (const file of extracted.files) {
    if (file.path === SUMS_FILE) continue;
    const expected = listed.get(file.path);
    if (expected === undefined) problems.push(`${file.path}: not listed in SHA256SUMS`);
    else if (expected !== file.sha256) problems.push(`${file.path}: content does not match SHA256SUMS`);
  }
  const dirs = new Set(extracted.directories);
  for (const [path, target] of links) {
    // sha256sum -c reads through a link, so a listed link is checked through the file it names; an
    // unlisted one adds no content of its own and may name a listed file or a folder of the release.
    const resolved = resolveLink(path, target, links);
    const file = resolved === undefined ? undefined : files.get(resolved);
    const expected = listed.get(path);
    if (file) {
      if (expected !== undefined && expected !== file.sha256) problems.push(`${path}: link target does not match SHA256SUMS`);
      else if (expected === undefined && listed.get(file.path) === undefined) problems.push(`${path}: links to a file not listed in SHA256SUMS`);
    } else if (resolved === undefined || !dirs.has(resolved) || expected !== undefined) {
      problems.push(`${path}: a link to nothing SHA256SUMS covers`);
    }
  }
  for (const { path } of sums) if (!files.has(path) && !links.has(path)) problems.push(`${path}: listed in SHA256SUMS but missing`);
  return problems;
}

/** Follows a link (and links it names) by name within the archive; undefined when it cannot be resolved. */
function resolveLink(path: string, target: string, links: ReadonlyMap<string, string>): string | undefined {
  let current = path;
  let next = target;
  for (let hops = 0; hops < 40; hops++) {
    const parts = current.split('/').slice(0, -1);
    for (const part of next.split('/')) {
      if (part === '..') {
        if (parts.length === 0) return undefined;
        parts.pop();
      } else if (part !== '.' && part !== '') parts.push(part);
    }
    const resolved = parts.join('/');
    const further = links.get(resolved);
    if (further === undefined) return resolved;
    current = resolved;
    next = further;
  }
  return undefined;
}

function installSteps(): Step<InstallContext>[] {
  return [
    {
      name: 'fetch',
      title: 'Fetch the bundle',
      async run(ctx) {
        const { source, version } = ctx.request;
        if (source.kind === 'file') {
          // Not copied here: "read" writes the private copy from the very bytes it unpacks.
          assertBundleNamed(source.path, version);
          await assertBundleFile(source.path);
          ctx.source = source.path;
          return;
        }
        const result = await downloadReleaseAsset({
          baseUrl: source.baseUrl,
          repo: source.repo,
          version,
          asset: ctx.bundleName,
          dest: ctx.bundlePath,
          token: source.token,
        });
        ctx.source = result.from;
        ctx.bundleSha256 = result.sha256;
        log().info(`  downloaded ${result.bytes} bytes from ${result.from}`);
      },
    },
    {
      name: 'read',
      title: 'Read the bundle',
      async run(ctx) {
        const dest = join(ctx.work, 'bundle');
        const { source } = ctx.request;
        if (source.kind === 'github') {
          ctx.bundle = await unpackBundle(ctx.bundlePath, dest);
          return;
        }
        // One pass over the operator's file: unpacked and teed into the private copy that is kept, so the
        // members checked next and the bundle kept are the same bytes, whatever happens to the file later.
        ctx.bundle = await unpackBundle(source.path, dest, { keepCopy: ctx.bundlePath });
        ctx.bundleSha256 = ctx.bundle.copy!.sha256;
      },
    },
    {
      name: 'check-hash',
      title: 'Check payload.sha256',
      async run(ctx) {
        ctx.payloadSha256 = await checkPayloadHash(ctx.bundle!);
      },
    },
    {
      name: 'verify',
      title: 'Verify the signature',
      async run(ctx) {
        ctx.signer = await verifyBundleSigner(ctx.bundle!, ctx.request.policy);
        if (ctx.signer === 'UNSIGNED') log().warn('the bundle is installed UNSIGNED (--allow-unsigned: development only)');
      },
    },
    {
      name: 'extract',
      title: 'Extract the payload',
      async run(ctx) {
        const payload = ctx.bundle!.members['payload.tar.gz'];
        if (!payload) throw new ContainaiError('ARCHIVE', 'the bundle has no payload.tar.gz');
        ctx.extracted = await extractTarGz(payload, ctx.tree, { limits: PAYLOAD_LIMITS, topFolder: PAYLOAD_TOP });
        // The payload's copy is no longer needed; the kept bundle holds it.
        await rm(join(ctx.work, 'bundle'), { recursive: true, force: true });
      },
    },
    {
      name: 'check-sums',
      title: 'Check SHA256SUMS',
      async run(ctx) {
        const text = await readFile(join(ctx.tree, SUMS_FILE), 'utf8').catch(() => {
          throw new ContainaiError('VERIFY', `the payload has no ${SUMS_FILE}`, { hint: 'the release was not made by containai-build; do not install it' });
        });
        const problems = compareExtractedWithSums(ctx.extracted!, text, [INSTALL_RECORD, ctx.bundleName]);
        if (problems.length > 0) {
          throw new ContainaiError('VERIFY', `the payload does not match its ${SUMS_FILE}: ${problems.slice(0, 5).join('; ')}${problems.length > 5 ? `; and ${problems.length - 5} more` : ''}`, {
            hint: 'the release is damaged or was altered; do not install it',
            details: { problems },
          });
        }
      },
    },
    {
      name: 'check-release',
      title: `Check ${RELEASE_FILE}`,
      async run(ctx) {
        await assertPayloadIsRelease(ctx.tree, ctx.extracted!, ctx.request.version);
      },
    },
    {
      name: 'keep',
      title: 'Keep the bundle and write install.json',
      async run(ctx) {
        await rename(ctx.bundlePath, join(ctx.tree, ctx.bundleName));
        const record: InstallRecord = {
          version: ctx.request.version,
          repo: ctx.request.repo,
          source: ctx.source!,
          bundle: ctx.bundleName,
          bundleSha256: ctx.bundleSha256!,
          payloadSha256: ctx.payloadSha256!,
          signer: ctx.signer!,
          installedAt: new Date().toISOString(),
          installedBy: `containai-host ${VERSION}`,
        };
        await writeFile(join(ctx.tree, INSTALL_RECORD), `${JSON.stringify(record, null, 2)}\n`, { mode: 0o644, flag: 'wx' });
      },
    },
    {
      name: 'sync',
      title: 'Flush the release to disk',
      async run(ctx) {
        // One syncfs(2) flushes every file and folder written above; fsync of each would cost thousands of calls.
        const fd = openSync(ctx.tree, constants.O_RDONLY | constants.O_DIRECTORY);
        try {
          if (!syncFilesystem(fd)) throw new ContainaiError('STATE', `could not flush ${ctx.tree} to disk`);
        } finally {
          closeSync(fd);
        }
      },
    },
    {
      name: 'place',
      title: 'Move the release into releases/',
      async run(ctx) {
        const taken = new Set(await readdir(ctx.layout.releases));
        ctx.dirName = freeReleaseDirName(ctx.request.version, taken);
        await rename(ctx.tree, join(ctx.layout.releases, ctx.dirName));
        await fsyncDir(ctx.layout.releases);
      },
    },
    {
      name: 'activate',
      title: 'Switch current',
      async run(ctx) {
        const { oldCurrent } = await activateRelease(ctx.layout, ctx.dirName!);
        ctx.oldCurrent = oldCurrent;
      },
    },
  ];
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
  return err instanceof ContainaiError && ['VERIFY', 'ARCHIVE', 'INPUT', 'PERMISSION', 'NOT_FOUND'].includes(err.code) ? 'refused' : 'failed';
}

export async function installRelease(request: InstallRequest): Promise<InstallResult> {
  const layout = installLayout(request.installRoot);
  await mkdir(layout.root, { recursive: true, mode: 0o755 });
  // The lock first: it refuses a releases/ or state/ that is not a real folder (lib/release/guard.ts).
  const lock = await acquireLock(layout, `containai-host install ${request.version}`, request.lockWaitMs);
  try {
    await mkdir(layout.releases, { recursive: true, mode: 0o755 });
    if (lock.staleHolder) log().info(`took over the lock left by pid ${lock.staleHolder.pid} (${lock.staleHolder.command}), which ended without releasing it`);
    const removed = await removeLeftovers(layout);
    if (removed.length > 0) log().info(`removed what an interrupted run left: ${removed.join(', ')}`);

    const current = await readReleaseLink(layout, CURRENT_LINK);
    if (current.kind === 'release' && versionOfDir(current.dirName) === request.version && !request.force) {
      const verification = await verifyInstalledRelease(layout.root, { policy: request.policy });
      if (!verification.ok) {
        await appendEvent(layout, { action: 'install', version: request.version, outcome: 'refused', reason: `already current but fails verification: ${verification.problems[0]}` });
        throw new ContainaiError('VERIFY', `${request.version} is already current but does not verify: ${verification.problems.slice(0, 3).join('; ')}`, {
          hint: 'reinstall it with --force (the live tree is replaced atomically)',
          details: { problems: verification.problems },
        });
      }
      await appendEvent(layout, { action: 'install', version: request.version, outcome: 'unchanged', reason: 'already current' });
      return { outcome: 'already-current', version: request.version, dirName: current.dirName, steps: [], verification };
    }

    const floor = await readFloor(layout);
    const present = (await readdir(layout.releases)).filter(isReleaseDirName).map(versionOfDir);
    const below = downgradeReason(floor, request.version, present);
    if (below && !request.allowDowngrade) {
      await appendEvent(layout, { action: 'install', version: request.version, outcome: 'refused', reason: `downgrade: ${below}` });
      throw new ContainaiError('VERIFY', `refusing a downgrade: ${below}`, {
        hint: 'an old release may carry fixed vulnerabilities; if you mean it, rerun with --allow-downgrade (or use rollback)',
      });
    }

    const bundleName = bundleFileName(request.version);
    const work = join(layout.releases, `${STAGING_PREFIX}${request.version}-${randomBytes(6).toString('hex')}`);
    await mkdir(work, { mode: 0o700 });
    const ctx: InstallContext = { request, layout, bundleName, work, tree: join(work, 'tree'), bundlePath: join(work, bundleName) };
    let steps: StepRecord[];
    try {
      steps = await runSteps(installSteps(), ctx);
    } catch (err) {
      await rm(work, { recursive: true, force: true }).catch(() => undefined);
      await appendEvent(layout, { action: 'install', version: request.version, outcome: outcomeOf(err), reason: err instanceof Error ? err.message : String(err) });
      throw err;
    }
    await raiseFloor(layout, floor, request.version, new Date().toISOString());
    await appendEvent(layout, { action: 'install', version: request.version, outcome: 'ok', dir: `releases/${ctx.dirName}`, replaced: ctx.oldCurrent });
    await rm(work, { recursive: true, force: true });
    await removeOtherCopies(layout, request.version);
    const previous = await readReleaseLink(layout, PREVIOUS_LINK);
    return {
      outcome: 'installed',
      version: request.version,
      dirName: ctx.dirName!,
      previous: previous.kind === 'release' ? previous.dirName : undefined,
      signer: ctx.signer,
      steps,
    };
  } finally {
    lock.release();
  }
}
