/**
 * Flag sets that several commands take, declared once so that the same word
 * means the same thing everywhere (and --help describes it the same way).
 */
import type { ArgsDef } from 'citty';

export const jsonArgs = {
  json: { type: 'boolean', description: 'print one JSON document on stdout (human text stays on stderr)' },
} as const satisfies ArgsDef;

export const DEFAULT_INSTALL_ROOT = '/opt/containai';

export const installRootArgs = {
  'install-root': { type: 'string', description: 'where releases live', default: DEFAULT_INSTALL_ROOT, valueHint: 'DIR' },
} as const satisfies ArgsDef;

export const releaseOutArgs = {
  version: { type: 'string', description: 'release version, e.g. v1.2.3 (default: git describe --tags --always --dirty)', valueHint: 'V' },
  out: { type: 'string', description: 'output folder; the release goes to <out>/<version>/', default: 'dist', valueHint: 'DIR' },
} as const satisfies ArgsDef;

/** The same words as `gh attestation verify`. */
export const policyArgs = {
  repo: { type: 'string', description: "the signer's source repository, OWNER/REPO (from the certificate)", valueHint: 'OWNER/REPO' },
  owner: { type: 'string', description: "the signer's source repository owner (from the certificate)", valueHint: 'OWNER' },
  'signer-workflow': { type: 'string', description: 'the signing workflow, OWNER/REPO/PATH (matches the certificate SAN)', valueHint: 'OWNER/REPO/PATH' },
  'cert-oidc-issuer': { type: 'string', description: 'the OIDC issuer the certificate must name', default: 'https://token.actions.githubusercontent.com', valueHint: 'URL' },
  'predicate-type': { type: 'string', description: 'the in-toto predicate type the attestation must carry', default: 'https://slsa.dev/provenance/v1', valueHint: 'URL' },
  'trusted-root': { type: 'string', description: 'an extra Sigstore trusted_root.json to trust (repeatable)', valueHint: 'FILE' },
  key: { type: 'string', description: 'a pinned public key (PEM) that may sign payload.sigstore.json (repeatable)', valueHint: 'FILE' },
  'public-good': { type: 'boolean', description: 'trust the public-good Sigstore root compiled in (--no-public-good: only pinned roots and keys)', default: true },
  'allow-unsigned': { type: 'boolean', description: 'DEVELOPMENT ONLY: accept a bundle with no signature or attestation' },
} as const satisfies ArgsDef;

/** Where a host's operator pins keys (*.pub) and trusted roots (*.json); root-owned, read on every verification. */
export const trustDirArgs = {
  'trust-dir': { type: 'string', description: 'folder of pinned keys (*.pub) and trusted roots (*.json)', default: '/etc/containai/trust', valueHint: 'DIR' },
} as const satisfies ArgsDef;

/** citty gives a repeated string flag as an array and a single one as a string. */
export function listArg(value: unknown): string[] {
  if (value === undefined || value === null || value === '') return [];
  return (Array.isArray(value) ? value : [value]).map(String);
}
