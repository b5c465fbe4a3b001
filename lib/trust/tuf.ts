/**
 * `trust update`: refresh the public-good trusted root through TUF, as
 * sigstore-js does, with tuf-js's Updater (the client @sigstore/tuf wraps).
 * We drive the Updater ourselves rather than through @sigstore/tuf's
 * getTrustedRoot because we need three things it does not give: the chain
 * starting from the root.json compiled into this binary whatever the mirror
 * (it seeds only for its own URL), the result kept as one file written
 * atomically (its cache is rewritten in place, file by file: a kill could
 * leave a truncated root.json), and telling a network failure ("kept what it
 * has") from a refusal (a bad signature, a frozen or rolled-back repository).
 *
 * The Updater works in a private folder beside the kept file, seeded with the
 * newer of the compiled-in root.json and the one the last update ended with,
 * plus that update's timestamp, snapshot and targets (so a repository serving
 * older versions than this host has seen is refused). Only a complete,
 * verified result replaces the kept file; anything else changes nothing.
 */
import { mkdtemp, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BaseFetcher, Updater } from 'tuf-js';
import { DownloadHTTPError } from 'tuf-js/dist/error.js';
import { sha256Bytes } from '../digest.ts';
import { ContainaiError, describeCause } from '../errors.ts';
import { printableName } from '../text.ts';
import { VERSION } from '../version.ts';
import { parseTrustedRoot } from './roots.ts';
import {
  choosePublicGood,
  compiledInRootJson,
  storedUpdatePath,
  TRUSTED_ROOT_TARGET,
  tufSettings,
  tufSummary,
  writeStoredUpdate,
  type PublicGoodChoice,
  type StoredUpdate,
} from './tuf-store.ts';

type Env = Record<string, string | undefined>;

export interface TufUpdateOptions {
  env?: Env;
  /** Per request; the whole update makes a handful. */
  timeoutMs?: number;
}

export interface TufUpdateResult {
  /** "updated": the kept root changed; "unchanged": the repository had nothing newer (re-verified now). */
  outcome: 'updated' | 'unchanged';
  path: string;
  mirror: string;
  update: StoredUpdate;
  before: { inUse: PublicGoodChoice['inUse']; tufVersion: number; trustedRootSha256: string };
  after: PublicGoodChoice;
}

const META = ['root', 'timestamp', 'snapshot', 'targets'] as const;
type MetaName = (typeof META)[number];

function summary(text: string, name: string): { version: number; expires: string } {
  try {
    return tufSummary(text);
  } catch (err) {
    throw new ContainaiError('VERIFY', `the verified ${name}.json cannot be summarised: ${describeCause(err)}`);
  }
}

/**
 * Fetches with a per-request timeout and remembers whether the network failed (no answer, a
 * cut-off body, 5xx), so a refusal by TUF is never reported as "offline" nor the other way round.
 */
class RecordingFetcher extends BaseFetcher {
  networkProblem: string | undefined;

  constructor(
    private readonly timeoutMs: number,
    private readonly userAgent: string,
  ) {
    super();
  }

  override async fetch(url: string): Promise<ReadableStream<Uint8Array<ArrayBuffer>>> {
    const shown = printableName(url);
    let response: Response;
    try {
      response = await fetch(url, { headers: { 'user-agent': this.userAgent }, signal: AbortSignal.timeout(this.timeoutMs) });
    } catch (err) {
      this.networkProblem = `${shown}: ${(err as Error).name === 'TimeoutError' ? `no answer within ${this.timeoutMs / 1000} s` : describeCause(err)}`;
      throw err;
    }
    if (!response.ok || !response.body) {
      await response.body?.cancel().catch(() => undefined);
      if (response.status >= 500 || response.status === 429 || response.status === 408) this.networkProblem = `HTTP ${response.status} from ${shown}`;
      throw new DownloadHTTPError(`HTTP ${response.status} from ${shown}`, response.status);
    }
    const reader = response.body.getReader();
    return new ReadableStream<Uint8Array<ArrayBuffer>>({
      pull: async (controller) => {
        try {
          const { done, value } = await reader.read();
          if (done) controller.close();
          else controller.enqueue(value as Uint8Array<ArrayBuffer>);
        } catch (err) {
          this.networkProblem = `${shown}: the download broke off (${describeCause(err)})`;
          controller.error(err);
        }
      },
      cancel: (reason) => reader.cancel(reason),
    });
  }
}

/** What TUF refused, in words an operator can act on; the library's own words follow. */
function describeRefusal(err: unknown): string {
  const raw = (err instanceof Error ? err.message : String(err)).replace(/\b(?:Error|[A-Za-z]+Error): /g, '').split('\n')[0] ?? '';
  const text = raw.replace(/^Unable to load (\w+) (?:metadata )?error /, '$1: ');
  if (/expired/i.test(text)) return `expired metadata, as a frozen or stale repository serves (${text})`;
  if (/less than current version|Expected version|does not match snapshot version|Snapshot version doesn't match/i.test(text)) {
    return `an older version than this host has already seen, as a rollback serves (${text})`;
  }
  if (/was signed by \d+\/\d+ keys/.test(text)) return `metadata not signed by enough trusted keys (${text})`;
  if (/Expected (hash|length)|Max length reached/.test(text)) return `a file that does not match its signed hash or length (${text})`;
  return text || 'the metadata does not verify';
}

