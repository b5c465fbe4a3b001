/**
 * Offline verification of a release: a Sigstore attestation (DSSE in-toto,
 * certificate from a pinned or compiled-in trusted root) or a key signature
 * (payload.sigstore.json, pinned key) over an artifact, then the policy.
 * Trust comes only from the policy (compiled-in roots, --trusted-root,
 * --key, the trust dir), never from the files being verified.
 */
import { ContainaiError } from '../errors.ts';
import type { TrustPolicy } from './policy.ts';

export interface Verdict {
  kind: 'attestation' | 'key' | 'unsigned';
  artifactSha256: string;
  signer?: {
    sourceRepository?: string;
    sourceRepositoryOwner?: string;
    /** The certificate SAN: the workflow that signed, with its ref. */
    workflow?: string;
    ref?: string;
    issuer?: string;
    keyId?: string;
  };
  predicateType?: string;
  /** Which line (0-based) of the .jsonl satisfied the policy. */
  bundleIndex?: number;
}

export interface VerifyInput {
  artifactPath: string;
  attestationPath?: string;
  /** payload.sigstore.json: a key-signed Sigstore bundle. */
  signaturePath?: string;
}

/** The members of an unpacked bundle, by member name (lib/bundle/read.ts). */
export interface UnpackedBundleLike {
  dir: string;
}

export async function verifyArtifact(_input: VerifyInput, _policy: TrustPolicy): Promise<Verdict> {
  throw new ContainaiError('INTERNAL', 'verifyArtifact is not implemented yet');
}

export async function verifyBundleMembers(_bundle: UnpackedBundleLike, _policy: TrustPolicy): Promise<Verdict> {
  throw new ContainaiError('INTERNAL', 'verifyBundleMembers is not implemented yet');
}
