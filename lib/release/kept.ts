/**
 * releases/<dir>/.containai/: what a host keeps beside an installed tree so
 * that the release can be verified again from disk alone: install.json and
 * the signature material that verified the manifest, exactly as received (a
 * few KB; the payload is never needed again). Read without following links
 * and with size limits: whoever can write there must not make root read a
 * FIFO or a file of their choosing elsewhere.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ATTESTATION_FILE, INSTALL_RECORD, KEPT_DIR, SIGNATURE_FILES, SUMS_SIG_FILE, SUMS_SIGSTORE_FILE } from '../bundle/layout.ts';
import { ContainaiError } from '../errors.ts';
import { readPlainFile } from '../fs/plain-file.ts';
import type { SignatureSet } from '../manifest/verify.ts';
import type { InstallRecord } from './record.ts';

/** A kept signature file is a few KB; an attestation with many lines a few hundred. */
const MAX_KEPT_BYTES = 16 * 1024 * 1024;

/** The files of .containai/ a current-format release may hold. */
export const KEPT_FILES: readonly string[] = [INSTALL_RECORD, ...SIGNATURE_FILES];

const FIELD: Record<(typeof SIGNATURE_FILES)[number], keyof SignatureSet> = {
  [ATTESTATION_FILE]: 'attestation',
  [SUMS_SIGSTORE_FILE]: 'sigstoreBundle',
  [SUMS_SIG_FILE]: 'sig',
};

/** Writes .containai/ into a staged tree (before it is placed): the record and each piece of material given. */
export async function writeKept(tree: string, record: InstallRecord, signatures: SignatureSet): Promise<void> {
  const dir = join(tree, KEPT_DIR);
  await mkdir(dir, { mode: 0o755 });
  await writeFile(join(dir, INSTALL_RECORD), `${JSON.stringify(record, null, 2)}\n`, { mode: 0o644, flag: 'wx' });
  for (const name of SIGNATURE_FILES) {
    const text = signatures[FIELD[name]];
    if (text !== undefined) await writeFile(join(dir, name), text, { mode: 0o644, flag: 'wx' });
  }
}

/** A small file read without following links (lib/fs/plain-file.ts); undefined when absent, a VERIFY error when it is not a plain file. */
export async function readSmallFile(path: string, maxBytes = MAX_KEPT_BYTES): Promise<Uint8Array | undefined> {
  const read = await readPlainFile(path, maxBytes);
  if (read === undefined) return undefined;
  if ('problem' in read) throw new ContainaiError('VERIFY', `${path}: ${read.problem}`);
  return read.bytes;
}

/** The signature material kept beside a release. */
export async function readKeptSignatures(releaseDir: string): Promise<SignatureSet> {
  const set: SignatureSet = {};
  for (const name of SIGNATURE_FILES) {
    const bytes = await readSmallFile(join(releaseDir, KEPT_DIR, name));
    if (bytes !== undefined) set[FIELD[name]] = new TextDecoder().decode(bytes);
  }
  return set;
}
