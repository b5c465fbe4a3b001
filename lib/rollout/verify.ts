/**
 * A rollout statement verified on a host: the one verifier (lib/trust/verify.ts,
 * as for a release's manifest) under the host's policy, with the predicate type
 * set to the rollout type. The artifact is the release manifest the channel's
 * rollout manifest names as its subject: the signed statement must name that
 * digest, or it says nothing about this release. Then what the verifier does
 * not know: the predicate is well formed and is for the channel asked.
 *
 * A keyless statement is attested by the rollout workflow, whose certificate
 * names .github/workflows/rollout.yml: a policy that pins the release
 * workflow (--signer-workflow) pins the rollout workflow with
 * --rollout-signer-workflow; without it the release workflow is asked for,
 * and the statement is refused (never a silently looser policy).
 */
import { ContainaiError, isContainaiError } from '../errors.ts';
import { signerOf } from '../manifest/verify.ts';
import { digestHex, type Descriptor } from '../oci/types.ts';
import type { Signer } from '../release/record.ts';
import type { TrustPolicy } from '../trust/policy.ts';
import { STATEMENT_TITLE } from './artifact.ts';
import { readStatement, ROLLOUT_PREDICATE_TYPE, type RolloutStatement } from './statement.ts';

/** The release policy with the rollout's predicate type (and workflow, when one is pinned for rollouts). */
export function rolloutPolicy(policy: TrustPolicy, rolloutSignerWorkflow?: string): TrustPolicy {
  return { ...policy, predicateType: ROLLOUT_PREDICATE_TYPE, signerWorkflow: rolloutSignerWorkflow ?? policy.signerWorkflow, allowUnsigned: false };
}

export interface VerifiedStatement {
  statement: RolloutStatement;
  signer: Signer;
}

export async function verifyStatement(bundleText: string, subject: Pick<Descriptor, 'digest'>, policy: TrustPolicy, expect: { channel: string; where: string }): Promise<VerifiedStatement> {
  const { verifySigned } = await import('../trust/verify.ts');
  let verdict;
  try {
    verdict = await verifySigned({ sha256: digestHex(subject.digest) }, { sigstoreBundle: bundleText }, policy, {
      artifact: `the release ${subject.digest}`,
      sigstoreBundle: `${expect.where} ${STATEMENT_TITLE}`,
    });
  } catch (err) {
    if (isContainaiError(err) && (err.code === 'VERIFY' || err.code === 'INPUT')) {
      throw new ContainaiError('VERIFY', `the rollout statement of ${expect.channel} does not verify: ${err.message}`, {
        hint: 'nothing was installed; check that the statement was made by a signer this host trusts (the policy flags), with containai-build rollout',
        cause: err,
      });
    }
    throw err;
  }
  const statement = readStatement(bundleText, expect.where, verdict.bundleIndex ?? 0);
  if (statement.subject.digest !== subject.digest) {
    throw new ContainaiError('VERIFY', `the rollout statement of ${expect.channel} names the release ${statement.subject.digest}, not ${subject.digest}`, { hint: 'nothing was installed; publish a new statement' });
  }
  if (statement.predicate.channel !== expect.channel) {
    throw new ContainaiError('VERIFY', `the statement on ${expect.channel} is for the channel "${statement.predicate.channel}": a statement moved to another channel is refused`, {
      hint: `nothing was installed; publish a statement for ${expect.channel} (containai-build rollout --channel ${expect.channel})`,
    });
  }
  return { statement, signer: signerOf(verdict) };
}
