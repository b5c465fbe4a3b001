import { defineCommand } from 'citty';
import { extractArchive } from '../../lib/archive/extract.ts';
import { PAYLOAD_LIMITS } from '../../lib/archive/policy.ts';
import { PAYLOAD_ARCHIVE, PAYLOAD_TOP } from '../../lib/bundle/layout.ts';
import { openBundleFile } from '../../lib/bundle/stream.ts';
import { log, printJson, printResult } from '../../lib/cli/output.ts';
import { parseSingleSum } from '../../lib/digest.ts';
import { ContainaiError, usageError } from '../../lib/errors.ts';
import { PayloadChecks } from '../../lib/manifest/payload-checks.ts';
import { signerOf, verifyManifestSignature } from '../../lib/manifest/verify.ts';
import { describeSigner, type Signer } from '../../lib/release/record.ts';
import type { TrustPolicy } from '../../lib/trust/policy.ts';
import { verifyArtifact } from '../../lib/trust/verify.ts';
import { jsonArgs, policyArgs, readPolicyFlags, trustDirArgs } from '../_shared.ts';

export default defineCommand({
  meta: {
    name: 'verify',
    description:
      "Verify a release bundle (its manifest's signature or attestation, then every entry of the payload against the manifest, writing nothing) or any artifact against a Sigstore bundle, offline. Trust comes only from the compiled-in public-good root and what you pin.",
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
    let outcome: Outcome;
    if (args.bundle && !args.artifact && !args.attestation) {
      outcome = await verifyBundleFile(args.bundle, policy);
    } else if (args.artifact && args.attestation && !args.bundle) {
      const verdict = await verifyArtifact({ artifactPath: args.artifact, attestationPath: args.attestation }, policy);
      outcome = { subject: args.artifact, signer: signerOf(verdict), rows: { predicate: verdict.predicateType, artifact: `sha256:${verdict.artifactSha256}`, bundle: verdict.bundleIndex === undefined ? undefined : `line ${verdict.bundleIndex + 1}` }, verdict: { ...verdict } };
    } else {
      throw usageError('give either --bundle FILE, or --artifact FILE with --attestation FILE');
    }
    printResult(describe(outcome), { json: args.json === true });
    if (args.json) printJson({ ok: true, verified: outcome.subject, signer: outcome.signer, ...outcome.rows, ...(outcome.verdict ?? {}) });
  },
});

interface Outcome {
  subject: string;
  signer: Signer;
  rows: Record<string, string | number | undefined>;
  verdict?: Record<string, unknown>;
}

/**
 * A bundle of the current format: the manifest's signature under the policy, then the payload
 * streamed through the same checks install runs, writing nothing. The first format: as before
 * (payload.sha256, then the signature over the payload).
 */
async function verifyBundleFile(path: string, policy: TrustPolicy): Promise<Outcome> {
  const opened = await openBundleFile(path);
  try {
    if (opened.format === 1) return await verifyFormat1Bundle(path, policy);
    const sums = opened.members.get('SHA256SUMS') as Uint8Array;
    const decode = (name: 'attestation.intoto.jsonl' | 'SHA256SUMS.sigstore.json' | 'SHA256SUMS.sig') => {
      const bytes = opened.members.get(name);
      return bytes === undefined ? undefined : new TextDecoder().decode(bytes);
    };
    const signer = await verifyManifestSignature(sums, { attestation: decode('attestation.intoto.jsonl'), sigstoreBundle: decode('SHA256SUMS.sigstore.json'), sig: decode('SHA256SUMS.sig') }, policy);
    const checks = new PayloadChecks({ sums });
    // Trust needs only the manifest; payload.sha256 is checked too, so a bundle built wrong is named as such.
    const hasher = new Bun.CryptoHasher('sha256');
    const hashed = async function* (source: AsyncIterable<Uint8Array>) {
      for await (const chunk of source) {
        hasher.update(chunk);
        yield chunk;
      }
    };
    const result = await extractArchive(hashed(opened.payload()), '', { discard: true, keepRecords: false, checks, label: PAYLOAD_ARCHIVE, topFolder: PAYLOAD_TOP, limits: PAYLOAD_LIMITS });
    const payloadSha256 = hasher.digest('hex');
    const listed = parseSingleSum(new TextDecoder().decode(opened.members.get('payload.sha256')), PAYLOAD_ARCHIVE, 'payload.sha256');
    if (listed !== payloadSha256) {
      throw new ContainaiError('VERIFY', `payload.tar.gz does not match payload.sha256 (sha256 ${payloadSha256}, payload.sha256 says ${listed})`, {
        hint: 'every entry matched the signed manifest, but the bundle was put together wrong: rebuild it with containai-build repack',
      });
    }
    const manifest = checks.manifest;
    return {
      subject: path,
      signer,
      rows: { version: manifest?.version, manifest: `sha256:${manifest?.sumsSha256}`, payload: `sha256:${payloadSha256}`, entries: manifest?.entries.size, files: result.fileCount, format: 2 },
    };
  } finally {
    await opened.close();
  }
}

async function verifyFormat1Bundle(path: string, policy: TrustPolicy): Promise<Outcome> {
  const { verifyFormat1Bundle: verifyOld } = await import('../../lib/release/format1.ts');
  const { signer, payloadSha256 } = await verifyOld(path, policy);
  return { subject: path, signer, rows: { artifact: `sha256:${payloadSha256}`, format: 1 } };
}

function describe(o: Outcome): string {
  const signer = o.signer;
  if (signer === 'UNSIGNED') {
    log().warn(`${o.subject} is UNSIGNED: accepted only because of --allow-unsigned (development only)`);
    return `${o.subject}: UNSIGNED${o.rows.artifact ? ` (${o.rows.artifact})` : ''}`;
  }
  const who = signer.kind === 'attestation' ? `attestation by ${signer.sourceRepository ?? 'an unknown repository'}` : `signature by pinned key ${signer.keyId?.slice(0, 16)}…`;
  const lines = [`verified ${o.subject}: ${who}`];
  const row = (k: string, value: string | number | undefined) => value !== undefined && lines.push(`  ${k.padEnd(10)}${value}`);
  row('workflow', signer.workflow);
  row('ref', signer.ref);
  row('issuer', signer.issuer);
  row('key', signer.keyId);
  for (const [k, value] of Object.entries(o.rows)) row(k, value);
  return lines.join('\n');
}
