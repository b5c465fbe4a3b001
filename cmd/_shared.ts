/**
 * Flag sets that several commands take, declared once so that the same word
 * means the same thing everywhere (and --help describes it the same way).
 */
import type { ArgsDef } from 'citty';
import { dirname, resolve } from 'node:path';
import type { ExtraMember } from '../lib/payload/release.ts';
import type { PayloadSources } from '../lib/payload/stage.ts';
import { DEFAULT_TRUST_DIR, policyFromArgs, type TrustPolicy } from '../lib/trust/policy.ts';

export const jsonArgs = {
  json: { type: 'boolean', description: 'print one JSON document on stdout (human text stays on stderr)' },
} as const satisfies ArgsDef;

export const DEFAULT_INSTALL_ROOT = '/opt/containai';

export const installRootArgs = {
  'install-root': { type: 'string', description: 'where releases live', default: DEFAULT_INSTALL_ROOT, valueHint: 'DIR' },
} as const satisfies ArgsDef;

export const releaseOutArgs = {
  version: { type: 'string', description: 'release version, e.g. v1.2.3 (default: git describe --tags --always --dirty)', valueHint: 'V' },
  out: { type: 'string', description: 'the folder of releases: <out>/<version>/', default: 'dist', valueHint: 'DIR' },
} as const satisfies ArgsDef;

/**
 * The optional bundle members, as the seed's package.sh took them (package adds them, repack adds or
 * replaces them). This --trusted-root only ships a file; the policy flag of the same name trusts one.
 */
export const bundleExtraArgs = {
  attestation: {
    type: 'string',
    description: 'ship this file as attestation.intoto.jsonl (as `gh attestation download` writes it); one statement must name SHA256SUMS',
    valueHint: 'FILE',
  },
  'cosign-asset': { type: 'string', description: 'ship this cosign binary as "cosign"', valueHint: 'FILE' },
  'trusted-root': { type: 'string', description: 'ship the Sigstore trusted_root.json CI used (recorded for operators, never trusted by hosts)', valueHint: 'FILE' },
} as const satisfies ArgsDef;

export function extraMembers(args: { attestation?: string; 'cosign-asset'?: string; 'trusted-root'?: string }): Partial<Record<ExtraMember, string>> {
  const members: Partial<Record<ExtraMember, string>> = {};
  if (args.attestation) members['attestation.intoto.jsonl'] = resolve(args.attestation);
  if (args['cosign-asset']) members.cosign = resolve(args['cosign-asset']);
  if (args['trusted-root']) members['trusted_root.json'] = resolve(args['trusted-root']);
  return members;
}

/** Where the payload's contents come from (package, sbom). The agent is not in the payload: see package's --agent-dir. */
export const payloadSourceArgs = {
  'host-dir': { type: 'string', description: 'the host tree; README.md and LICENSE are taken from its parent folder', default: 'host', valueHint: 'DIR' },
} as const satisfies ArgsDef;

export function payloadSources(args: { 'host-dir': string }): PayloadSources {
  const hostDir = resolve(args['host-dir']);
  // README.md and LICENSE come from the project the host tree belongs to.
  return { hostDir, projectDir: dirname(hostDir) };
}

/** The same words as `gh attestation verify`. */
export const policyArgs = {
  repo: { type: 'string', description: "the signer's source repository, OWNER/REPO (from the certificate)", valueHint: 'OWNER/REPO' },
  owner: { type: 'string', description: "the signer's source repository owner (from the certificate)", valueHint: 'OWNER' },
  'signer-workflow': { type: 'string', description: 'the signing workflow, [HOST/]OWNER/REPO/PATH[@REF] (matches the certificate SAN); only with --repo or --owner', valueHint: '[HOST/]OWNER/REPO/PATH' },
  'cert-oidc-issuer': { type: 'string', description: 'the OIDC issuer the certificate must name', default: 'https://token.actions.githubusercontent.com', valueHint: 'URL' },
  'predicate-type': { type: 'string', description: 'the in-toto predicate type the attestation must carry', default: 'https://slsa.dev/provenance/v1', valueHint: 'URL' },
  'trusted-root': { type: 'string', description: 'an extra Sigstore trusted_root.json to trust (repeatable)', valueHint: 'FILE' },
  key: { type: 'string', description: 'a pinned public key (PEM: ECDSA P-256, Ed25519 or RSA 2048-4096) whose signature counts (repeatable)', valueHint: 'FILE' },
  'public-good': { type: 'boolean', description: 'trust the public-good Sigstore root compiled in (--no-public-good: only pinned roots and keys)', default: true },
  'allow-unsigned': { type: 'boolean', description: 'DEVELOPMENT ONLY: accept a release (or a file) with no signature or attestation' },
} as const satisfies ArgsDef;

/** The policy flags' names as typed on a command line (booleans also as --no-NAME). */
const POLICY_FLAG_NAMES = Object.keys(policyArgs).flatMap((k) => (policyArgs[k as keyof typeof policyArgs].type === 'boolean' ? [k, `no-${k}`] : [k]));

/**
 * Whether the command line names a policy (a signer, a key or root, or a rule), rather than leaving it to
 * the signer install.json recorded. Only flag words count (`--install-root repo` names no policy), and
 * nothing after `--`. `except` leaves out flags that do not choose one on their own.
 */
export function policyChoiceGiven(rawArgs: readonly string[], except: readonly string[] = []): boolean {
  for (const arg of rawArgs) {
    if (arg === '--') break;
    if (!arg.startsWith('--')) continue;
    const name = arg.slice(2).split('=')[0] ?? '';
    if (POLICY_FLAG_NAMES.includes(name) && !except.includes(name)) return true;
  }
  return false;
}

export interface PolicyFlags {
  /** The policy the flags give (defaults filled in), always validated. */
  policy: TrustPolicy;
  /** Whether a flag on the command line chose it; when not, a command may verify under install.json's signer instead. */
  chosen: boolean;
}

/**
 * The one reader of the policy flags, for every command that takes them (install, update, rollback,
 * verify, check-health, systemd install): the same words are validated the same way everywhere, and
 * `--signer-workflow` without `--repo` or `--owner` is a usage error on every one of them.
 */
export function readPolicyFlags(args: Record<string, unknown>, rawArgs: readonly string[], options: { notChoosing?: readonly string[] } = {}): PolicyFlags {
  return { policy: policyFromArgs(args), chosen: policyChoiceGiven(rawArgs, options.notChoosing) };
}

/** Where a host's operator pins keys (*.pub) and trusted roots (*.json); root-owned, read on every verification. */
export const trustDirArgs = {
  'trust-dir': { type: 'string', description: 'folder of pinned keys (*.pub) and trusted roots (*.json)', default: DEFAULT_TRUST_DIR, valueHint: 'DIR' },
} as const satisfies ArgsDef;

/** The operator's health-gate probes (*.json); root-owned like the trust dir, read on every round of a trial. */
export const probeDirArgs = {
  'probe-dir': { type: 'string', description: "folder of the operator's health-gate probes (*.json)", default: '/etc/containai/health.d', valueHint: 'DIR' },
} as const satisfies ArgsDef;

/** citty gives a repeated string flag as an array and a single one as a string. */
export function listArg(value: unknown): string[] {
  if (value === undefined || value === null || value === '') return [];
  return (Array.isArray(value) ? value : [value]).map(String);
}