/** Work folders of runs that were killed: older than an hour, nobody is using them. */
async function removeStaleWork(dir: string): Promise<void> {
  const names = await readdir(dir).catch(() => [] as string[]);
  for (const name of names.filter((n) => n.startsWith('.tuf-work-'))) {
    const st = await stat(join(dir, name)).catch(() => undefined);
    if (st && Date.now() - st.mtimeMs > 3_600_000) await rm(join(dir, name), { recursive: true, force: true });
  }
}

function describeInUse(choice: PublicGoodChoice): string {
  return choice.inUse === 'tuf-updated' && choice.stored
    ? `the TUF-updated root (TUF root v${choice.stored.root.version}, verified ${choice.stored.verifiedAt})`
    : `the compiled-in root (TUF root v${choice.compiled.tufVersion}, built ${choice.compiled.builtAt})`;
}

export async function updateTrustedRoot(options: TufUpdateOptions = {}): Promise<TufUpdateResult> {
  const env = options.env ?? process.env;
  const timeoutMs = options.timeoutMs ?? 15_000;
  const settings = tufSettings(env);
  const path = storedUpdatePath(settings, env);
  if (!path) throw new ContainaiError('INPUT', 'CONTAINAI_STATE_DIR must be an absolute path', { hint: 'unset it to keep the trusted root in /var/lib/containai' });
  const before = choosePublicGood(env);
  const kept = describeInUse(before);
  const startedFrom = settings.initialRoot?.sha256 ?? 'compiled-in';
  const initialRoot = settings.initialRoot?.bytes ?? compiledInRootJson();
  // The last update's metadata counts only if it grew from the same start.
  const prior = before.stored?.startedFrom === startedFrom ? before.stored : undefined;
  const initialVersion = summary(initialRoot.toString('utf8'), 'root').version;

  const folder = join(path, '..');
  await mkdir(folder, { recursive: true, mode: 0o755 });
  await removeStaleWork(folder);
  const work = await mkdtemp(join(folder, '.tuf-work-'));
  try {
    await mkdir(join(work, 'targets'));
    const startRoot = prior && prior.root.version >= initialVersion ? prior.metadata.root : initialRoot.toString('utf8');
    await writeFile(join(work, 'root.json'), startRoot);
    if (prior) {
      for (const name of ['timestamp', 'snapshot', 'targets'] as const) await writeFile(join(work, `${name}.json`), prior.metadata[name]);
      await writeFile(join(work, 'targets', encodeURIComponent(TRUSTED_ROOT_TARGET)), prior.trustedRoot);
    }

    const fetcher = new RecordingFetcher(timeoutMs, `containai-host/${VERSION}`);
    let trustedRoot: string;
    try {
      const updater = new Updater({
        metadataDir: work,
        metadataBaseUrl: settings.mirror,
        targetDir: join(work, 'targets'),
        targetBaseUrl: `${settings.mirror}/targets`,
        fetcher,
        config: { userAgent: `containai-host/${VERSION}` },
      });
      await updater.refresh();
      const info = await updater.getTargetInfo(TRUSTED_ROOT_TARGET);
      if (!info) throw new ContainaiError('VERIFY', `the TUF repository at ${settings.mirror} has no ${TRUSTED_ROOT_TARGET} target`);
      const file = (await updater.findCachedTarget(info)) ?? (await updater.downloadTarget(info));
      trustedRoot = await readFile(file, 'utf8');
    } catch (err) {
      if (err instanceof ContainaiError) throw err;
      if (fetcher.networkProblem) {
        throw new ContainaiError('NETWORK', `could not reach the TUF repository (${fetcher.networkProblem}); kept ${kept}`, {
          hint: 'nothing changed: offline verification goes on with the root in use; run trust update again when the network is back (it is never needed to install)',
          cause: err,
          details: { kept: before.inUse },
        });
      }
      throw new ContainaiError('VERIFY', `refused the TUF repository at ${settings.mirror}: ${describeRefusal(err)}; kept ${kept}`, {
        hint: `nothing changed; if this persists, the repository or the path to it is not to be trusted (check ${settings.mirror === before.settings.mirror ? 'the network path' : 'the mirror'})`,
        cause: err,
        details: { kept: before.inUse },
      });
    }
    // The target verified against its signed hash; it must also be a trusted root we can use.
    parseTrustedRoot(trustedRoot, `${TRUSTED_ROOT_TARGET} from ${settings.mirror}`);

    const metadata = {} as Record<MetaName, string>;
    for (const name of META) metadata[name] = await readFile(join(work, `${name}.json`), 'utf8');
    const update: StoredUpdate = {
      format: 1,
      mirror: settings.mirror,
      startedFrom,
      verifiedAt: new Date().toISOString(),
      root: summary(metadata.root, 'root'),
      timestamp: summary(metadata.timestamp, 'timestamp'),
      snapshot: summary(metadata.snapshot, 'snapshot'),
      targets: summary(metadata.targets, 'targets'),
      trustedRootSha256: sha256Bytes(trustedRoot),
      metadata,
      trustedRoot,
    };
    await writeStoredUpdate(path, update);
    const beforeSha = sha256Bytes(before.trustedRootText());
    return {
      outcome: prior && prior.trustedRootSha256 === update.trustedRootSha256 && prior.root.version === update.root.version ? 'unchanged' : 'updated',
      path,
      mirror: settings.mirror,
      update,
      before: { inUse: before.inUse, tufVersion: before.stored && before.inUse === 'tuf-updated' ? before.stored.root.version : before.compiled.tufVersion, trustedRootSha256: beforeSha },
      after: choosePublicGood(env),
    };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

