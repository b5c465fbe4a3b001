/**
 * The one verifier: whether a release is good, as a few named steps over one
 * set of facts, each refusing with a typed ReleaseRefusal (sigstore-js's
 * Verifier.verify() is the shape):
 *
 *   1. signature  the manifest (SHA256SUMS's bytes) is signed or attested
 *                 under the policy; trust comes from the policy's roots and
 *                 keys only (lib/trust/verify.ts)
 *   2. manifest   release.json is the file SHA256SUMS lists, names the
 *                 version asked for, and with SHA256SUMS forms one coherent
 *                 tree whose links stay inside it (manifest.ts)
 *   3. entries    every entry present is listed with the same type, mode and
 *                 link target; every file's digest is its line; nothing the
 *                 manifest lists is missing (EntryJudge)
 *
 * Callers differ only in where the facts come from: install gathers them from
 * the stream it extracts (steps 1 and 2 before any payload file is trusted, 3
 * entry by entry as the payload is written, stopping at the first refusal);
 * --verify-only, check-health, rollback and the gate gather them from disk
 * (lib/release/verify-installed.ts) and collect every refusal to report.
 */
import { SUMS_FILE } from '../bundle/layout.ts';
import { ContainaiError, isContainaiError } from '../errors.ts';
import type { Signer } from '../release/record.ts';
import { quote } from '../archive/policy.ts';
import type { TrustPolicy } from '../trust/policy.ts';
import type { Manifest } from './manifest.ts';
import { ReleaseRefusal } from './refusal.ts';
import { modeBits, type EntryType } from './release-json.ts';

export { readManifest, readSums, type Manifest } from './manifest.ts';

/** The signature material that came with a manifest, as texts: nothing in it is trusted until step 1. */
export interface SignatureSet {
  /** attestation.intoto.jsonl */
  attestation?: string;
  /** SHA256SUMS.sigstore.json */
  sigstoreBundle?: string;
  /** SHA256SUMS.sig */
  sig?: string;
}

/** Step 1: SHA256SUMS's signature or attestation under the policy; who signed it. */
export async function verifyManifestSignature(sums: Uint8Array, signatures: SignatureSet, policy: TrustPolicy): Promise<Signer> {
  // Loaded here: the Sigstore verifier is the heaviest module, and a refusal before this step never needs it.
  const { verifyBlob } = await import('../trust/verify.ts');
  let verdict;
  try {
    verdict = await verifyBlob(sums, signatures, policy, {
      artifact: SUMS_FILE,
      attestation: 'attestation.intoto.jsonl',
      sigstoreBundle: 'SHA256SUMS.sigstore.json',
      sig: 'SHA256SUMS.sig',
    });
  } catch (err) {
    // A verdict against the release is a refusal; a key file that cannot be read or a malformed
    // bundle is the operator's or the input's problem and keeps its own message and hint.
    if (!isContainaiError(err) || err.code !== 'VERIFY') throw err;
    throw new ReleaseRefusal('signature', err.message, { hint: err.hint, cause: err });
  }
  return signerOf(verdict);
}

/** The signer as install.json records it. */
export function signerOf(verdict: { kind: 'attestation' | 'key' | 'unsigned'; signer?: { sourceRepository?: string; workflow?: string; ref?: string; issuer?: string; keyId?: string } }): Signer {
  if (verdict.kind === 'unsigned') return 'UNSIGNED';
  const s = verdict.signer ?? {};
  return { kind: verdict.kind, sourceRepository: s.sourceRepository, workflow: s.workflow, ref: s.ref, issuer: s.issuer, keyId: s.keyId };
}

/** An entry as found: in the archive as it streams, or on disk (lstat, never followed). */
export interface SeenEntry {
  path: string;
  type: EntryType | 'other';
  /** Permission and special bits (mode & 0o7777); unused for links. */
  mode: number;
  /** A link's target, as written. */
  target?: string;
}

const octal = (mode: number) => (mode & 0o7777).toString(8).padStart(4, '0');

/** Step 3, one entry at a time. Each check returns the refusal instead of throwing, so a caller can stop or collect. */
export class EntryJudge {
  private readonly seen = new Set<string>();

  constructor(private readonly manifest: Manifest) {}

  /** The entry is listed, with the same type, and the same mode or link target. */
  entry(found: SeenEntry): ReleaseRefusal | undefined {
    const spec = this.manifest.entries.get(found.path);
    if (!spec) return new ReleaseRefusal('unlisted', 'not listed in the signed manifest', { entry: found.path });
    if (this.seen.has(found.path)) return new ReleaseRefusal('manifest', 'appears twice', { entry: found.path });
    this.seen.add(found.path);
    if (found.type !== spec.type) {
      return new ReleaseRefusal('type', `is a ${found.type === 'other' ? 'special file' : found.type}; the manifest says ${spec.type}`, { entry: found.path });
    }
    if (spec.type === 'symlink') {
      if (found.target !== spec.target) {
        return new ReleaseRefusal('link', `points to ${quote(found.target ?? '')}; the manifest says ${quote(spec.target)}`, { entry: found.path });
      }
      return undefined;
    }
    const expected = modeBits(spec);
    if ((found.mode & 0o7777) !== expected) {
      return new ReleaseRefusal('mode', `has mode ${octal(found.mode)}; the manifest says ${octal(expected)}`, { entry: found.path });
    }
    return undefined;
  }

  /** A regular file's content, by its sha256 computed in this run from the bytes themselves. */
  digest(path: string, sha256: string): ReleaseRefusal | undefined {
    const expected = path === SUMS_FILE ? this.manifest.sumsSha256 : this.manifest.digests.get(path);
    // An entry the manifest does not list was refused as such by entry(); its bytes add nothing.
    if (expected === undefined) return undefined;
    if (sha256 !== expected) {
      return new ReleaseRefusal('digest', path === SUMS_FILE ? `is not the ${SUMS_FILE} that was verified` : `content does not match ${SUMS_FILE}`, { entry: path });
    }
    return undefined;
  }

  /** After every entry was seen: what the manifest lists and was not there. */
  missing(): ReleaseRefusal[] {
    const out: ReleaseRefusal[] = [];
    for (const [path, spec] of this.manifest.entries) {
      if (!this.seen.has(path)) out.push(new ReleaseRefusal('missing', `the manifest lists this ${spec.type}, and it is not there`, { entry: path }));
    }
    return out;
  }
}

/** Throws the first refusal of a list (install's rule: stop at the first). */
export function throwFirst(refusals: ReadonlyArray<ReleaseRefusal | undefined>): void {
  const first = refusals.find((r) => r !== undefined);
  if (first) throw first;
}

/** A refusal or any other error as one problem line, for reports that collect. */
export function problemLine(err: unknown): string {
  if (err instanceof ContainaiError) return err.message;
  return err instanceof Error ? err.message : String(err);
}
