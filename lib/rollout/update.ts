/**
 * `containai-host update`: what the update timer runs (issue 16). No update
 * server: the registry and each host's timer are the whole system.
 *
 *   settle   a release still on trial is advanced one round (lib/rollout/gate.ts);
 *            while it stays undecided nothing new is installed
 *   poll     one HEAD on the channel tag. When it names what it named last time,
 *            nothing more is asked of the registry: the decision is made again
 *            from the statement kept in state/channel-<C>.json (the ramp moves
 *            with time, and a statement expires, without the tag moving)
 *   read     otherwise the rollout manifest and its one layer, the signed
 *            statement, verified under the host's policy (lib/rollout/verify.ts);
 *            a sequence below the highest seen is a replay and is refused; a
 *            channel that names a release directly has no statement: said, and
 *            nothing is installed
 *   decide   lib/rollout/decide.ts
 *   install  installRelease from the registry, pinned to the digest the statement
 *            names, with the gate's hooks; the release is verified as always and
 *            its release.json must name the statement's version
 *   record   the channel's state (atomically), and one event when the decision
 *            changed
 *
 * A poll with nothing new costs one request: the HEAD.
 */
import { readdir } from 'node:fs/promises';
import { ContainaiError, describeCause, isContainaiError } from '../errors.ts';
import { readReleaseLink } from '../release/activate.ts';
import { appendEvent } from '../release/events.ts';
import { downgradeReason, readFloor } from '../release/floor.ts';
import type { InstallResult } from '../release/install.ts';
import { CURRENT_LINK, installLayout, isReleaseDirName, versionOfDir, type InstallLayout } from '../release/layout.ts';
import { badReason } from '../gate/bad.ts';
import { RegistryClient, type RequestRecord } from '../oci/client.ts';
import { pullCredentials } from '../oci/credentials.ts';
import { formatReference, type RegistryReference } from '../oci/reference.ts';
import { fetchSmallBlob, getManifest, headManifest } from '../oci/registry.ts';
import type { TrustPolicy } from '../trust/policy.ts';
import { printableName } from '../text.ts';
import { classifyChannelManifest, MAX_STATEMENT_BYTES, STATEMENT_TITLE } from './artifact.ts';
import { hostBucket, readMachineId } from './bucket.ts';
import { decide, type HostFacts } from './decide.ts';
import { gateInstallHooks, settleOpenTrial, type GateRequest } from './gate.ts';
import { readChannelState, writeChannelState, type ChannelState, type DecisionKind, type DecisionRecord, type KeptStatement } from './state.ts';
import { isoSeconds, shareAt } from './statement.ts';
import { rolloutPolicy, verifyStatement } from './verify.ts';

export interface UpdateRequest {
  installRoot: string;
  /** oci://REGISTRY/REPO, no tag. */
  from: RegistryReference;
  channel: string;
  /** The policy releases verify under; statements verify under it with the rollout predicate type. */
  policy: TrustPolicy;
  rolloutSignerWorkflow?: string;
  gate: GateRequest;
  /** The operator's probe folder for the trial (default /etc/containai/health.d). */
  probeDir?: string;
  lockWaitMs: number;
  machineIdFile: string;
  env?: NodeJS.ProcessEnv;
  fetch?: typeof fetch;
  now?: () => number;
}

export interface UpdateResult {
  ok: boolean;
  channel: string;
  from: string;
  /** Whether the channel tag named something else than at the last run. */
  moved: boolean;
  /** The digest the channel tag names. */
  tagDigest?: string;
  decision: DecisionKind;
  reason: string;
  /** The statement decided on. */
  statement?: {
    version: string;
    sequence: number;
    release: string;
    start: string;
    expires: string;
    halt: boolean;
    ramp: KeptStatement['predicate']['ramp'];
    share: number;
    signer: KeptStatement['signer'];
  };
  host: { current?: string; bucket?: number; turnAt?: string };
  install?: Pick<InstallResult, 'outcome' | 'version' | 'dirName' | 'previous' | 'signer' | 'warnings'> & { gate: string };
  /** An event was logged (the decision changed). */
  logged: boolean;
  /** Registry requests this run made (HEAD, GETs; not counting the token server). */
  requests: number;
}

