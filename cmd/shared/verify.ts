import { defineCommand } from 'citty';
import { log, printJson, printResult } from '../../lib/cli/output.ts';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { unpackBundle } from '../../lib/bundle/read.ts';
import { usageError } from '../../lib/errors.ts';
import type { TrustPolicy } from '../../lib/trust/policy.ts';
import { verifyArtifact, verifyBundleMembers, type Verdict } from '../../lib/trust/verify.ts';
import { jsonArgs, policyArgs, readPolicyFlags, trustDirArgs } from '../_shared.ts';

export default defineCommand({
  meta: {
    name: 'verify',
    description:
      'Verify a bundle (payload.sha256, then its attestation or key signature) or any artifact against a Sigstore bundle, offline. Trust comes only from the compiled-in public-good root and what you pin.',
  },
  args: {
    bundle: { type: 'string', description: 'a release bundle, containai-<version>.tar.gz', valueHint: 'FILE' },
    artifact: { type: 'string', description: 'any file to verify (with --attestation)', valueHint: 'FILE' },
    attestation: { type: 'string', description: 'Sigstore bundle(s) for --artifact: .jsonl (one per line) or one JSON document', valueHint: 'FILE' },
    ...policyArgs,
    ...trustDirArgs,
    ...jsonArgs,
  },
  async run({ args, rawArgs }) {
    const { policy } = readPolicyFlags(args, rawArgs);
    let verdict: Verdict;
    let subject: string;
    if (args.bundle && !args.artifact && !args.attestation) {
      subject = args.bundle;
      verdict = await verifyBundleFile(args.bundle, policy);
    } else if (args.artifact && args.attestation && !args.bundle) {
      subject = args.artifact;
      verdict = await verifyArtifact({ artifactPath: args.artifact, attestationPath: args.attestation }, policy);
    } else {
      throw usageError('give either --bundle FILE, or --artifact FILE with --attestation FILE');
    }
    report(subject, verdict, args.json === true);
    if (args.json) printJson({ ok: true, verified: subject, ...verdict });
  },
});

/** Unpacks into a private temp folder (removed after), then payload.sha256 and the signature. */
async function verifyBundleFile(path: string, policy: TrustPolicy): Promise<Verdict> {
  const work = await mkdtemp(join(tmpdir(), 'containai-verify-'));
  try {
    const bundle = await unpackBundle(path, join(work, 'bundle'));
    return await verifyBundleMembers(bundle, policy);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

function report(subject: string, v: Verdict, json: boolean): void {
  if (v.kind === 'unsigned') {
    log().warn(`${subject} is UNSIGNED: accepted only because of --allow-unsigned (development only)`);
    printResult(`${subject}: UNSIGNED (sha256:${v.artifactSha256})`, { json });
    return;
  }
  const who =
    v.kind === 'attestation'
      ? `attestation by ${v.signer?.sourceRepository ?? 'unknown repository'}`
      : `signature by pinned key ${v.signer?.keyId?.slice(0, 16)}…`;
  const lines = [`verified ${subject}: ${who}`];
  const row = (k: string, value: string | number | undefined) => value !== undefined && lines.push(`  ${k.padEnd(10)}${value}`);
  row('workflow', v.signer?.workflow);
  row('ref', v.signer?.ref);
  row('issuer', v.signer?.issuer);
  row('key', v.signer?.keyId);
  row('predicate', v.predicateType);
  row('artifact', `sha256:${v.artifactSha256}`);
  if (v.bundleIndex !== undefined) row('bundle', `line ${v.bundleIndex + 1}`);
  printResult(lines.join('\n'), { json });
}
