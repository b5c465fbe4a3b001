/**
 * The trusted roots a verification may use, and nothing else: the public-good
 * Sigstore root (compiled into the binary from @sigstore/tuf's seeds, or the
 * newer one `trust update` verified through TUF and kept: no network is needed
 * either way), roots named with --trusted-root, and roots pinned in the trust
 * dir. A trusted_root.json shipped inside a bundle is never here.
 */
import { readFile } from 'node:fs/promises';
import { TrustedRoot } from '@sigstore/protobuf-specs';
import { toTrustMaterial, Verifier, type TrustMaterial } from '@sigstore/verify';
import { sha256Bytes } from '../digest.ts';
import { ContainaiError, describeCause } from '../errors.ts';
import type { TrustPolicy } from './policy.ts';
import { trustDirFiles } from './trust-dir.ts';
import { choosePublicGood } from './tuf-store.ts';

const TRUSTED_ROOT_MEDIA = /^application\/vnd\.dev\.sigstore\.trustedroot(\.v\d+\.\d+)?\+json(;version=\d+\.\d+)?$/;

export interface NamedRoot {
  /** Where it came from, for messages: "public-good", or the file. */
  name: string;
  root: TrustedRoot;
}

let publicGood: { sha256: string; root: TrustedRoot } | undefined;

/**
 * The public-good root: the newest verified one, compiled in or kept by `trust update`
 * (lib/trust/tuf-store.ts decides which). Parsed once per content.
 */
export function publicGoodRoot(): TrustedRoot {
  const text = choosePublicGood().trustedRootText();
  const sha256 = sha256Bytes(text);
  if (publicGood?.sha256 !== sha256) publicGood = { sha256, root: TrustedRoot.fromJSON(JSON.parse(text)) };
  return publicGood.root;
}

export function parseTrustedRoot(text: string, source: string): TrustedRoot {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new ContainaiError('INPUT', `${source} is not JSON`, { hint: 'a trusted root is a Sigstore trusted_root.json' });
  }
  const mediaType = (json as { mediaType?: unknown } | null)?.mediaType;
  if (typeof json !== 'object' || json === null || Array.isArray(json) || typeof mediaType !== 'string' || !TRUSTED_ROOT_MEDIA.test(mediaType)) {
    throw new ContainaiError('INPUT', `${source} is not a Sigstore trusted root (mediaType ${JSON.stringify(mediaType ?? null)})`, {
      hint: 'a trusted root is a Sigstore trusted_root.json (application/vnd.dev.sigstore.trustedroot+json)',
    });
  }
  try {
    const root = TrustedRoot.fromJSON(json);
    // Build the material once so that a bad key or certificate is reported here, not mid-verification.
    toTrustMaterial(root);
    return root;
  } catch (err) {
    throw new ContainaiError('INPUT', `${source} is not a valid trusted root: ${describeCause(err)}`, { cause: err });
  }
}

async function readTrustedRootFile(path: string): Promise<NamedRoot> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new ContainaiError('NOT_FOUND', `cannot read trusted root ${path}: ${describeCause(err)}`, { cause: err });
  }
  return { name: path, root: parseTrustedRoot(text, path) };
}

/** Every root the policy trusts, in order: public good, --trusted-root, the trust dir. */
export async function trustedRoots(policy: TrustPolicy): Promise<NamedRoot[]> {
  const roots: NamedRoot[] = [];
  if (policy.publicGood) roots.push({ name: 'public-good', root: publicGoodRoot() });
  for (const path of policy.trustedRootFiles) roots.push(await readTrustedRootFile(path));
  for (const path of trustDirFiles(policy.trustDir, '.json')) roots.push(await readTrustedRootFile(path));
  return roots;
}

export interface RootVerifier {
  name: string;
  material: TrustMaterial;
  verifier: Verifier;
}

/**
 * One verifier per root, with the thresholds that root can meet: a log entry
 * when it has transparency logs, an SCT when it has CT logs, and always one
 * verified timestamp (log integration time or RFC 3161). Roots are never mixed:
 * a certificate from one root is not helped by another root's log.
 */
export function rootVerifier({ name, root }: NamedRoot): RootVerifier {
  const material = toTrustMaterial(root);
  const verifier = new Verifier(material, {
    tlogThreshold: material.tlogs.length > 0 ? 1 : 0,
    ctlogThreshold: material.ctlogs.length > 0 ? 1 : 0,
    timestampThreshold: 1,
  });
  return { name, material, verifier };
}