/** The decision ends the run with an error (exit 1) after it is recorded and reported. */
export class UpdateRefusal extends Error {
  constructor(
    readonly result: UpdateResult,
    readonly error: ContainaiError,
  ) {
    super(error.message);
  }
}

interface Run {
  request: UpdateRequest;
  layout: InstallLayout;
  now: number;
  from: string;
  before?: ChannelState;
  requests: number;
  onRequest: (record: RequestRecord) => void;
}

const REFUSALS: readonly DecisionKind[] = ['no-statement', 'refused', 'failed'];

export async function runUpdate(request: UpdateRequest): Promise<UpdateResult> {
  if (request.from.tag || request.from.digest) {
    throw new ContainaiError('USAGE', `--from names a tag or digest (${formatReference(request.from)}); the channel is the tag update follows`, { hint: 'give --from oci://REGISTRY/REPO and --channel C' });
  }
  const layout = installLayout(request.installRoot);
  const run: Run = {
    request,
    layout,
    now: request.now?.() ?? Date.now(),
    from: formatReference(request.from),
    before: await readChannelState(layout, request.channel),
    requests: 0,
    onRequest: () => void run.requests++,
  };
  const gateOptions = { gate: request.gate, operatorDir: request.probeDir, policy: request.policy, lockWaitMs: request.lockWaitMs, trustDir: request.policy.trustDir };

  let trial: Awaited<ReturnType<typeof settleOpenTrial>>;
  try {
    trial = await settleOpenTrial(layout, gateOptions);
  } catch (err) {
    return failed(run, err, 'the release on trial could not be judged');
  }
  const client = new RegistryClient(request.from, { credentials: await pullCredentials(request.from.registry, request.env), fetch: request.fetch, onRequest: run.onRequest });

  // poll
  let tagDigest: string;
  try {
    const head = await headManifest(client, request.channel);
    if (!head) {
      return await finish(run, { decision: 'no-statement', reason: `the channel tag ${request.channel} does not exist at ${run.from}`, moved: run.before?.tagDigest !== undefined }, new ContainaiError('NOT_FOUND', `${run.from}:${request.channel} does not exist: nothing to update to`, { hint: 'check --from and --channel; publish a statement with containai-build rollout' }));
    }
    tagDigest = head.digest;
  } catch (err) {
    return failed(run, err, 'the channel could not be read');
  }
  const moved = tagDigest !== run.before?.tagDigest;

  // read
  let kept: KeptStatement;
  if (!moved && run.before?.statement) {
    kept = run.before.statement;
  } else {
    const read = await readStatement(run, client, tagDigest, moved);
    if ('refusal' in read) return read.refusal;
    kept = read.kept;
  }

  // decide
  const p = kept.predicate;
  let facts: HostFacts;
  try {
    facts = await hostFacts(layout, request.machineIdFile, p.version, trial.onTrial);
  } catch (err) {
    return failed(run, err, 'this host could not decide', { tagDigest, kept, moved });
  }
  const decision = decide(p, run.now, facts);
  const base = { moved, tagDigest, kept, facts, turnAt: decision.turnAt };
  if (decision.kind !== 'install') return finish(run, { ...base, decision: decision.kind, reason: decision.reason });

  // install
  if (!moved) {
    // Decided from the kept statement (the ramp moved on with time): it is verified again before it is acted on.
    try {
      await verifyStatement(kept.bundle, kept.subject, rolloutPolicy(request.policy, request.rolloutSignerWorkflow), { channel: request.channel, where: `the statement kept in state/channel-${request.channel}.json` });
    } catch (err) {
      return failed(run, err, 'the kept statement no longer verifies', base, 'refused');
    }
  }
  // Loaded only to install: a poll that decides anything else never needs the install pipeline.
  const [{ installRelease }, { downloadsDir, registryReleaseSource }] = await Promise.all([import('../release/install.ts'), import('../oci/release-source.ts')]);
  const source = registryReleaseSource({ ...request.from, tag: undefined, digest: kept.subject.digest }, {
    downloadDir: downloadsDir(request.installRoot),
    env: request.env,
    fetch: request.fetch,
    onRequest: run.onRequest,
  });
  let installed: InstallResult;
  try {
    installed = await installRelease({
      installRoot: request.installRoot,
      version: p.version,
      source,
      policy: request.policy,
      force: false,
      allowDowngrade: false,
      lockWaitMs: request.lockWaitMs,
      hooks: gateInstallHooks(gateOptions),
    });
  } catch (err) {
    return failed(run, err, `installing ${p.version} failed`, base);
  }
  const gate = request.gate === 'off' ? 'none (--no-gate)' : `on trial for ${Math.round(request.gate.spanMs / 1000)}s`;
  const install = { outcome: installed.outcome, version: installed.version, dirName: installed.dirName, previous: installed.previous, signer: installed.signer, warnings: installed.warnings, gate };
  if (installed.outcome === 'already-current') return finish(run, { ...base, decision: 'current', reason: `${p.version} is current`, install });
  return finish(run, { ...base, decision: 'install', reason: `installed ${p.version}: ${decision.reason}`, install });
}

