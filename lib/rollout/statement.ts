/**
 * The rollout statement (SPEC "Releases through a registry"): an in-toto
 * statement of its own predicate type whose one subject is the release
 * artifact's manifest digest, and whose predicate says how a channel rolls
 * that release out:
 *
 *   version    the release's version (its verified release.json must agree)
 *   channel    the channel it is for (a statement moved onto another channel is refused)
 *   sequence   grows by one with every statement on the channel, never lower:
 *              a host refuses one below the highest it has seen (a replay)
 *   start      when the ramp's clock starts
 *   ramp       steps of (seconds after start, percent of hosts); the share at
 *              time t is the percent of the last step reached, 0 before the first
 *   halt       no new installs while set
 *   expires    (counted from --start when one is given, else from issuedAt)
 *              after this a host installs nothing and reports the channel
 *              stale: a mirror that keeps serving an old statement (TUF's
 *              freeze attack) is noticed, not obeyed forever
 *   issuedAt   when it was made
 *
 * The ramp is a staircase, not a line: "10% at 6h" means exactly 10% of
 * hosts from the sixth hour, which an operator can check against the fleet's
 * metrics, and which a host can say ("my turn comes at 10%, at 06:00").
 *
 * Nothing here verifies: lib/rollout/verify.ts does, with the one verifier.
 * `readStatement` only reads what a bundle says (the build side uses it for
 * the previous sequence; a host only after verifying).
 */
import { z } from 'zod';
import { isSafeVersion } from '../bundle/layout.ts';
import { ContainaiError } from '../errors.ts';
import { TAG } from '../oci/reference.ts';
import { parseBundles } from '../trust/attestation.ts';
import { IN_TOTO_PAYLOAD_TYPE } from '../trust/attestation.ts';
import { parseTimeSpan } from '../systemd/units.ts';
import { printableName } from '../text.ts';

export const ROLLOUT_PREDICATE_TYPE = 'https://containai.dev/rollout/v1';
export const IN_TOTO_STATEMENT_TYPE = 'https://in-toto.io/Statement/v1';

/** No statement lives longer than this: a host must hear from its channel at least once a year. */
export const MAX_EXPIRY_SECONDS = 366 * 86_400;
export const DEFAULT_EXPIRES = '7d';

const ISO = z.iso.datetime({ offset: true, error: 'must be an RFC 3339 time, e.g. 2025-01-31T12:00:00Z' });

export const RampStepSchema = z.object({
  /** Seconds after start. */
  after: z.number().int().min(0).max(MAX_EXPIRY_SECONDS),
  /** Percent of hosts, above 0, at most 100. */
  percent: z.number().gt(0).max(100),
});
export type RampStep = z.infer<typeof RampStepSchema>;

export const RolloutPredicateSchema = z
  .object({
    version: z.string().refine(isSafeVersion, 'must be a safe version name such as v1.2.3'),
    channel: z.string().regex(TAG, 'must be a tag name'),
    sequence: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
    start: ISO,
    ramp: z.array(RampStepSchema).max(100),
    halt: z.boolean(),
    expires: ISO,
    issuedAt: ISO,
  })
  .superRefine((p, ctx) => {
    p.ramp.forEach((step, i) => {
      const before = p.ramp[i - 1];
      if (before && step.after <= before.after) ctx.addIssue({ code: 'custom', path: ['ramp', i, 'after'], message: 'steps must come in order of time' });
      if (before && step.percent < before.percent) ctx.addIssue({ code: 'custom', path: ['ramp', i, 'percent'], message: 'a ramp never goes down (halt instead)' });
    });
    if (!p.halt && p.ramp.length === 0) ctx.addIssue({ code: 'custom', path: ['ramp'], message: 'a statement that is not a halt needs a ramp' });
    if (Date.parse(p.expires) <= Date.parse(p.start)) ctx.addIssue({ code: 'custom', path: ['expires'], message: 'must be after start' });
  });
export type RolloutPredicate = z.infer<typeof RolloutPredicateSchema>;

export interface RolloutSubject {
  /** What the statement names: the repository, registry/repo (informative; the digest decides). */
  name: string;
  /** The release manifest's digest, sha256:<hex>. */
  digest: string;
}

export interface RolloutStatement {
  subject: RolloutSubject;
  predicate: RolloutPredicate;
}

/** Seconds-precision RFC 3339, as statements carry time. */
export function isoSeconds(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}

/** The statement's bytes: the DSSE payload that is signed or attested. */
export function statementBytes(statement: RolloutStatement): Uint8Array {
  return new TextEncoder().encode(
    JSON.stringify({
      _type: IN_TOTO_STATEMENT_TYPE,
      subject: [{ name: statement.subject.name, digest: { sha256: statement.subject.digest.slice('sha256:'.length) } }],
      predicateType: ROLLOUT_PREDICATE_TYPE,
      predicate: statement.predicate,
    }),
  );
}

/** The predicate alone, as actions/attest's predicate-path takes it (the workflow makes the statement). */
export function predicateBytes(predicate: RolloutPredicate): Uint8Array {
  return new TextEncoder().encode(`${JSON.stringify(predicate, null, 2)}\n`);
}

function problems(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((i) => `${i.path.length ? i.path.join('.') : '(top)'}: ${i.message}`)
    .join('; ');
}

export function parsePredicate(json: unknown, where: string): RolloutPredicate {
  const parsed = RolloutPredicateSchema.safeParse(json);
  if (!parsed.success) {
    throw new ContainaiError('VERIFY', `${where}: the rollout predicate is not valid: ${problems(parsed.error)}`, {
      hint: 'make the statement again with containai-build rollout',
    });
  }
  return parsed.data;
}

