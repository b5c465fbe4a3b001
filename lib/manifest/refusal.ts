/**
 * Why a release is refused, as a typed value (sigstore-js's VerificationError
 * is the model): every step of lib/manifest/verify.ts refuses with one of these
 * reasons, naming the entry when there is one, so a caller can test the kind of
 * failure and a person reads what is wrong and with which file.
 */
import { ContainaiError } from '../errors.ts';
import { printableName } from '../text.ts';

export type RefusalReason =
  | 'signature' // the manifest's signature or attestation does not verify under the policy
  | 'version' // release.json names another version than the one asked for
  | 'manifest' // SHA256SUMS or release.json is malformed or they disagree
  | 'unlisted' // an entry the manifest does not list
  | 'type' // an entry of another type (file, folder, link) than the manifest says
  | 'mode' // another mode than the manifest says
  | 'link' // another link target, or a target that leaves the release or names nothing
  | 'digest' // a file's content differs from its line in SHA256SUMS
  | 'missing'; // an entry the manifest lists is not there

const HINTS: Record<RefusalReason, string> = {
  signature: 'do not install it; check the policy flags name the signer that released it (--repo, --key)',
  version: 'a signed release served under another version (a replayed old release) must not install: install it under its own version, or fetch the one you asked for',
  manifest: 'the release is damaged or was not made by containai-build; fetch it again',
  unlisted: 'the release was altered (an entry nothing signed lists): install it again, or roll back',
  type: 'the release was altered: install it again, or roll back',
  mode: 'the release was altered (a mode changed): install it again, or roll back',
  link: 'the release was altered or is hostile (a link): install it again, or roll back',
  digest: 'the release was altered (a file changed): install it again, or roll back',
  missing: 'the release is incomplete (an entry was removed): install it again, or roll back',
};

export class ReleaseRefusal extends ContainaiError {
  readonly reason: RefusalReason;
  /** The entry, relative to the release folder, when the refusal is about one. */
  readonly entry?: string;

  constructor(reason: RefusalReason, message: string, options: { entry?: string; hint?: string; cause?: unknown } = {}) {
    const where = options.entry === undefined ? '' : `${printableName(options.entry)}: `;
    super('VERIFY', `${where}${message}`, { hint: options.hint ?? HINTS[reason], cause: options.cause, details: { reason, entry: options.entry } });
    this.reason = reason;
    this.entry = options.entry;
  }
}

export function isReleaseRefusal(err: unknown): err is ReleaseRefusal {
  return err instanceof ReleaseRefusal;
}