/** The channel's manifest and statement, verified; or the refusal, recorded. */
async function readStatement(run: Run, client: RegistryClient, tagDigest: string, moved: boolean): Promise<{ kept: KeptStatement } | { refusal: UpdateResult }> {
  const { request } = run;
  const where = `${run.from}:${request.channel}`;
  try {
    const fetched = await getManifest(client, tagDigest);
    const target = classifyChannelManifest(fetched.bytes, fetched.digest, where);
    if (target.kind === 'release') {
      const refusal = await finish(run, { decision: 'no-statement', reason: `${where} names a release (${tagDigest}) directly, with no rollout statement`, moved, tagDigest }, new ContainaiError('STATE', `${where} names a release directly, with no rollout statement: nothing was installed`, {
        hint: `publish a statement for it (containai-build rollout --channel ${request.channel} …), or install it by hand (containai-host install --from ${where})`,
      }));
      return { refusal };
    }
    if (target.kind === 'other') {
      const what = target.artifactType ? `a "${printableName(target.artifactType)}" artifact` : 'an image';
      throw new ContainaiError('VERIFY', `${where} names ${what}, not a rollout statement`, { hint: 'the channel tag was moved by something else than containai-build rollout; publish a new statement' });
    }
    const bytes = await fetchSmallBlob(client, target.layer, MAX_STATEMENT_BYTES, STATEMENT_TITLE);
    const bundle = new TextDecoder().decode(bytes);
    const verified = await verifyStatement(bundle, target.subject, rolloutPolicy(request.policy, request.rolloutSignerWorkflow), { channel: request.channel, where });
    const p = verified.statement.predicate;
    const highest = run.before?.highestSequence ?? 0;
    const sameAsKept = run.before?.statement?.digest === target.digest;
    if (p.sequence < highest || (p.sequence === highest && !sameAsKept)) {
      throw new ContainaiError('VERIFY', `the statement on ${request.channel} has sequence ${p.sequence}, ${p.sequence < highest ? 'below' : 'the same as'} ${highest}, the highest this host has seen: a replayed or rolled-back statement is refused`, {
        hint: 'a mirror or the registry serves an old statement; publish a new one (containai-build rollout makes the next sequence), and check the mirror',
      });
    }
    return { kept: { digest: target.digest, subject: target.subject, subjectName: verified.statement.subject.name, predicate: p, bundle, signer: verified.signer } };
  } catch (err) {
    if (err instanceof UpdateRefusal) throw err;
    // A statement that does not verify (or a replay) is refused; a registry that does not answer is a failure.
    const refused = isContainaiError(err) && (err.code === 'VERIFY' || err.code === 'INPUT');
    return { refusal: await failed(run, err, 'the statement could not be read', { moved, tagDigest }, refused ? 'refused' : 'failed') };
  }
}

async function hostFacts(layout: InstallLayout, machineIdFile: string, version: string, onTrial: string | undefined): Promise<HostFacts> {
  const [current, machineId, bad, floor] = await Promise.all([readReleaseLink(layout, CURRENT_LINK), readMachineId(machineIdFile), badReason(layout, version), readFloor(layout)]);
  const present = await readdir(layout.releases).then((names) => names.filter(isReleaseDirName).map(versionOfDir), () => [] as string[]);
  const currentVersion = current.kind === 'release' ? versionOfDir(current.dirName) : undefined;
  return { current: currentVersion, bucket: hostBucket(machineId, version), bad, belowFloor: downgradeReason(floor, version, present), onTrial };
}

