/**
 * What a verification must establish, in the words of `gh attestation verify`
 * (SPEC "Policy flags"). Built once at the edge from flags; the verifier takes
 * only this typed value.
 *
 * Matching rules (all exact or anchored; never a bare prefix or a free regex):
 * - repo OWNER/REPO: the certificate's source-repository URI (Fulcio OID .12)
 *   must equal https://github.com/OWNER/REPO. A full URL may be given instead
 *   (GitHub Enterprise hosts). GitHub names are case-insensitive, so is this.
 * - owner OWNER: the source-repository-owner URI (OID .16) must equal
 *   https://github.com/OWNER (or the full URL given).
 * - signerWorkflow [HOST/]OWNER/REPO/PATH (gh's form; a first segment with a
 *   dot is a host, as gh reads it) or a full URL: the certificate SAN must be
 *   exactly https://HOST/OWNER/REPO/PATH@<ref> (HOST github.com unless given),
 *   any one ref; naming the ref (OWNER/REPO/PATH@refs/heads/main) pins it, as a
 *   whole: @refs/tags/v1 does not match @refs/tags/v1.0.0. A reusable workflow
 *   signs with its own SAN for every repository that calls it, which is why
 *   repo/owner read other extensions, and why a workflow alone is refused: as
 *   in gh, a certificate is relied on only when --repo or --owner is given.
 * - certOidcIssuer: equals the certificate's issuer (OID .8, else .1) exactly.
 * - predicateType: equals the in-toto statement's predicateType exactly.
 *
 * Who may sign:
 * - a certificate from a trusted root, only when the policy names a signer
 *   (repo or owner; signerWorkflow narrows them): the public-good root
 *   certifies anyone with a GitHub account, so an unnamed signer proves nothing;
 * - a pinned key from --key; keys pinned in the trust dir count only when the
 *   policy names no signer (naming one means "an attestation from it, or a key
 *   I pinned on this command line").
 */
import { z } from 'zod';
import { ContainaiError, usageError } from '../errors.ts';

export const DEFAULT_OIDC_ISSUER = 'https://token.actions.githubusercontent.com';
export const DEFAULT_PREDICATE_TYPE = 'https://slsa.dev/provenance/v1';
export const DEFAULT_TRUST_DIR = '/etc/containai/trust';
export const GITHUB_URL = 'https://github.com';

export interface TrustPolicy {
  repo?: string;
  owner?: string;
  signerWorkflow?: string;
  certOidcIssuer: string;
  predicateType: string;
  trustedRootFiles: string[];
  keyFiles: string[];
  publicGood: boolean;
  allowUnsigned: boolean;
  trustDir?: string;
}

const NAME = /^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,99})$/;
const url = z
  .string()
  .url('must be an https:// URL')
  .refine((v) => v.startsWith('https://'), 'must be an https:// URL');
/** Path segments of a URL, or -1 when it is not one (a refine must never throw). */
function urlSegments(v: string): number {
  try {
    return new URL(v).pathname.split('/').filter(Boolean).length;
  } catch {
    return -1;
  }
}
const nonEmptyPath = z.string().min(1, 'must name a file');

const repoSchema = z.union([
  z.string().refine((v) => {
    const [owner, repo, ...rest] = v.split('/');
    return rest.length === 0 && NAME.test(owner ?? '') && NAME.test(repo ?? '');
  }),
  url.refine((v) => urlSegments(v) === 2),
], { error: 'must be OWNER/REPO' });

const ownerSchema = z.union([z.string().regex(NAME), url.refine((v) => urlSegments(v) === 1)], {
  error: 'must be OWNER',
});

