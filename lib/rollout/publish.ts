/**
 * `containai-build rollout`: a signed statement attached to a channel.
 *
 *   prepare  the release's manifest digest from its version tag (it must be a
 *            containai release), and the channel's previous statement from the
 *            channel tag and <channel>.rollout: the new sequence is the higher
 *            one's + 1, never lower; then the statement
 *   sign     with a key: a DSSE envelope in a Sigstore bundle (lib/trust/sign.ts);
 *            keyless, in two steps: `--predicate-out` writes the predicate for the
 *            workflow's actions/attest (subject = the release digest, predicate
 *            type = the rollout type), and `--attestation` takes the bundle it
 *            made, checked to be the statement this command would make
 *   attach   the bundle pushed as the one layer of a rollout manifest (subject =
 *            the release), <channel>.rollout moved to it, and the channel tag
 *            moved last: the sequence on the channel is checked again first, so
 *            two operators racing cannot both win with the same number
 */
import { ContainaiError } from '../errors.ts';
import { RegistryClient, type Actions } from '../oci/client.ts';
import { pushCredentials, type RegistryCredentials } from '../oci/credentials.ts';
import { formatReference, type RegistryReference } from '../oci/reference.ts';
import { EMPTY_CONFIG } from '../oci/referrers.ts';
import { fetchSmallBlob, getManifest, putManifest, uploadBlob } from '../oci/registry.ts';
import { parseReleaseManifest } from '../oci/release-artifact.ts';
import { EMPTY_CONFIG_BYTES, MEDIA_TYPE_IMAGE_MANIFEST, type Descriptor } from '../oci/types.ts';
import { printableName } from '../text.ts';
import { classifyChannelManifest, historyTag, MAX_STATEMENT_BYTES, rolloutManifest, STATEMENT_TITLE } from './artifact.ts';
import { isoSeconds, MAX_EXPIRY_SECONDS, readStatement, type RampStep, type RolloutPredicate, type RolloutStatement } from './statement.ts';

export type RolloutPlan = { ramp: RampStep[] } | { halt: true };

export interface PrepareOptions {
  to: RegistryReference;
  version: string;
  channel: string;
  plan: RolloutPlan;
  expiresSeconds: number;
  /** When the ramp starts (ms); default now. */
  start?: number;
  now?: number;
  env?: NodeJS.ProcessEnv;
  credentials?: RegistryCredentials | null;
  fetch?: typeof fetch;
}

export interface PreviousStatement {
  sequence: number;
  /** Which tag held the highest one. */
  tag: string;
  predicate: RolloutPredicate;
}

export interface PreparedRollout {
  client: RegistryClient;
  release: Descriptor;
  previous?: PreviousStatement;
  statement: RolloutStatement;
}

/** A client for the repository: 'pull' to prepare a statement for the workflow to attest, 'pull,push' to attach one. */
async function clientFor(options: Pick<PrepareOptions, 'to' | 'env' | 'credentials' | 'fetch'>, actions: Actions = 'pull,push'): Promise<RegistryClient> {
  if (options.to.tag || options.to.digest) {
    throw new ContainaiError('USAGE', `--to names a tag or digest (${formatReference(options.to)}); rollout moves the channel tag itself`, { hint: 'give --to oci://REGISTRY/REPO' });
  }
  const credentials = options.credentials === null ? undefined : (options.credentials ?? (await pushCredentials(options.to.registry, options.env ?? process.env)));
  return new RegistryClient(options.to, { credentials, actions, fetch: options.fetch });
}

/** The release manifest the version tag names, checked to be a containai release. */
export async function releaseDescriptor(client: RegistryClient, version: string): Promise<Descriptor> {
  let fetched;
  try {
    fetched = await getManifest(client, version);
  } catch (err) {
    if (err instanceof ContainaiError && err.code === 'NOT_FOUND') {
      throw new ContainaiError('NOT_FOUND', `${version} is not published at ${client.where}: a rollout names a published release`, { hint: `publish it first: containai-build publish --version ${version} --to oci://${client.where}` });
    }
    throw err;
  }
  if (fetched.mediaType && fetched.mediaType !== MEDIA_TYPE_IMAGE_MANIFEST) {
    throw new ContainaiError('INPUT', `${client.where}:${version} is a "${printableName(fetched.mediaType)}", not a containai release`, { hint: 'publish the release with containai-build publish' });
  }
  const artifact = parseReleaseManifest(fetched.bytes, fetched.digest, `${client.where}:${version}`);
  if (artifact.annotatedVersion !== undefined && artifact.annotatedVersion !== version) {
    throw new ContainaiError('INPUT', `${client.where}:${version} is annotated as release ${printableName(artifact.annotatedVersion)}`, { hint: 'the version tag was moved to another release; publish it again' });
  }
  return { mediaType: MEDIA_TYPE_IMAGE_MANIFEST, digest: fetched.digest, size: fetched.bytes.byteLength };
}

/**
 * The highest statement on the channel tag and on <channel>.rollout. Read, not verified: the builder
 * only learns a number from it, and a host verifies whatever it is finally sent.
 */
