/**
 * What the health timer runs, as root, on every tick: a binary and flags an
 * attacker who can write under the install root cannot change. The binary is
 * named by its real path and must lie outside the root (current/tools/ can be
 * replaced, and current repointed); the policy flags are written out so that
 * check-health never takes its trust policy from install.json, which lies
 * under the root too.
 */
import { existsSync, realpathSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { ContainaiError, describeCause } from '../errors.ts';
import { isUnder } from '../fs/paths.ts';
import { trustDirFiles } from '../trust/trust-dir.ts';
import { DEFAULT_OIDC_ISSUER, DEFAULT_PREDICATE_TYPE, namesSigner, type TrustPolicy } from '../trust/policy.ts';
import { assertServiceCanRead } from './sandbox.ts';
import { assertUnitSafePath } from './units.ts';

const OUTSIDE_HINT = 'copy containai-host to /usr/local/bin and run systemd install from there, or pass --binary';

/** The real path, or the path as given when it does not exist (yet). */
function realOrResolved(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return resolve(path);
  }
}

/** Refuses a path that is, or resolves to, something under the install root. */
function assertOutsideRoot(path: string, installRoot: string, what: string, hint: string): void {
  const roots = [resolve(installRoot), realOrResolved(installRoot)];
  const paths = [resolve(path), realOrResolved(path)];
  if (paths.some((p) => roots.some((r) => isUnder(p, r)))) {
    throw new ContainaiError('INPUT', `${what} ${path} is inside the install root ${installRoot}: whoever can write there would decide what the timer runs as root`, { hint });
  }
}

/**
 * The binary ExecStart names: --binary, or the one running now, by real path.
 * Refused when it is not an executable file or lies inside the install root.
 */
export function timerBinary(given: string | undefined, installRoot: string): string {
  const path = resolve(given ?? process.execPath);
  let real: string;
  try {
    real = realpathSync(path);
    const info = statSync(real);
    if (!info.isFile() || (info.mode & 0o111) === 0) throw new Error('not an executable file');
  } catch (err) {
    throw new ContainaiError('INPUT', `the timer's binary ${path} cannot be used: ${describeCause(err)}`, { cause: err, hint: OUTSIDE_HINT });
  }
  assertOutsideRoot(path, installRoot, "the timer's binary", OUTSIDE_HINT);
  assertServiceCanRead(real, given ? '--binary' : "the timer's binary (this one)", 'executable', OUTSIDE_HINT);
  return assertUnitSafePath(real, '--binary');
}

/** systemd expands % and $ and splits on spaces: refuse a value that would need quoting rather than quote it. */
const UNIT_SAFE_WORD = /^[A-Za-z0-9._+\-/@:=]+$/;

export function unitWord(value: string, flag: string): string {
  if (!UNIT_SAFE_WORD.test(value)) {
    throw new ContainaiError('INPUT', `${flag} "${value}" cannot be written into a systemd unit`, { hint: 'use letters, digits and . _ + - / @ : = only' });
  }
  return value;
}

const TRUST_HINT = 'keep keys and trusted roots in a root-owned folder the service can read, such as /etc/containai/trust';

/** A file or folder the unit names: outside the install root, readable by the service when the timer runs. */
function unitPath(path: string, flag: string, installRoot: string, expected: 'file' | 'folder', mustExist = true): string {
  const absolute = resolve(path);
  assertOutsideRoot(absolute, installRoot, flag, `keep ${flag} outside the install root, e.g. under /etc/containai/trust`);
  if (mustExist) assertServiceCanRead(absolute, flag, expected, TRUST_HINT);
  return assertUnitSafePath(absolute, flag);
}

/**
 * The policy as check-health flags. Always names a policy (--public-good or --no-public-good at least), so
 * check-health never falls back to install.json; refuses one that could accept no release at all.
 */
export function checkHealthPolicyArgs(policy: TrustPolicy, installRoot: string, options: { trustDirGiven?: boolean } = {}): string[] {
  const trustDir = policy.trustDir;
  if (!namesSigner(policy) && policy.keyFiles.length === 0 && !policy.allowUnsigned && trustDirFiles(trustDir, '.pub').length === 0) {
    throw new ContainaiError('USAGE', 'the timer needs a trust policy: name the signer, a key, or accept unsigned releases', {
      hint: 'pass the policy flags install took: --repo or --owner (with --signer-workflow to pin the workflow), --key, or --allow-unsigned (development only)',
    });
  }
  const args: string[] = [];
  if (policy.repo) args.push('--repo', unitWord(policy.repo, '--repo'));
  if (policy.owner) args.push('--owner', unitWord(policy.owner, '--owner'));
  if (policy.signerWorkflow) args.push('--signer-workflow', unitWord(policy.signerWorkflow, '--signer-workflow'));
  if (policy.certOidcIssuer !== DEFAULT_OIDC_ISSUER) args.push('--cert-oidc-issuer', unitWord(policy.certOidcIssuer, '--cert-oidc-issuer'));
  if (policy.predicateType !== DEFAULT_PREDICATE_TYPE) args.push('--predicate-type', unitWord(policy.predicateType, '--predicate-type'));
  for (const file of policy.trustedRootFiles) args.push('--trusted-root', unitPath(file, '--trusted-root', installRoot, 'file'));
  for (const file of policy.keyFiles) args.push('--key', unitPath(file, '--key', installRoot, 'file'));
  args.push(policy.publicGood ? '--public-good' : '--no-public-good');
  if (policy.allowUnsigned) args.push('--allow-unsigned');
  // The default trust folder may not exist yet (it pins nothing until it does); one named on the command line must.
  if (trustDir) args.push('--trust-dir', unitPath(trustDir, '--trust-dir', installRoot, 'folder', options.trustDirGiven === true || existsSync(trustDir)));
  return args;
}
