import { defineCommand } from 'citty';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { assertSafeVersion } from '../../lib/bundle/layout.ts';
import { log, printJson, printResult } from '../../lib/cli/output.ts';
import { ContainaiError, describeCause, usageError } from '../../lib/errors.ts';
import { writeFileAtomic } from '../../lib/fs/atomic.ts';
import { assertTag, parseRegistryReference } from '../../lib/oci/reference.ts';
import { attachStatement, prepareRollout, statementOfAttestation, type RolloutPlan } from '../../lib/rollout/publish.ts';
import { DEFAULT_EXPIRES, formatRamp, parseRamp, predicateBytes, ROLLOUT_PREDICATE_TYPE, statementBytes, type RolloutStatement } from '../../lib/rollout/statement.ts';
import { parseTimeSpan } from '../../lib/systemd/units.ts';
import { loadSigningKey } from '../../lib/trust/keys.ts';
import { signDsse } from '../../lib/trust/sign.ts';
import { jsonArgs } from '../_shared.ts';

export default defineCommand({
  meta: {
    name: 'rollout',
    description:
      'Attach a signed rollout statement to a channel: the release (by its manifest digest), a ramp of host shares over time, or a halt, an expiry and a sequence one above the channel\'s. With --key it is signed here; keyless, --predicate-out writes the predicate for actions/attest and --attestation attaches what it made. Credentials as publish takes them.',
  },
  args: {
    version: { type: 'string', description: 'the published release to roll out (its version tag)', required: true, valueHint: 'V' },
    channel: { type: 'string', description: 'the channel tag hosts follow, e.g. stable', required: true, valueHint: 'C' },
    to: { type: 'string', description: 'the release repository, oci://REGISTRY/REPO', required: true, valueHint: 'oci://REGISTRY/REPO' },
    ramp: { type: 'string', description: 'shares of hosts over time since --start, e.g. 1%@0h,10%@6h,100%@24h (a staircase)', valueHint: 'P%@SPAN,…' },
    halt: { type: 'boolean', description: 'stop the rollout: hosts install nothing new from this channel' },
    expires: { type: 'string', description: 'how long the statement holds, from --start when given, else from now; after it hosts install nothing and report the channel stale', default: DEFAULT_EXPIRES, valueHint: 'SPAN' },
    start: { type: 'string', description: 'when the ramp starts, RFC 3339 (default now; a time in the past moves the ramp on)', valueHint: 'TIME' },
    key: { type: 'string', description: 'sign with this private key: a PEM file (PKCS#8, SEC1 or cosign encrypted, password in COSIGN_PASSWORD) or env://VAR', valueHint: 'FILE|env://VAR' },
    'predicate-out': { type: 'string', description: 'keyless, step 1: write the predicate for actions/attest here (and print its subject); nothing is pushed', valueHint: 'FILE' },
    attestation: { type: 'string', description: "keyless, step 2: the Sigstore bundle actions/attest made (its bundle-path); attached and the channel moved", valueHint: 'FILE' },
    ...jsonArgs,
  },
  async run({ args, rawArgs }) {
    const version = assertSafeVersion(args.version);
    const channel = assertTag(args.channel, '--channel');
    const to = parseRegistryReference(args.to, '--to');
    const json = args.json === true;
    const modes = [args.key && '--key', args['predicate-out'] && '--predicate-out', args.attestation && '--attestation'].filter(Boolean);
    if (modes.length !== 1) throw usageError(modes.length ? `give one of --key, --predicate-out and --attestation, not ${modes.join(' and ')}` : 'give --key FILE|env://VAR to sign here, or --predicate-out FILE then --attestation FILE (keyless)');

    if (args.attestation) {
      const given = ['--ramp', '--halt', '--start', '--expires'].filter((f) => rawArgs.some((a) => a === f || a.startsWith(`${f}=`)));
      if (given.length) throw usageError(`--attestation attaches a statement as it was attested: ${given.join(', ')} cannot change it`, 'give them to the --predicate-out step');
      const text = await readFile(resolve(args.attestation), 'utf8').catch((err) => {
        throw new ContainaiError('NOT_FOUND', `cannot read --attestation ${args.attestation}: ${describeCause(err)}`, { hint: "give the bundle-path output of the workflow's actions/attest step" });
      });
      const { client, release, statement } = await statementOfAttestation(text, { to, version, channel });
      const attached = await attachStatement(client, statement, release, new TextEncoder().encode(text), (line) => log().info(line));
      return done(statement, attached, json);
    }

    const plan = planOf(args);
    const expiresSeconds = parseTimeSpan(args.expires);
    if (expiresSeconds === undefined) throw usageError(`--expires "${args.expires}" is not a time span`, 'e.g. --expires 7d');
    const start = args.start === undefined ? undefined : startTime(args.start);

    if (args['predicate-out']) {
      const prepared = await prepareRollout({ to, version, channel, plan, expiresSeconds, start, actions: 'pull' });
      const out = resolve(args['predicate-out']);
      await writeFileAtomic(out, predicateBytes(prepared.statement.predicate));
      const subject = prepared.statement.subject;
      printResult(`wrote the predicate of ${describe(prepared.statement)} to ${out}; attest it with subject-name ${subject.name}, subject-digest ${subject.digest}, predicate-type ${ROLLOUT_PREDICATE_TYPE}, then run rollout --attestation`, { json });
      if (json) printJson({ ok: true, step: 'predicate', predicatePath: out, predicateType: ROLLOUT_PREDICATE_TYPE, subject, predicate: prepared.statement.predicate });
      return;
    }

    const key = await loadSigningKey(args.key as string);
    const prepared = await prepareRollout({ to, version, channel, plan, expiresSeconds, start });
    if (Date.parse(prepared.statement.predicate.expires) <= Date.now()) log().warn(`this statement expired at ${prepared.statement.predicate.expires} (--start plus --expires): hosts will install nothing and report ${channel} stale`);
    const bundle = new TextEncoder().encode(`${JSON.stringify(signDsse(statementBytes(prepared.statement), key))}\n`);
    log().info(`signed sequence ${prepared.statement.predicate.sequence} with ${key.algorithm} key ${key.keyId}`);
    const attached = await attachStatement(prepared.client, prepared.statement, prepared.release, bundle, (line) => log().info(line));
    done(prepared.statement, attached, json);
  },
});

function planOf(args: { ramp?: string; halt?: boolean }): RolloutPlan {
  if (args.halt && args.ramp !== undefined) throw usageError('give --ramp or --halt, not both');
  if (args.halt) return { halt: true };
  if (args.ramp === undefined) throw usageError('give --ramp (e.g. 1%@0h,10%@6h,100%@24h) or --halt');
  return { ramp: parseRamp(args.ramp) };
}

function startTime(text: string): number {
  const ms = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(text) ? Date.parse(text) : Number.NaN;
  if (!Number.isFinite(ms)) throw usageError(`--start "${text}" is not an RFC 3339 time with a zone`, 'e.g. --start 2025-01-31T12:00:00Z');
  return ms;
}

function describe(statement: RolloutStatement): string {
  const p = statement.predicate;
  return `${p.version} on ${p.channel} (sequence ${p.sequence}, ${p.halt ? 'halt' : `ramp ${formatRamp(p.ramp)} from ${p.start}`}, expires ${p.expires})`;
}

function done(statement: RolloutStatement, attached: { reference: string; digest: string; tags: string[]; sequence: number }, json: boolean): void {
  printResult(`rolled out ${describe(statement)} as ${attached.reference}`, { json });
  if (json) printJson({ ok: true, step: 'attach', ...attached, release: statement.subject.digest, predicate: statement.predicate });
}