export async function previousStatement(client: RegistryClient, channel: string): Promise<PreviousStatement | undefined> {
  let best: PreviousStatement | undefined;
  for (const tag of [channel, historyTag(channel)]) {
    let fetched;
    try {
      fetched = await getManifest(client, tag);
    } catch (err) {
      if (err instanceof ContainaiError && err.code === 'NOT_FOUND') continue;
      throw err;
    }
    const target = classifyChannelManifest(fetched.bytes, fetched.digest, `${client.where}:${tag}`);
    if (target.kind !== 'rollout') continue;
    const bytes = await fetchSmallBlob(client, target.layer, MAX_STATEMENT_BYTES, STATEMENT_TITLE);
    const { predicate } = readStatement(new TextDecoder().decode(bytes), `${client.where}:${tag}`);
    if (!best || predicate.sequence > best.sequence) best = { sequence: predicate.sequence, tag, predicate };
  }
  return best;
}

export function assertExpiry(seconds: number): number {
  if (!Number.isFinite(seconds) || seconds < 60 || seconds > MAX_EXPIRY_SECONDS) {
    throw new ContainaiError('USAGE', `--expires must be from 1min to 366d`, { hint: 'e.g. --expires 7d: hosts report the channel stale once it passes without a new statement' });
  }
  return seconds;
}

export async function prepareRollout(options: PrepareOptions & { actions?: Actions }): Promise<PreparedRollout> {
  const now = options.now ?? Date.now();
  const client = await clientFor(options, options.actions);
  const release = await releaseDescriptor(client, options.version);
  const previous = await previousStatement(client, options.channel);
  const sequence = (previous?.sequence ?? 0) + 1;
  // A halt keeps the ramp it stops (for the record) when it halts the same release.
  const same = previous?.predicate.version === options.version ? previous.predicate : undefined;
  const halt = 'halt' in options.plan;
  const ramp = 'ramp' in options.plan ? options.plan.ramp : (same?.ramp ?? []);
  const start = options.start !== undefined ? isoSeconds(options.start) : halt && same ? same.start : isoSeconds(now);
  const predicate: RolloutPredicate = {
    version: options.version,
    channel: options.channel,
    sequence,
    start,
    ramp,
    halt,
    // Counted from --start when given, so a statement made "as of" a past start keeps its whole timeline.
    expires: isoSeconds((options.start ?? now) + assertExpiry(options.expiresSeconds) * 1000),
    issuedAt: isoSeconds(now),
  };
  return { client, release, previous, statement: { subject: { name: `${options.to.registry}/${options.to.repository}`, digest: release.digest }, predicate } };
}

export interface AttachResult {
  /** The rollout manifest's reference, by digest. */
  reference: string;
  digest: string;
  tags: string[];
  sequence: number;
}

/**
 * Checks that a statement made elsewhere (actions/attest, from the predicate --predicate-out wrote)
 * is for this release, version and channel, with a sequence above the channel's.
 */
export async function statementOfAttestation(bundleText: string, options: { to: RegistryReference; version: string; channel: string; env?: NodeJS.ProcessEnv; credentials?: RegistryCredentials | null; fetch?: typeof fetch }): Promise<{ client: RegistryClient; release: Descriptor; statement: RolloutStatement }> {
  const client = await clientFor(options);
  const release = await releaseDescriptor(client, options.version);
  const statement = readStatement(bundleText, '--attestation');
  const p = statement.predicate;
  const problems = [
    statement.subject.digest !== release.digest && `its subject is ${statement.subject.digest}, not ${options.version}'s manifest ${release.digest}`,
    p.version !== options.version && `it is for version ${p.version}, not ${options.version}`,
    p.channel !== options.channel && `it is for channel ${p.channel}, not ${options.channel}`,
  ].filter((x): x is string => typeof x === 'string');
  if (problems.length > 0) {
    throw new ContainaiError('INPUT', `the attestation is not a rollout of ${options.version} on ${options.channel}: ${problems.join('; ')}; nothing was pushed`, {
      hint: 'attest the predicate that `containai-build rollout --predicate-out` wrote for this version and channel, with its subject digest',
    });
  }
  return { client, release, statement };
}

/** Pushes the statement's bundle as a rollout manifest, moves <channel>.rollout, then the channel. */
export async function attachStatement(client: RegistryClient, statement: RolloutStatement, release: Descriptor, bundleBytes: Uint8Array, log: (line: string) => void = () => undefined): Promise<AttachResult> {
  const p = statement.predicate;
  const current = await previousStatement(client, p.channel);
  if (current && current.sequence >= p.sequence) {
    throw new ContainaiError('STATE', `${p.channel} already carries sequence ${current.sequence} (on ${current.tag}); this statement's ${p.sequence} would be refused by every host that saw it: nothing was pushed`, {
      hint: 'someone published a statement meanwhile: run rollout again (it takes the next sequence)',
    });
  }
  const manifest = rolloutManifest(statement, release, bundleBytes);
  await uploadBlob(client, EMPTY_CONFIG, () => EMPTY_CONFIG_BYTES);
  await uploadBlob(client, manifest.layer, () => bundleBytes);
  await putManifest(client, manifest.descriptor.digest, manifest.bytes, MEDIA_TYPE_IMAGE_MANIFEST);
  const history = historyTag(p.channel);
  await putManifest(client, history, manifest.bytes, MEDIA_TYPE_IMAGE_MANIFEST);
  // The channel last: a host following it finds a complete statement.
  await putManifest(client, p.channel, manifest.bytes, MEDIA_TYPE_IMAGE_MANIFEST);
  log(`tagged ${history} and ${p.channel}: ${manifest.descriptor.digest}`);
  return { reference: `oci://${client.where}@${manifest.descriptor.digest}`, digest: manifest.descriptor.digest, tags: [history, p.channel], sequence: p.sequence };
}