/** gh reads a first segment with a dot as a host (GitHub owner names have none): github.com/OWNER/REPO/PATH. */
const HOST = /^[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+$/;

/** OWNER/REPO/PATH with the host split off when gh's [HOST/] form gives one. */
function splitWorkflow(v: string): { host?: string; rest: string[] } {
  const parts = v.split('/');
  return HOST.test(parts[0] ?? '') ? { host: parts[0], rest: parts.slice(1) } : { rest: parts };
}

const workflowSchema = z.union([
  z.string().refine((v) => {
    const [owner, repo, ...path] = splitWorkflow(v).rest;
    return !v.includes('://') && NAME.test(owner ?? '') && NAME.test(repo ?? '') && path.length > 0 && path.every((p) => p.length > 0 && p !== '..');
  }),
  url.refine((v) => urlSegments(v) >= 3),
], { error: 'must be [HOST/]OWNER/REPO/PATH, e.g. acme/app/.github/workflows/release.yml' });

const listOfPaths = z
  .union([z.string(), z.array(z.string())])
  .optional()
  .transform((v) => (v === undefined || v === '' ? [] : [v].flat()))
  .pipe(z.array(nonEmptyPath));

const argsSchema = z.object({
  repo: repoSchema.optional(),
  owner: ownerSchema.optional(),
  'signer-workflow': workflowSchema.optional(),
  'cert-oidc-issuer': url.default(DEFAULT_OIDC_ISSUER),
  'predicate-type': z.string().min(1, 'must not be empty').default(DEFAULT_PREDICATE_TYPE),
  'trusted-root': listOfPaths,
  key: listOfPaths,
  'public-good': z.boolean().default(true),
  'allow-unsigned': z.boolean().default(false),
  'trust-dir': z.string().min(1, 'must name a folder').optional(),
});

/** Reads the policy flags (as citty gives them) into a TrustPolicy; every problem is named. */
export function policyFromArgs(args: Record<string, unknown>): TrustPolicy {
  const picked = Object.fromEntries(
    Object.keys(argsSchema.shape)
      .filter((k) => args[k] !== undefined)
      .map((k) => [k, args[k]]),
  );
  const parsed = argsSchema.safeParse(picked);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `--${i.path.join('.')}: ${i.message}`);
    throw usageError(problems.join('; '), 'see --help for the form of each policy flag');
  }
  const a = parsed.data;
  if (a['signer-workflow'] && !a.repo && !a.owner) {
    throw usageError(
      '--signer-workflow needs --repo or --owner: a shared reusable workflow signs with its own identity for every repository that calls it, so the workflow alone does not say whose release this is',
      'add --repo OWNER/REPO (or --owner OWNER) naming the repository whose releases you trust, as `gh attestation verify` requires',
    );
  }
  return {
    repo: a.repo,
    owner: a.owner,
    signerWorkflow: a['signer-workflow'],
    certOidcIssuer: a['cert-oidc-issuer'],
    predicateType: a['predicate-type'],
    trustedRootFiles: a['trusted-root'],
    keyFiles: a.key,
    publicGood: a['public-good'],
    allowUnsigned: a['allow-unsigned'],
    trustDir: a['trust-dir'],
  };
}

/**
 * Whether the policy names whose certificate counts: a repository or an owner. A workflow alone does
 * not (a shared reusable workflow signs for every caller); it only narrows a repo or owner.
 */
export function namesSigner(policy: TrustPolicy): boolean {
  return Boolean(policy.repo || policy.owner);
}

/** https://github.com/OWNER/REPO for OWNER/REPO; a URL is kept as given. */
export function expectedRepoUri(repo: string): string {
  return repo.includes('://') ? repo.replace(/\/+$/, '') : `${GITHUB_URL}/${repo}`;
}

export function expectedOwnerUri(owner: string): string {
  return owner.includes('://') ? owner.replace(/\/+$/, '') : `${GITHUB_URL}/${owner}`;
}

/** URIs compare case-insensitively: GitHub's owner and repository names are. */
export function sameUri(a: string | undefined, b: string): boolean {
  return a !== undefined && a.toLowerCase() === b.toLowerCase();
}

/** https://HOST/OWNER/REPO/PATH for gh's [HOST/]OWNER/REPO/PATH (HOST github.com when not given); a URL as given. */
export function expectedWorkflowUri(expected: string): string {
  if (expected.includes('://')) return expected;
  const { host } = splitWorkflow(expected);
  return host ? `https://${expected}` : `${GITHUB_URL}/${expected}`;
}

/**
 * The SAN a workflow signs with is https://github.com/OWNER/REPO/PATH@REF.
 * Without "@" in the expected value, any single ref matches (anchored at both
 * ends); with it, the whole SAN must be equal.
 */
export function matchesSignerWorkflow(san: string | undefined, expected: string): boolean {
  if (!san) return false;
  const base = expectedWorkflowUri(expected);
  if (base.includes('@')) return san === base;
  if (!san.startsWith(`${base}@`)) return false;
  const ref = san.slice(base.length + 1);
  return ref.length > 0 && !ref.includes('@');
}

/** A policy error is always the caller's to fix: raise it as a refusal, never as a crash. */
export function refusal(message: string, hint?: string, details?: Record<string, unknown>): ContainaiError {
  return new ContainaiError('VERIFY', message, { hint, details });
}
