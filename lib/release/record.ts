/** install.json: what was installed, from where, verified by whom, and when (SPEC "The host"). */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { INSTALL_RECORD } from './layout.ts';

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

export const InstallRecordSchema = z.object({
  version: z.string(),
  repo: z.string().optional(),
  /** Where the bundle came from: a URL (never with credentials) or a local path. */
  source: z.string(),
  bundle: z.string(),
  bundleSha256: HEX64,
  payloadSha256: HEX64,
  signer: SignerSchema,
  installedAt: z.string(),
  installedBy: z.string(),
});
export type InstallRecord = z.infer<typeof InstallRecordSchema>;

export function describeSigner(signer: Signer): string {
  if (signer === 'UNSIGNED') return 'UNSIGNED';
  if (signer.kind === 'key') return `key ${signer.keyId ?? '(pinned)'}`;
  const who = signer.workflow ?? signer.sourceRepository ?? 'attestation';
  // GitHub's workflow SAN already ends with @<ref>: do not say it twice.
  return signer.ref && !who.endsWith(`@${signer.ref}`) ? `${who}@${signer.ref}` : who;
}

/** Reads and checks a release's install.json; a string says what is wrong with it. */
export async function readInstallRecord(dir: string): Promise<InstallRecord | string> {
  let json: unknown;
  try {
    json = JSON.parse(await readFile(join(dir, INSTALL_RECORD), 'utf8'));
  } catch (err) {
    return `${INSTALL_RECORD}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : 'not JSON'}`;
  }
  const parsed = InstallRecordSchema.safeParse(json);
  if (!parsed.success) return `${INSTALL_RECORD}: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`;
  return parsed.data;
}
