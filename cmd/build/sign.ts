import { defineCommand } from 'citty';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { archiveMtime } from '../../lib/archive/write.ts';
import { assertSafeVersion, bundleFileName, PAYLOAD_ARCHIVE } from '../../lib/bundle/layout.ts';
import { checkPayloadHash, unpackBundle } from '../../lib/bundle/read.ts';
import { writeBundle } from '../../lib/bundle/write.ts';
import { log, printJson } from '../../lib/cli/output.ts';
import { ContainaiError } from '../../lib/errors.ts';
import { writeFileAtomic } from '../../lib/fs/atomic.ts';
import { loadSigningKey } from '../../lib/trust/keys.ts';
import { signBlob } from '../../lib/trust/sign.ts';
import { jsonArgs } from '../_shared.ts';

export default defineCommand({
  meta: {
    name: 'sign',
    description: "Sign the bundle's payload.tar.gz with a key: writes payload.sigstore.json (Sigstore bundle) and payload.sig (base64, as cosign sign-blob) into dist/<version>/ and repacks the bundle with them.",
  },
  args: {
    version: { type: 'string', description: 'the release to sign, dist/<version>/', required: true, valueHint: 'V' },
    out: { type: 'string', description: 'output folder holding <version>/', default: 'dist', valueHint: 'DIR' },
    key: {
      type: 'string',
      description: 'private key: a PEM file (PKCS#8, SEC1 or cosign encrypted, password in COSIGN_PASSWORD) or env://VAR',
      default: 'env://COSIGN_KEY',
      valueHint: 'FILE|env://VAR',
    },
    ...jsonArgs,
  },
  async run({ args }) {
    const version = assertSafeVersion(args.version);
    const releaseDir = join(args.out, version);
    const bundlePath = join(releaseDir, bundleFileName(version));
    if (!existsSync(bundlePath)) {
      throw new ContainaiError('NOT_FOUND', `${bundlePath} does not exist`, { hint: `build it first: containai-build package --version ${version}` });
    }
    const key = await loadSigningKey(args.key);
    // Sign the payload inside the bundle (what hosts verify), after checking it against payload.sha256.
    const work = await mkdtemp(join(releaseDir, '.sign-'));
    try {
      const bundle = await unpackBundle(bundlePath, join(work, 'bundle'));
      const payloadSha256 = await checkPayloadHash(bundle);
      const payload = bundle.members[PAYLOAD_ARCHIVE] as string;
      const signed = await signBlob(payload, key);
      if (signed.sha256 !== payloadSha256) throw new ContainaiError('INTERNAL', 'payload.tar.gz changed while it was being signed');
      const sigstorePath = join(releaseDir, 'payload.sigstore.json');
      const sigPath = join(releaseDir, 'payload.sig');
      await writeFileAtomic(sigstorePath, `${JSON.stringify(signed.bundle)}\n`);
      await writeFileAtomic(sigPath, signed.signatureBase64);
      await writeBundle(bundlePath, { ...bundle.members, 'payload.sigstore.json': sigstorePath, 'payload.sig': sigPath }, { mtime: archiveMtime() });
      log().success(`signed ${PAYLOAD_ARCHIVE} (sha256:${payloadSha256}) with ${key.algorithm} key ${key.keyId}; repacked ${bundlePath}`);
      if (args.json) {
        printJson({ ok: true, version, bundle: bundlePath, payloadSha256, keyId: key.keyId, algorithm: key.algorithm, files: [sigstorePath, sigPath] });
      }
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  },
});
