import { defineCommand } from 'citty';
import { join, resolve } from 'node:path';
import { archiveMtime } from '../../lib/archive/write.ts';
import {
  AGENT_SUMS_FILE,
  AGENT_SUMS_SIG_FILE,
  AGENT_SUMS_SIGSTORE_FILE,
  assertSafeVersion,
  SUMS_FILE,
  SUMS_SIG_FILE,
  SUMS_SIGSTORE_FILE,
} from '../../lib/bundle/layout.ts';
import { log, printJson } from '../../lib/cli/output.ts';
import { ContainaiError } from '../../lib/errors.ts';
import { checkReleaseFolder, updateReleaseFolder } from '../../lib/payload/folder.ts';
import { loadSigningKey, type SigningKey } from '../../lib/trust/keys.ts';
import { signBlob } from '../../lib/trust/sign.ts';
import { jsonArgs } from '../_shared.ts';

export default defineCommand({
  meta: {
    name: 'sign',
    description:
      'Sign the release manifest with a key: SHA256SUMS (and containai-host.SHA256SUMS when present) get a .sigstore.json (Sigstore bundle) and a .sig (base64, as cosign sign-blob) in dist/<version>/, and the bundle is rewritten with SHA256SUMS.sigstore.json and SHA256SUMS.sig.',
  },
  args: {
    version: { type: 'string', description: 'the release to sign, dist/<version>/', required: true, valueHint: 'V' },
    out: { type: 'string', description: 'output folder holding <version>/', default: 'dist', valueHint: 'DIR' },
    key: {
      type: 'string',
      description: 'private key: a PEM file (ECDSA P-256, Ed25519 or RSA 2048-4096; PKCS#8, SEC1, PKCS#1 or cosign encrypted, password in COSIGN_PASSWORD) or env://VAR',
      default: 'env://COSIGN_KEY',
      valueHint: 'FILE|env://VAR',
    },
    ...jsonArgs,
  },
  async run({ args }) {
    const version = assertSafeVersion(args.version);
    const key = await loadSigningKey(args.key);
    // One build only: SHA256SUMS must be the payload's and the bundle's, the agents their sums' (lib/payload/folder.ts).
    const folder = await checkReleaseFolder(resolve(args.out), version, { bundle: true });

    const sums = await signFile(join(folder.dir, SUMS_FILE), key, folder.sumsSha256);
    const agents = folder.agentSums ? await signFile(join(folder.dir, AGENT_SUMS_FILE), key) : undefined;
    const members = await updateReleaseFolder(
      folder,
      {
        [SUMS_SIGSTORE_FILE]: { data: sums.sigstore },
        [SUMS_SIG_FILE]: { data: sums.sig },
        ...(agents ? { [AGENT_SUMS_SIGSTORE_FILE]: { data: agents.sigstore }, [AGENT_SUMS_SIG_FILE]: { data: agents.sig } } : {}),
      },
      archiveMtime(),
    );

    const signed = [SUMS_FILE, ...(agents ? [AGENT_SUMS_FILE] : [])];
    log().success(`signed ${signed.join(' and ')} (SHA256SUMS sha256:${folder.sumsSha256}) with ${key.algorithm} key ${key.keyId}; rewrote ${folder.bundle}`);
    if (args.json) {
      const files = [SUMS_SIGSTORE_FILE, SUMS_SIG_FILE, ...(agents ? [AGENT_SUMS_SIGSTORE_FILE, AGENT_SUMS_SIG_FILE] : [])].map((f) => join(folder.dir, f));
      printJson({ ok: true, version, bundle: folder.bundle, sumsSha256: folder.sumsSha256, signed, keyId: key.keyId, algorithm: key.algorithm, files, members });
    }
  },
});

/** A Sigstore bundle (v0.3, message signature, public-key hint) and the bare base64 signature of one file. */
async function signFile(path: string, key: SigningKey, expectedSha256?: string): Promise<{ sigstore: string; sig: string }> {
  const signed = await signBlob(path, key);
  if (expectedSha256 && signed.sha256 !== expectedSha256) {
    throw new ContainaiError('INPUT', `${path} changed while it was being signed`, { hint: 'nothing may write to the release folder while it is signed; run again' });
  }
  return { sigstore: `${JSON.stringify(signed.bundle)}\n`, sig: signed.signatureBase64 };
}
