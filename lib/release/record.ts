/**
 * install.json: what was installed, from where, verified by whom, and when
 * (SPEC "The host"). It lives in releases/<dir>/.containai/ beside the
 * signature material that verified the manifest. Releases installed by the
 * agent of the first format keep it at the release's top (with their whole
 * bundle beside it): both places are read.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { INSTALL_RECORD, KEPT_DIR } from '../bundle/layout.ts';

const HEX64 = z.string().regex(/^[0-9a-f]{64}$/);

export const SignerSchema = z.union([
  z.literal('UNSIGNED'),
  z.object({
    kind: z.enum(['attestation', 'key']),
    sourceRepository: z.string().optional(),
    workflow: z.string().optional(),
    ref: z.string().optional(),
    issuer: z.string().optional(),
    keyId: z.string().optional(),
  }),
]);
export type Signer = z.infer<typeof SignerSchema>;

const common = {
  version: z.string(),
  repo: z.string().optional(),
  /** Where the release came from: a URL (never with credentials), a registry reference or a local path. */
  source: z.string(),
  signer: SignerSchema,
  installedAt: z.string(),
  installedBy: z.string(),
};

/** A release of the current format: the signature covers SHA256SUMS. */
export const ManifestRecordSchema = z.object({ format: z.literal(2), ...common, manifestSha256: HEX64 });
/** A release of the first format: the signature covers payload.tar.gz, whose bundle is kept. */
export const Format1RecordSchema = z.object({
  format: z.literal(1).optional(),
  ...common,
  bundle: z.string(),
  bundleSha256: HEX64,
  payloadSha256: HEX64,
});
export const InstallRecordSchema = z.union([ManifestRecordSchema, Format1RecordSchema]);
export type ManifestRecord = z.infer<typeof ManifestRecordSchema>;
export type Format1Record = z.infer<typeof Format1RecordSchema>;
export type InstallRecord = z.infer<typeof InstallRecordSchema>;

export function recordFormat(record: InstallRecord): 1 | 2 {
  return record.format === 2 ? 2 : 1;
}

export function describeSigner(signer: Signer): string {
  if (signer === 'UNSIGNED') return 'UNSIGNED';
  if (signer.kind === 'key') return `key ${signer.keyId ?? '(pinned)'}`;
  const who = signer.workflow ?? signer.sourceRepository ?? 'attestation';
  // GitHub's workflow SAN already ends with @<ref>: do not say it twice.
  return signer.ref && !who.endsWith(`@${signer.ref}`) ? `${who}@${signer.ref}` : who;
}

/** Where a release's install.json is: .containai/ (this agent) or the top (the first format's agent). */
export type RecordPlace = 'kept' | 'top';

export function recordPath(dir: string, place: RecordPlace): string {
  return place === 'kept' ? join(dir, KEPT_DIR, INSTALL_RECORD) : join(dir, INSTALL_RECORD);
}

/** Reads and checks a release's install.json, from either place; a string says what is wrong with it. */
export async function readInstallRecord(dir: string): Promise<{ record: InstallRecord; place: RecordPlace } | string> {
  for (const place of ['kept', 'top'] as const) {
    let text: string;
    try {
      text = await readFile(recordPath(dir, place), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      return `${place === 'kept' ? `${KEPT_DIR}/` : ''}${INSTALL_RECORD}: unreadable (${(err as NodeJS.ErrnoException).code ?? 'error'})`;
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      return `${place === 'kept' ? `${KEPT_DIR}/` : ''}${INSTALL_RECORD}: not JSON`;
    }
    const parsed = InstallRecordSchema.safeParse(json);
    if (!parsed.success) return `${place === 'kept' ? `${KEPT_DIR}/` : ''}${INSTALL_RECORD}: ${parsed.error.issues.slice(0, 3).map((i) => `${i.path.join('.') || '(top)'}: ${i.message}`).join('; ')}`;
    return { record: parsed.data, place };
  }
  return `${KEPT_DIR}/${INSTALL_RECORD}: missing`;
}
