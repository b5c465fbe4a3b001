/**
 * Every source of trust this host has, with its end date (`trust status`, and
 * check-health's trust check): the public-good root compiled in and the one
 * `trust update` kept (which of them verification uses, lib/trust/tuf-store.ts),
 * each pinned trusted root (--trusted-root and the trust dir) and each pinned
 * key (a bare key has no end date; a certificate in its file gives one).
 *
 * Synchronous reads of small files, plain JSON and node:crypto: the budget is
 * 50 ms for the whole `trust status` run and 5 ms for the health check, so the
 * Sigstore libraries are not loaded here.
 */
import { createHash, createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describeCause } from '../errors.ts';
import { certificateEnd, earliest, endsOfKinds, endStatus, trustedRootEnds, type DatedPart, type EndStatus } from './expiry.ts';
import { trustDirFiles } from './trust-dir.ts';
import { choosePublicGood, TUF_ROOT_ENV, type PublicGoodChoice } from './tuf-store.ts';

type Env = Record<string, string | undefined>;

export interface TrustSource {
  kind: 'public-good' | 'trusted-root' | 'key';
  /** How a person names it: "public-good (compiled in)", or the file. */
  name: string;
  origin: 'compiled-in' | 'tuf-updated' | 'trust-dir' | 'flag';
  /** Whether verification uses it now (a superseded public-good root is listed, not used). */
  inUse: boolean;
  /** When it stops verifying new signatures; absent: no end date. */
  end?: string;
  endReason?: string;
  status: EndStatus | 'invalid';
  problem?: string;
  parts: DatedPart[];
  /** public-good */
  tufVersion?: number;
  builtAt?: string;
  verifiedAt?: string;
  mirror?: string;
  /** Chained from CONTAINAI_TUF_ROOT: a test root, never a production one. */
  testing?: boolean;
  /** key */
  keyId?: string;
  algorithm?: string;
}

export interface TrustStatus {
  now: string;
  publicGood: {
    used: boolean;
    inUse: PublicGoodChoice['inUse'];
    reason: string;
    /** Where `trust update` keeps its result. */
    storedPath?: string;
    storedProblem?: string;
  };
  sources: TrustSource[];
}

export interface TrustStatusOptions {
  trustDir?: string;
  trustedRootFiles?: string[];
  keyFiles?: string[];
  /** --no-public-good: listed, not used. */
  publicGood?: boolean;
  env?: Env;
  now?: number;
}

/** TUF writes 2027-04-22T19:27:31Z; every date we show is toISOString's form. A date that does not parse ends now. */
function isoDate(value: string): string {
  const ms = Date.parse(value);
  return new Date(Number.isNaN(ms) ? 0 : ms).toISOString();
}

function judged(source: Omit<TrustSource, 'status'>, now: number): TrustSource {
  return { ...source, status: source.problem ? 'invalid' : endStatus(source.end, now) };
}

function publicGoodSources(choice: PublicGoodChoice, used: boolean, now: number): TrustSource[] {
  const sources: TrustSource[] = [];
  const compiledEnds = endsOfKinds(choice.compiled.kinds, now);
  const tufPart = (version: number, expires: string): DatedPart => ({ what: `TUF root.json v${version}`, end: isoDate(expires) });
  const compiledEnd = earliest({ end: isoDate(choice.compiled.tufExpires), endReason: `its TUF root.json v${choice.compiled.tufVersion} expires` }, compiledEnds);
  sources.push(
    judged(
      {
        kind: 'public-good',
        name: 'public-good (compiled in)',
        origin: 'compiled-in',
        inUse: used && choice.inUse === 'compiled-in',
        ...compiledEnd,
        parts: [tufPart(choice.compiled.tufVersion, choice.compiled.tufExpires), ...compiledEnds.parts],
        tufVersion: choice.compiled.tufVersion,
        builtAt: choice.compiled.builtAt,
      },
      now,
    ),
  );
  const stored = choice.stored;
  if (stored) {
    let ends: ReturnType<typeof trustedRootEnds> | undefined;
    let problem: string | undefined;
    try {
      ends = trustedRootEnds(JSON.parse(stored.trustedRoot), now);
    } catch (err) {
      problem = `its trusted root cannot be read: ${describeCause(err)}`;
    }
    const testing = stored.startedFrom !== 'compiled-in';
    sources.push(
      judged(
        {
          kind: 'public-good',
          name: testing ? `public-good (TUF-updated, TESTING: chained from ${TUF_ROOT_ENV})` : 'public-good (TUF-updated)',
          origin: 'tuf-updated',
          inUse: used && choice.inUse === 'tuf-updated',
          ...earliest({ end: isoDate(stored.root.expires), endReason: `its TUF root.json v${stored.root.version} expires` }, ends ?? {}),
          parts: [tufPart(stored.root.version, stored.root.expires), ...(ends?.parts ?? [])],
          problem,
          tufVersion: stored.root.version,
          verifiedAt: stored.verifiedAt,
          mirror: stored.mirror,
          testing: testing || undefined,
        },
        now,
      ),
    );
  }
  return sources;
}

