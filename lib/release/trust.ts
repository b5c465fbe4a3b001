/**
 * The release path's use of the trust module: a bundle's signer as install.json
 * records it, and the check of a kept bundle again (verify-only, check-health).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sumsMismatch } from '../bundle/payload-sums.ts';
import { checkPayloadHash, readPayloadSums, unpackBundle } from '../bundle/read.ts';
import { sha256File } from '../digest.ts';
import { ContainaiError } from '../errors.ts';
import type { TrustPolicy } from '../trust/policy.ts';
import { PayloadBytesNeeded, verifyBundleMembers } from '../trust/verify.ts';
import type { InstallRecord, Signer } from './record.ts';

export type ReleasePolicy = TrustPolicy;
type UnpackedBundle = Awaited<ReturnType<typeof unpackBundle>>;

/**
 * Verifies an unpacked bundle under the policy and says who signed it.
 * Refuses (VERIFY) when it does not verify, or is unsigned without --allow-unsigned.
 */
export async function verifyBundleSigner(bundle: UnpackedBundle, policy: ReleasePolicy): Promise<Signer> {
  const verdict = await verifyBundleMembers(bundle, policy);
  if (verdict.kind === 'unsigned') return 'UNSIGNED';
  return {
    kind: verdict.kind,
    sourceRepository: verdict.signer?.sourceRepository,
    workflow: verdict.signer?.workflow,
    ref: verdict.signer?.ref,
    issuer: verdict.signer?.issuer,
    keyId: verdict.signer?.keyId,
  };
}

/**
 * Verifies a kept bundle again: payload.sha256, then the signature under the
 * policy, that it is the payload install.json names, and that the release's
 * SHA256SUMS (treeSums, the bytes the caller checked the files against) is
 * the one inside that payload: without this last check, a file changed on
 * disk together with its line in SHA256SUMS would pass. An unsigned release
 * passes only under --allow-unsigned; its bundle is compared with the digest
 * install.json recorded and read only as far as the payload's SHA256SUMS.
 *
 * The payload is hashed as the bundle streams past and not written anywhere:
 * an attestation or an ECDSA key signature is checked against that digest.
 * A signature over the payload's bytes themselves (Ed25519, a message
 * signature under a certificate) sends it down the old path, which unpacks the
 * bundle whole and verifies it from the start.
 */
export async function verifyKeptBundle(
  bundlePath: string,
  record: InstallRecord,
  policy: ReleasePolicy,
  options: {
    /** The release's SHA256SUMS as the tree was checked against it. */
    treeSums: Uint8Array;
    /** The bundle file's SHA-256 as this run computed it from the bytes on disk (the tree check hashes it beside the tree). */
    bundleSha256?: string;
  },
): Promise<void> {
  const assertSums = (payloadSums: Parameters<typeof sumsMismatch>[0]) => {
    const problem = sumsMismatch(payloadSums, options.treeSums);
    if (problem) throw new ContainaiError('VERIFY', problem, { hint: 'reinstall the release with --force (the live tree is replaced atomically)' });
  };
  if (record.signer === 'UNSIGNED') {
    if (!policy.allowUnsigned) {
      throw new ContainaiError('VERIFY', 'the release was installed UNSIGNED', {
        hint: 'install a signed release, or accept it with --allow-unsigned (development only)',
      });
    }
    // No signature to check again; the digest install.json recorded at least shows the bundle was not swapped since.
    if ((options.bundleSha256 ?? (await sha256File(bundlePath))) !== record.bundleSha256) {
      throw new ContainaiError('VERIFY', 'it is not the bundle recorded in install.json (sha256 differs)');
    }
    assertSums(await readPayloadSums(bundlePath));
    return;
  }
  const work = await mkdtemp(join(tmpdir(), 'containai-verify-'));
  const check = async (bundle: UnpackedBundle) => {
    const payloadSha256 = await checkPayloadHash(bundle);
    if (payloadSha256 !== record.payloadSha256) {
      throw new ContainaiError('VERIFY', 'its payload is not the one recorded in install.json');
    }
    await verifyBundleSigner(bundle, { ...policy, allowUnsigned: false });
    assertSums(bundle.payloadSums);
  };
  try {
    try {
      await check(await unpackBundle(bundlePath, join(work, 'streamed'), { hashPayloadOnly: true, readPayloadSums: true }));
    } catch (err) {
      if (!(err instanceof PayloadBytesNeeded)) throw err;
      await check(await unpackBundle(bundlePath, join(work, 'bundle'), { readPayloadSums: true }));
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

