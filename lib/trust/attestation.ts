/**
 * Reading what is to be verified: Sigstore bundles (v0.1 to v0.3), one per
 * line of a .jsonl as `gh attestation download` writes them or one JSON
 * document, and the in-toto statement inside a DSSE envelope. Malformed input
 * is an INPUT error with one line that says where; nothing here decides trust.
 */
import { readFile } from 'node:fs/promises';
import { assertBundle, bundleFromJSON, type Bundle } from '@sigstore/bundle';
import { z } from 'zod';
import { ContainaiError, describeCause } from '../errors.ts';

export const BUNDLE_MEDIA_TYPES = [
  'application/vnd.dev.sigstore.bundle+json;version=0.1',
  'application/vnd.dev.sigstore.bundle+json;version=0.2',
  'application/vnd.dev.sigstore.bundle+json;version=0.3',
  'application/vnd.dev.sigstore.bundle.v0.3+json',
] as const;

export const IN_TOTO_PAYLOAD_TYPE = 'application/vnd.in-toto+json';

export interface ParsedBundle {
  /** 0-based line of the .jsonl (0 for a single document). */
  index: number;
  /** "FILE line N" or "FILE", for messages. */
  where: string;
  bundle: Bundle;
}

function bundleError(where: string, message: string, hint?: string): ContainaiError {
  return new ContainaiError('INPUT', `${where}: ${message}`, {
    hint: hint ?? 'give the Sigstore bundle as written by `gh attestation download` or `cosign sign-blob --bundle`',
  });
}

/** One Sigstore bundle from parsed JSON, fully validated (every invalid field named). */
export function parseBundle(json: unknown, where: string): Bundle {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw bundleError(where, 'not a Sigstore bundle (not a JSON object)');
  const mediaType = (json as { mediaType?: unknown }).mediaType;
  if (typeof mediaType !== 'string' || !(BUNDLE_MEDIA_TYPES as readonly string[]).includes(mediaType)) {
    throw bundleError(where, `unknown bundle media type ${JSON.stringify(mediaType ?? null)}`, `supported: ${BUNDLE_MEDIA_TYPES.join(', ')}`);
  }
  const vm = (json as { verificationMaterial?: unknown }).verificationMaterial;
  if (typeof vm !== 'object' || vm === null) throw bundleError(where, 'the bundle has no verification material (certificate or public key)');
  let bundle: Bundle;
  try {
    bundle = bundleFromJSON(json);
    assertBundle(bundle);
  } catch (err) {
    const fields = (err as { fields?: string[] }).fields;
    const detail = fields?.length ? `missing or invalid ${fields.join(', ')}` : describeCause(err);
    throw bundleError(where, `invalid Sigstore bundle: ${detail}`);
  }
  if (!bundle.verificationMaterial.content) throw bundleError(where, 'the bundle has no verification material (certificate or public key)');
  return bundle;
}

/**
 * All bundles in a file: a single JSON document, or JSON Lines. An empty
 * file, a line that is not JSON, or a line that is not a bundle is refused
 * whole: a damaged attestation file is not partly trusted.
 */
export async function readBundles(path: string, label = path): Promise<ParsedBundle[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new ContainaiError('NOT_FOUND', `cannot read ${label}: ${describeCause(err)}`, { cause: err });
  }
  return parseBundles(text, label);
}

export function parseBundles(text: string, label: string): ParsedBundle[] {
  if (text.trim() === '') throw bundleError(label, 'empty: it holds no Sigstore bundle');
  try {
    const whole = JSON.parse(text);
    return [{ index: 0, where: label, bundle: parseBundle(whole, label) }];
  } catch (err) {
    if (err instanceof ContainaiError) throw err;
  }
  const bundles: ParsedBundle[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] as string).trim();
    if (line === '') continue;
    const where = `${label} line ${i + 1}`;
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch {
      throw bundleError(where, 'not JSON');
    }
    bundles.push({ index: i, where, bundle: parseBundle(json, where) });
  }
  return bundles;
}

const statementSchema = z.object({
  _type: z.string(),
  subject: z
    .array(z.object({ name: z.string().optional(), digest: z.record(z.string(), z.string()) }))
    .min(1, 'has no subject'),
  predicateType: z.string(),
});

export type Statement = z.infer<typeof statementSchema>;

/** The in-toto statement of a DSSE envelope; throws VERIFY (the signed content is not what we accept). */
export function parseStatement(payloadType: string, payload: Buffer): Statement {
  if (payloadType !== IN_TOTO_PAYLOAD_TYPE) {
    throw new ContainaiError('VERIFY', `the DSSE payload type is ${JSON.stringify(payloadType)}, not ${IN_TOTO_PAYLOAD_TYPE}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(payload.toString('utf8'));
  } catch {
    throw new ContainaiError('VERIFY', 'the DSSE payload is not JSON');
  }
  const parsed = statementSchema.safeParse(json);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || 'statement'}: ${i.message}`).join('; ');
    throw new ContainaiError('VERIFY', `the in-toto statement is malformed: ${problems}`);
  }
  return parsed.data;
}

export interface ArtifactDigests {
  sha256: string;
  /** Computed only when a subject offers sha512 alone. */
  sha512?: () => Promise<string>;
}

/** Whether one subject's digest equals the artifact's. The digest decides; the subject's name does not. */
export async function subjectMatches(statement: Statement, digests: ArtifactDigests): Promise<boolean> {
  const lower = (d: Record<string, string>, alg: string) => d[alg]?.toLowerCase();
  if (statement.subject.some((s) => lower(s.digest, 'sha256') === digests.sha256)) return true;
  const sha512Only = statement.subject.filter((s) => !s.digest.sha256 && s.digest.sha512);
  if (sha512Only.length === 0 || !digests.sha512) return false;
  const sha512 = await digests.sha512();
  return sha512Only.some((s) => lower(s.digest, 'sha512') === sha512);
}
