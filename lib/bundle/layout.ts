/**
 * What a release is made of (SPEC "The release"): the names of the files in
 * dist/<version>/, of the members of the flat bundle containai-<version>.tar.gz,
 * and of what a host keeps beside an installed tree.
 *
 * The unit of trust is the manifest: SHA256SUMS lists every regular file of the
 * payload (release.json included), release.json names the version and every
 * entry's type, mode and link target (lib/manifest/release-json.ts), and what
 * is signed or attested is SHA256SUMS. The first format (a signature over
 * payload.tar.gz, the agent inside the payload) still installs; its names are
 * the FORMAT1_* ones and lib/release/format1.ts is its only reader.
 */
import { ContainaiError } from '../errors.ts';

export const PAYLOAD_ARCHIVE = 'payload.tar.gz';
export const PAYLOAD_SHA256 = 'payload.sha256';
/** The one top folder inside payload.tar.gz. */
export const PAYLOAD_TOP = 'payload';
/** The manifest: `sha256sum -c` format, sorted paths, every regular file of the payload but itself. */
export const SUMS_FILE = 'SHA256SUMS';
/** The version and every entry's type, mode and link target; listed in SHA256SUMS. */
export const RELEASE_FILE = 'release.json';
export const SBOM_FILE = 'sbom.json';
/** One Sigstore bundle per line, as `gh attestation download` writes it; its subjects cover SHA256SUMS. */
export const ATTESTATION_FILE = 'attestation.intoto.jsonl';
/** A key signature of SHA256SUMS as a Sigstore bundle (message signature, public-key hint). */
export const SUMS_SIGSTORE_FILE = 'SHA256SUMS.sigstore.json';
/** The same signature, base64, as `cosign sign-blob --output-signature` writes it. */
export const SUMS_SIG_FILE = 'SHA256SUMS.sig';
/** The Sigstore trusted root CI used: recorded for operators, never trusted by hosts. */
export const TRUSTED_ROOT_FILE = 'trusted_root.json';
/** The cosign binary, shipped for operators who want it (after the payload: it is large). */
export const COSIGN_FILE = 'cosign';

/** The host agent is its own asset, one per architecture, beside the release (never inside the payload). */
export const AGENT_ARCHES = ['x64', 'arm64'] as const;
export type AgentArch = (typeof AGENT_ARCHES)[number];
export function agentAssetName(arch: AgentArch): string {
  return `containai-host-linux-${arch}`;
}
/** `sha256sum -c` lines for the agent binaries, signed (sign) and attested (the workflow) like SHA256SUMS. */
export const AGENT_SUMS_FILE = 'containai-host.SHA256SUMS';
export const AGENT_SUMS_SIGSTORE_FILE = 'containai-host.SHA256SUMS.sigstore.json';
export const AGENT_SUMS_SIG_FILE = 'containai-host.SHA256SUMS.sig';

/**
 * The members of a bundle of the current format, in the order they are written: the small
 * members first, so a host verifies the manifest before it reads a byte of the payload.
 */
export const BUNDLE_MEMBERS = [
  SUMS_FILE,
  ATTESTATION_FILE,
  SUMS_SIGSTORE_FILE,
  SUMS_SIG_FILE,
  TRUSTED_ROOT_FILE,
  PAYLOAD_SHA256,
  PAYLOAD_ARCHIVE,
  COSIGN_FILE,
] as const;
export type BundleMember = (typeof BUNDLE_MEMBERS)[number];
export const REQUIRED_MEMBERS: readonly BundleMember[] = [SUMS_FILE, PAYLOAD_SHA256, PAYLOAD_ARCHIVE];

export function isBundleMember(name: string): name is BundleMember {
  return (BUNDLE_MEMBERS as readonly string[]).includes(name);
}

/** The signature material a release carries over SHA256SUMS (bundle members, files in dist/<version>/, registry layers). */
export const SIGNATURE_FILES = [ATTESTATION_FILE, SUMS_SIGSTORE_FILE, SUMS_SIG_FILE] as const;
export type SignatureFile = (typeof SIGNATURE_FILES)[number];

/**
 * What a host keeps beside an installed tree, in releases/<dir>/.containai/: install.json and
 * the signature material that verified the manifest (a few KB). The payload may never hold this name.
 */
export const KEPT_DIR = '.containai';
export const INSTALL_RECORD = 'install.json';

// ---------------------------------------------------------------------------
// The first format: the signature covers payload.tar.gz, the agent is inside the payload.

export const FORMAT1_MEMBERS = [
  PAYLOAD_ARCHIVE,
  PAYLOAD_SHA256,
  ATTESTATION_FILE,
  'payload.sigstore.json',
  'payload.sig',
  COSIGN_FILE,
  TRUSTED_ROOT_FILE,
] as const;
export type Format1Member = (typeof FORMAT1_MEMBERS)[number];
export const FORMAT1_REQUIRED: readonly Format1Member[] = [PAYLOAD_ARCHIVE, PAYLOAD_SHA256];
export function isFormat1Member(name: string): name is Format1Member {
  return (FORMAT1_MEMBERS as readonly string[]).includes(name);
}
/** Where the first format carried the agent, inside the payload. */
export const FORMAT1_TOOLS_DIR = 'tools';
export const FORMAT1_HOST_TOOL = 'tools/containai-host';

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
