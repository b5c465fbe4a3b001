/**
 * host/profile.env: which images a host runs. A flat KEY=VALUE file that shell
 * scripts can source too, so the grammar is the common subset: one assignment
 * per line, optional matching quotes, comments and blank lines, nothing expanded.
 */
import { readFile, stat } from 'node:fs/promises';
import { z } from 'zod';
import { ContainaiError } from './errors.ts';
import { writeFileAtomic } from './fs/atomic.ts';

/** Tags that move: a prod host must never run one, or two hosts may run different code. */
export const MUTABLE_TAGS = ['latest', 'dev', 'devlocal', 'nightly', 'main', 'stable', 'master', 'edge'] as const;

const OCI_TAG = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
const IMMUTABLE_TAG = /^(v?\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?|[0-9a-f]{7,40})$/;
/** One path component of an OCI repository name (distribution spec). */
const OCI_COMPONENT = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$/;
/** host[:port] followed by at least one lower-case path component: ghcr.io/owner, 127.0.0.1:5000/team. */
const REGISTRY = /^[a-z0-9]+(?:[.-][a-z0-9]+)*(?::[0-9]{1,5})?(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)+$/;
const DIGEST = /^sha256:[0-9a-f]{64}$/;
const KEY = /^[A-Z_][A-Z0-9_]*$/;
export const DIGEST_KEY_PREFIX = 'IMAGE_DIGEST_';

const profileSchema = z
  .object({
    PROFILE: z.enum(['dev', 'prod'], { error: 'must be dev or prod' }),
    IMAGE_PREFIX: z.string().regex(OCI_COMPONENT, 'must be a lower-case OCI repository name part (a-z, 0-9, . _ -)'),
    IMAGE_TAG: z.string().regex(OCI_TAG, 'must be a valid image tag'),
    REGISTRY: z
      .string()
      .regex(REGISTRY, 'must look like ghcr.io/owner (lower-case, host then path)')
      .optional(),
  })
  .superRefine((p, ctx) => {
    if (p.PROFILE !== 'prod') return;
    if ((MUTABLE_TAGS as readonly string[]).includes(p.IMAGE_TAG) || !IMMUTABLE_TAG.test(p.IMAGE_TAG)) {
      ctx.addIssue({
        code: 'custom',
        path: ['IMAGE_TAG'],
        message: `prod needs an immutable tag such as v1.2.3 or a commit sha, not "${p.IMAGE_TAG}"`,
      });
    }
    if (!p.REGISTRY) ctx.addIssue({ code: 'custom', path: ['REGISTRY'], message: 'prod needs a registry such as ghcr.io/owner' });
  });

export interface Profile {
  PROFILE: 'dev' | 'prod';
  IMAGE_PREFIX: string;
  IMAGE_TAG: string;
  REGISTRY?: string;
  /** IMAGE_DIGEST_<NAME> values, keyed by lower-case image name. */
  digests: Record<string, string>;
}

/** The file's assignments in order; keys this module does not own are carried through untouched. */
export type ProfileEntries = Map<string, string>;

