/**
 * What a release is made of (SPEC "The release"): the names of the files in
 * dist/<version>/ and of the members of the flat bundle containai-<version>.tar.gz.
 */
import { ContainaiError } from '../errors.ts';

export const PAYLOAD_ARCHIVE = 'payload.tar.gz';
export const PAYLOAD_SHA256 = 'payload.sha256';
/** The one top folder inside payload.tar.gz. */
export const PAYLOAD_TOP = 'payload';
export const SUMS_FILE = 'SHA256SUMS';
export const SBOM_FILE = 'sbom.json';
export const TOOLS_DIR = 'tools';
export const HOST_TOOL = 'tools/containai-host';

/** Every name a bundle may hold; anything else makes the bundle invalid. */
export const BUNDLE_MEMBERS = [
  'payload.tar.gz',
  'payload.sha256',
  'attestation.intoto.jsonl', // one Sigstore bundle per line, as `gh attestation download` writes
  'payload.sigstore.json', // key-based signature, a Sigstore bundle
  'payload.sig', // the same signature as cosign sign-blob writes it (base64)
  'cosign', // the cosign binary shipped from CI
  'trusted_root.json', // the root used in CI: recorded, never trusted
] as const;
export type BundleMember = (typeof BUNDLE_MEMBERS)[number];
export const REQUIRED_MEMBERS: readonly BundleMember[] = ['payload.tar.gz', 'payload.sha256'];

export function isBundleMember(name: string): name is BundleMember {
  return (BUNDLE_MEMBERS as readonly string[]).includes(name);
}

export function bundleFileName(version: string): string {
  return `containai-${version}.tar.gz`;
}

/**
 * A version names a folder (dist/<version>, releases/<version>) and a file, so
 * it must be one safe path segment: no slashes, no "..", no spaces, not empty.
 */
const SAFE_VERSION = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$/;

export function isSafeVersion(version: string): boolean {
  return SAFE_VERSION.test(version) && !version.includes('..');
}

export function assertSafeVersion(version: string | undefined, flag = '--version'): string {
  if (!version || !isSafeVersion(version)) {
    throw new ContainaiError('INPUT', `${flag} "${version ?? ''}" is not a safe version name`, {
      hint: 'use letters, digits, ".", "_", "+" and "-" only, e.g. v1.2.3 (no slashes, "..", or spaces)',
    });
  }
  return version;
}
