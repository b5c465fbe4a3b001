/**
 * What an attestation shipped with a release must be about: hosts verify the
 * release's manifest, so one of its in-toto statements must name SHA256SUMS's
 * digest among its subjects (the workflow attests SHA256SUMS, payload.tar.gz,
 * containai-host.SHA256SUMS and both agents in one statement). An attestation
 * of something else (the old format's payload.tar.gz alone, another build) is
 * refused before it is shipped, naming the digests it does cover.
 *
 * Nothing here decides trust: the signature is the host's to verify. This only
 * stops a release folder from carrying an attestation that cannot verify it.
 */
import { ContainaiError } from '../errors.ts';
import { printableName } from '../text.ts';
import { parseBundles, parseStatement, type Statement } from '../trust/attestation.ts';
import { ATTESTATION_FILE, SUMS_FILE } from '../bundle/layout.ts';

export interface SubjectDigest {
  name?: string;
  sha256?: string;
}

/** Every subject of every in-toto statement in the file's Sigstore bundles. */
export function attestationSubjects(text: string, label: string): SubjectDigest[] {
  const subjects: SubjectDigest[] = [];
  for (const { bundle, where } of parseBundles(text, label)) {
    if (bundle.content.$case !== 'dsseEnvelope') continue; // a message signature states no subject
    let statement: Statement;
    try {
      statement = parseStatement(bundle.content.dsseEnvelope.payloadType, bundle.content.dsseEnvelope.payload);
    } catch (err) {
      throw new ContainaiError('INPUT', `${where}: ${(err as Error).message}`, { hint: 'pass the file `gh attestation download` wrote' });
    }
    for (const s of statement.subject) subjects.push({ name: s.name, sha256: s.digest.sha256?.toLowerCase() });
  }
  return subjects;
}

/** Refuses an attestation none of whose statements names `sumsSha256` (SHA256SUMS's digest). */
export function assertAttestationCoversSums(text: string, label: string, sumsSha256: string): void {
  const subjects = attestationSubjects(text, label);
  if (subjects.some((s) => s.sha256 === sumsSha256)) return;
  // The names and digests come from the file: printed escaped.
  const named = subjects.map((s) => printableName(`${s.name ?? '(no name)'} sha256:${s.sha256 ?? '(none)'}`));
  const shown = named.length === 0 ? 'no in-toto subject at all' : `only ${named.slice(0, 6).join(', ')}${named.length > 6 ? ` and ${named.length - 6} more` : ''}`;
  throw new ContainaiError('INPUT', `${label} does not attest this release's ${SUMS_FILE} (sha256:${sumsSha256}): it names ${shown}`, {
    hint: `attest ${SUMS_FILE} of this build (with payload.tar.gz, containai-host.SHA256SUMS and the agents), then pass that ${ATTESTATION_FILE}`,
    details: { sumsSha256, subjects },
  });
}