function unquote(raw: string): string | undefined {
  if (raw.length >= 2 && ((raw.startsWith('"') && raw.endsWith('"')) || (raw.startsWith("'") && raw.endsWith("'")))) {
    const inner = raw.slice(1, -1);
    return /["'$`\\]/.test(inner) ? undefined : inner;
  }
  return /[\s"'$`\\;|&<>(){}]/.test(raw) ? undefined : raw;
}

export function parseProfileEnv(text: string, source: string): ProfileEntries {
  const entries: ProfileEntries = new Map();
  const problems: string[] = [];
  text.split('\n').forEach((rawLine, i) => {
    const line = rawLine.trim();
    if (line === '' || line.startsWith('#')) return;
    const where = `${source}:${i + 1}`;
    const eq = line.indexOf('=');
    const key = (eq > 0 ? line.slice(0, eq) : '').replace(/^export\s+/, '');
    if (!KEY.test(key)) {
      // The line itself is never echoed: a profile path pointed at the wrong file could show a secret.
      problems.push(`${where}: expected KEY=VALUE (a name in capitals, =, then the value)`);
      return;
    }
    const value = unquote(line.slice(eq + 1));
    if (value === undefined) {
      problems.push(`${where}: ${key} has a value with quotes, spaces or shell characters`);
      return;
    }
    if (entries.has(key)) problems.push(`${where}: ${key} is set twice`);
    entries.set(key, value);
  });
  if (problems.length > 0) {
    throw new ContainaiError('INPUT', `invalid profile: ${problems.join('; ')}`, {
      hint: `fix ${source} or rewrite it with "containai-build profile"`,
    });
  }
  return entries;
}

export function validateProfile(entries: ProfileEntries, source: string): Profile {
  const base = Object.fromEntries([...entries].filter(([k, v]) => !k.startsWith(DIGEST_KEY_PREFIX) && v !== ''));
  const parsed = profileSchema.safeParse(base);
  const problems = parsed.success ? [] : parsed.error.issues.map((i) => `${i.path.join('.') || 'profile'}: ${i.message}`);
  const digests: Record<string, string> = {};
  for (const [key, value] of entries) {
    if (!key.startsWith(DIGEST_KEY_PREFIX)) continue;
    const name = key.slice(DIGEST_KEY_PREFIX.length).toLowerCase().replaceAll('_', '-');
    if (!name || !DIGEST.test(value)) problems.push(`${key}: must be sha256:<64 hex>`);
    else digests[name] = value;
  }
  if (!parsed.success || problems.length > 0) {
    throw new ContainaiError('INPUT', `invalid profile ${source}: ${problems.join('; ')}`, {
      hint: 'rewrite it with "containai-build profile --profile ... --image-prefix ... --image-tag ... --registry ..."',
    });
  }
  return { ...parsed.data, digests };
}

export async function readProfileEntries(path: string): Promise<ProfileEntries> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new ContainaiError('NOT_FOUND', `cannot read profile ${path}: ${(err as NodeJS.ErrnoException).code ?? err}`, {
      cause: err,
      hint: 'create it with "containai-build profile"',
    });
  }
  return parseProfileEnv(text, path);
}

export async function readProfile(path: string): Promise<Profile> {
  return validateProfile(await readProfileEntries(path), path);
}

export function formatProfileEnv(entries: ProfileEntries): string {
  const header = '# Written by containai-build profile. KEY=VALUE, no expansion.\n';
  return header + [...entries].map(([k, v]) => `${k}=${v}`).join('\n') + '\n';
}

/** Sets keys (validating the result as a whole) and replaces the file atomically; other keys are kept. */
export async function updateProfile(path: string, updates: Record<string, string>): Promise<Profile> {
  let entries: ProfileEntries;
  try {
    entries = await readProfileEntries(path);
  } catch (err) {
    if (err instanceof ContainaiError && err.code === 'NOT_FOUND') entries = new Map();
    else throw err;
  }
  for (const [key, value] of Object.entries(updates)) entries.set(key, value);
  const profile = validateProfile(entries, path);
  // Keep the mode someone chose (a 0600 profile stays 0600); a new profile is 0644, as package ships it.
  const mode = await stat(path).then(
    (info) => info.mode & 0o777,
    () => 0o644,
  );
  await writeFileAtomic(path, formatProfileEnv(entries), mode);
  return profile;
}

export function digestKey(imageName: string): string {
  return DIGEST_KEY_PREFIX + imageName.toUpperCase().replaceAll('-', '_');
}

/** <REGISTRY>/<IMAGE_PREFIX>-<name>:<IMAGE_TAG>, or without the registry for a local-only dev profile. */
export function imageReference(profile: Profile, name: string): string {
  const repo = `${profile.IMAGE_PREFIX}-${name}`;
  return profile.REGISTRY ? `${profile.REGISTRY}/${repo}:${profile.IMAGE_TAG}` : `${repo}:${profile.IMAGE_TAG}`;
}