interface Outcome {
  decision: DecisionKind;
  reason: string;
  moved: boolean;
  tagDigest?: string;
  kept?: KeptStatement;
  facts?: HostFacts;
  turnAt?: number;
  install?: UpdateResult['install'];
}

/** A failure as a decision: recorded, then raised with the result attached. */
async function failed(run: Run, err: unknown, what: string, base: Partial<Outcome> = {}, kind: 'failed' | 'refused' = 'failed'): Promise<never> {
  const error = isContainaiError(err) ? err : new ContainaiError('INTERNAL', `${what}: ${describeCause(err)}`, { cause: err });
  return finish(run, { moved: true, ...base, decision: kind, reason: error.message }, error) as Promise<never>;
}

function sameDecision(a: DecisionRecord | undefined, b: DecisionRecord): boolean {
  return a !== undefined && a.kind === b.kind && a.version === b.version && a.sequence === b.sequence && (a.kind !== 'failed' || a.reason === b.reason);
}

/** Records the channel's state and the event, and makes the result; a refusal is raised after it is recorded. */
async function finish(run: Run, outcome: Outcome, error?: ContainaiError): Promise<UpdateResult> {
  const { request, layout, before } = run;
  const at = isoSeconds(run.now);
  const p = outcome.kept?.predicate;
  const decision: DecisionRecord = { kind: outcome.decision, reason: outcome.reason, at, version: p?.version, sequence: p?.sequence };
  // A failed install keeps its statement (the next run tries again from it); a refused one is not kept.
  const verified = outcome.kept !== undefined && outcome.decision !== 'refused' && outcome.decision !== 'no-statement';
  const state: ChannelState = {
    format: 1,
    channel: request.channel,
    from: run.from,
    // Only a verified statement moves the tag the next run compares with: anything refused is read again.
    tagDigest: verified ? outcome.tagDigest : before?.tagDigest,
    statement: verified ? outcome.kept : before?.statement,
    highestSequence: Math.max(before?.highestSequence ?? 0, outcome.kept?.predicate.sequence ?? 0),
    lastPoll: at,
    lastSuccess: verified ? at : before?.lastSuccess,
    decision,
  };
  const logged = !sameDecision(before?.decision, decision) || outcome.decision === 'install';
  const result: UpdateResult = {
    ok: !error,
    channel: request.channel,
    from: run.from,
    moved: outcome.moved,
    tagDigest: outcome.tagDigest,
    decision: outcome.decision,
    reason: outcome.reason,
    statement: p && outcome.kept
      ? { version: p.version, sequence: p.sequence, release: outcome.kept.subject.digest, start: p.start, expires: p.expires, halt: p.halt, ramp: p.ramp, share: shareAt(p, run.now), signer: outcome.kept.signer }
      : undefined,
    host: { current: outcome.facts?.current, bucket: outcome.facts?.bucket, turnAt: outcome.turnAt === undefined ? undefined : isoSeconds(outcome.turnAt) },
    install: outcome.install,
    logged,
    requests: run.requests,
  };
  try {
    await writeChannelState(layout, state);
  } catch (err) {
    // The state could not be kept (a read-only root, a full disk): the run's outcome is still reported.
    if (!error) error = new ContainaiError('STATE', `cannot write state/channel-${request.channel}.json: ${describeCause(err)}`, { hint: 'check the install root (containai-host status) and its file system', cause: err });
  }
  if (logged) {
    const eventOutcome = outcome.decision === 'install' ? 'ok' : outcome.decision === 'failed' ? 'failed' : REFUSALS.includes(outcome.decision) ? 'refused' : 'unchanged';
    await appendEvent(layout, { action: 'update', channel: request.channel, decision: outcome.decision, version: p?.version, sequence: p?.sequence, outcome: eventOutcome, reason: outcome.reason });
  }
  if (error) throw new UpdateRefusal({ ...result, ok: false }, error);
  return result;
}