function trustedRootSource(path: string, origin: TrustSource['origin'], now: number): TrustSource {
  const base = { kind: 'trusted-root' as const, name: path, origin, inUse: true };
  try {
    const ends = trustedRootEnds(JSON.parse(readFileSync(path, 'utf8')), now);
    return judged({ ...base, end: ends.end, endReason: ends.endReason, parts: ends.parts }, now);
  } catch (err) {
    return judged({ ...base, parts: [], problem: `cannot be read as a trusted root: ${describeCause(err).slice(0, 200)}` }, now);
  }
}

function keySource(path: string, origin: TrustSource['origin'], now: number): TrustSource {
  const base = { kind: 'key' as const, name: path, origin, inUse: true };
  let pem: string;
  try {
    pem = readFileSync(path, 'utf8');
  } catch (err) {
    return judged({ ...base, parts: [], problem: `cannot be read: ${describeCause(err)}` }, now);
  }
  const block = /-----BEGIN PUBLIC KEY-----[\s\S]*?-----END PUBLIC KEY-----/.exec(pem)?.[0];
  if (!block) return judged({ ...base, parts: [], problem: 'holds no PEM public key' }, now);
  let keyId: string;
  let algorithm: string;
  try {
    const key = createPublicKey(block);
    keyId = createHash('sha256').update(key.export({ type: 'spki', format: 'der' })).digest('hex');
    algorithm = key.asymmetricKeyType === 'ec' ? `ec ${key.asymmetricKeyDetails?.namedCurve ?? ''}`.trim() : (key.asymmetricKeyType ?? '?');
  } catch (err) {
    return judged({ ...base, parts: [], problem: `is not a valid public key: ${describeCause(err)}` }, now);
  }
  // A bare key has no end: it is trusted until it is removed. A certificate beside it dates it.
  const cert = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/.exec(pem)?.[0];
  if (!cert) return judged({ ...base, parts: [], keyId, algorithm }, now);
  const { end, problem } = certificateEnd(cert);
  return judged({ ...base, end, endReason: end ? 'its certificate ends' : undefined, problem, parts: end ? [{ what: 'certificate', end }] : [], keyId, algorithm }, now);
}

/** Every trust source, judged; a trust dir another user could write is reported as a problem, not read. */
export function collectTrustStatus(options: TrustStatusOptions = {}): TrustStatus {
  const now = options.now ?? Date.now();
  const env = options.env ?? process.env;
  const used = options.publicGood !== false;
  const choice = choosePublicGood(env);
  const sources = publicGoodSources(choice, used, now);
  for (const path of options.trustedRootFiles ?? []) sources.push(trustedRootSource(path, 'flag', now));
  let dirProblem: string | undefined;
  let dirRoots: string[] = [];
  let dirKeys: string[] = [];
  try {
    dirRoots = trustDirFiles(options.trustDir, '.json');
    dirKeys = trustDirFiles(options.trustDir, '.pub');
  } catch (err) {
    dirProblem = describeCause(err);
  }
  if (dirProblem) sources.push(judged({ kind: 'trusted-root', name: options.trustDir ?? '', origin: 'trust-dir', inUse: true, parts: [], problem: dirProblem }, now));
  for (const path of dirRoots) sources.push(trustedRootSource(path, 'trust-dir', now));
  for (const path of options.keyFiles ?? []) sources.push(keySource(path, 'flag', now));
  for (const path of dirKeys) sources.push(keySource(path, 'trust-dir', now));
  return {
    now: new Date(now).toISOString(),
    publicGood: { used, inUse: choice.inUse, reason: choice.reason, storedPath: choice.storedPath, storedProblem: choice.storedProblem },
    sources,
  };
}