const StatementSchema = z.object({
  _type: z.string(),
  subject: z.array(z.object({ name: z.string().optional(), digest: z.record(z.string(), z.string()) })).length(1, 'a rollout statement names exactly one release'),
  predicateType: z.string(),
  predicate: z.unknown(),
});

/** The statement inside a DSSE payload (already verified, or read only to learn a sequence). */
export function statementFromPayload(payloadType: string, payload: Uint8Array, where: string): RolloutStatement {
  const refuse = (why: string) => new ContainaiError('VERIFY', `${where}: ${why}`, { hint: 'the channel holds something containai-build rollout did not make; publish a new statement' });
  if (payloadType !== IN_TOTO_PAYLOAD_TYPE) throw refuse(`the DSSE payload type is "${printableName(payloadType)}", not ${IN_TOTO_PAYLOAD_TYPE}`);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(payload));
  } catch {
    throw refuse('the statement is not JSON');
  }
  const parsed = StatementSchema.safeParse(json);
  if (!parsed.success) throw refuse(`the statement is not valid: ${problems(parsed.error)}`);
  if (parsed.data.predicateType !== ROLLOUT_PREDICATE_TYPE) throw refuse(`the predicate type is "${printableName(parsed.data.predicateType)}", not ${ROLLOUT_PREDICATE_TYPE}`);
  const subject = parsed.data.subject[0]!;
  const sha256 = subject.digest.sha256?.toLowerCase();
  if (!sha256 || !/^[0-9a-f]{64}$/.test(sha256)) throw refuse('the subject has no sha256 digest');
  return { subject: { name: subject.name ?? '', digest: `sha256:${sha256}` }, predicate: parsePredicate(parsed.data.predicate, where) };
}

/**
 * What a bundle's statement says, unverified. A bundle file holds one bundle (a line of JSON per
 * bundle is read too; `index` picks the one a verdict named).
 */
export function readStatement(bundleText: string, where: string, index = 0): RolloutStatement {
  const bundles = parseBundles(bundleText, where);
  const chosen = bundles.find((b) => b.index === index) ?? bundles[0];
  const content = chosen?.bundle.content;
  if (!chosen || content?.$case !== 'dsseEnvelope') {
    throw new ContainaiError('VERIFY', `${where}: not a DSSE attestation (a rollout statement is an in-toto statement in a DSSE envelope)`, {
      hint: 'sign it with containai-build rollout --key, or attest the predicate with actions/attest',
    });
  }
  return statementFromPayload(content.dsseEnvelope.payloadType, content.dsseEnvelope.payload, where);
}

// ---------------------------------------------------------------------------
// The ramp

/** "1%@0h,10%@6h,100%@24h" → steps; every problem named. */
export function parseRamp(text: string, flag = '--ramp'): RampStep[] {
  const fail = (why: string) =>
    new ContainaiError('USAGE', `${flag} "${printableName(text)}" ${why}`, { hint: `e.g. ${flag} 1%@0h,10%@6h,100%@24h (percent of hosts @ time after --start; systemd time spans)` });
  const parts = text.split(',').map((p) => p.trim());
  if (text.trim() === '' || parts.length > 100) throw fail('must list 1 to 100 steps');
  const steps = parts.map((part) => {
    const m = /^(\d{1,3}(?:\.\d{1,4})?)%@(.+)$/.exec(part);
    if (!m) throw fail(`has a step "${printableName(part)}" that is not PERCENT%@SPAN`);
    const percent = Number(m[1]);
    const seconds = parseTimeSpan(m[2] as string);
    if (!(percent > 0 && percent <= 100)) throw fail(`has ${percent}%: a share is above 0% and at most 100%`);
    if (seconds === undefined || !Number.isInteger(seconds) || seconds > MAX_EXPIRY_SECONDS) throw fail(`has "${printableName(m[2] as string)}", not a time span in whole seconds of at most a year`);
    return { after: seconds, percent };
  });
  const parsed = z.array(RampStepSchema).safeParse(steps);
  if (!parsed.success) throw fail(problems(parsed.error));
  for (let i = 1; i < steps.length; i++) {
    if (steps[i]!.after <= steps[i - 1]!.after) throw fail('must list its steps in order of time');
    if (steps[i]!.percent < steps[i - 1]!.percent) throw fail('never goes down (to stop a rollout, --halt)');
  }
  return steps;
}

export function formatRamp(ramp: readonly RampStep[]): string {
  return ramp.map((s) => `${s.percent}%@${s.after % 3600 === 0 ? `${s.after / 3600}h` : `${s.after}s`}`).join(',');
}

/** The share of hosts (0 to 1) the ramp reaches at `now` (ms): the last step reached, 0 before the first. */
export function shareAt(predicate: Pick<RolloutPredicate, 'start' | 'ramp'>, now: number): number {
  const elapsed = (now - Date.parse(predicate.start)) / 1000;
  let share = 0;
  for (const step of predicate.ramp) if (elapsed >= step.after) share = step.percent / 100;
  return share;
}

/** When (ms) the ramp first reaches a host at `bucket`, or undefined when it never does. */
export function turnAt(predicate: Pick<RolloutPredicate, 'start' | 'ramp'>, bucket: number): number | undefined {
  const step = predicate.ramp.find((s) => bucket < s.percent / 100);
  return step ? Date.parse(predicate.start) + step.after * 1000 : undefined;
}
