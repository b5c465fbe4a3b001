/**
 * The trust policy an install record implies, for check-health and rollback
 * run without policy flags: the signer install.json recorded (its repository,
 * and its workflow SAN with ref when recorded; a key signature checks against the trust dir's
 * pinned keys). install.json lies under the install root, so it never makes
 * an unsigned release acceptable on a host whose trust dir pins a key or a
 * root. Kept apart from lib/release/trust.ts so that deciding a policy does not
 * load the verifier.
 */
import { ContainaiError } from '../errors.ts';
import type { TrustPolicy } from '../trust/policy.ts';
import { trustDirFiles } from '../trust/trust-dir.ts';
import type { InstallRecord } from './record.ts';

/** The defaults a policy taken from install.json starts from (GitHub Actions OIDC, SLSA provenance, the public-good root). */
export const DEFAULT_RECORD_POLICY: TrustPolicy = {
  certOidcIssuer: 'https://token.actions.githubusercontent.com',
  predicateType: 'https://slsa.dev/provenance/v1',
  trustedRootFiles: [],
  keyFiles: [],
  publicGood: true,
  allowUnsigned: false,
};

/**
 * The policy to verify the kept bundle under when no policy flag was given.
 * Throws (VERIFY) for an UNSIGNED record on a host whose trust dir pins keys or roots.
 */
export function policyFromRecord(record: InstallRecord, defaults: TrustPolicy): TrustPolicy {
  const { signer } = record;
  if (signer === 'UNSIGNED') {
    const pinned = [...trustDirFiles(defaults.trustDir, '.pub'), ...trustDirFiles(defaults.trustDir, '.json')];
    if (pinned.length > 0) {
      throw new ContainaiError('VERIFY', `install.json says ${record.version} was installed UNSIGNED, but the trust dir ${defaults.trustDir} pins ${pinned.length} key${pinned.length === 1 ? '' : 's'} or root${pinned.length === 1 ? '' : 's'}: install.json alone cannot make an unsigned release acceptable here`, {
        hint: 'install a signed release, or pass the policy flags (--allow-unsigned, development only) to accept it',
      });
    }
    return { ...defaults, allowUnsigned: true };
  }
  if (signer.kind === 'key') return { ...defaults, allowUnsigned: false };
  // The workflow narrows the repository; it never stands alone (a shared reusable workflow signs for every caller).
  if (signer.workflow) {
    return { ...defaults, repo: signer.sourceRepository ?? record.repo, signerWorkflow: signer.workflow, certOidcIssuer: signer.issuer ?? defaults.certOidcIssuer, allowUnsigned: false };
  }
  return { ...defaults, repo: signer.sourceRepository ?? record.repo, certOidcIssuer: signer.issuer ?? defaults.certOidcIssuer, allowUnsigned: false };
}

/**
 * The policy a command run by hand judges an installed release under (rollback, install
 * --verify-only): the policy flags when they choose one, else the signer install.json records; an
 * UNSIGNED record passes only when --allow-unsigned was given, as install asks. Throws as
 * policyFromRecord does.
 */
export function policyForInstalled(record: InstallRecord, given: TrustPolicy | undefined, options: { trustDir?: string; allowUnsigned: boolean }): TrustPolicy {
  if (given) return given;
  const recorded = policyFromRecord(record, { ...DEFAULT_RECORD_POLICY, trustDir: options.trustDir });
  return { ...recorded, allowUnsigned: recorded.allowUnsigned && options.allowUnsigned };
}
