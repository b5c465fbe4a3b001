import { defineCommand } from 'citty';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { assertSafeVersion, PAYLOAD_ARCHIVE, PAYLOAD_SHA256 } from '../../lib/bundle/layout.ts';
import { log, printJson } from '../../lib/cli/output.ts';
import { parseSingleSum } from '../../lib/digest.ts';
import { ContainaiError } from '../../lib/errors.ts';
import { writeFileAtomic } from '../../lib/fs/atomic.ts';
import { loadSigningKey } from '../../lib/trust/keys.ts';
import { signBlob } from '../../lib/trust/sign.ts';
import { jsonArgs } from '../_shared.ts';

export default defineCommand({
  meta: {
    name: 'sign',
    description: 'Sign payload.tar.gz with a key: writes payload.sigstore.json (Sigstore bundle) and payload.sig (base64, as cosign sign-blob), then repacks the bundle.',
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
    const payload = join(releaseDir, PAYLOAD_ARCHIVE);
    if (!existsSync(payload)) {
      throw new ContainaiError('NOT_FOUND', `${payload} does not exist`, { hint: `build it first: containai-build package --version ${version}` });
    }
    const key = await loadSigningKey(args.key);
    const signed = await signBlob(payload, key);
    // Sign only the payload that payload.sha256 names: a payload changed after packaging is not signed.
    const expected = parseSingleSum(await readFile(join(releaseDir, PAYLOAD_SHA256), 'utf8').catch(() => ''), PAYLOAD_ARCHIVE, PAYLOAD_SHA256);
    if (expected !== signed.sha256) {
      throw new ContainaiError('VERIFY', `${payload} does not match ${PAYLOAD_SHA256}; refusing to sign it`, { hint: 'rebuild the release with containai-build package' });
    }
    await writeFileAtomic(join(releaseDir, 'payload.sigstore.json'), `${JSON.stringify(signed.bundle)}\n`);
    await writeFileAtomic(join(releaseDir, 'payload.sig'), signed.signatureBase64);
    log().success(`signed ${payload} (sha256:${signed.sha256}) with ${key.algorithm} key ${key.keyId}`);
    // TODO(issue 4): repack the bundle through lib/bundle/write.ts once it lands.
    log().warn(`the bundle is not repacked yet: run containai-build repack --version ${version}`);
    if (args.json) printJson({ ok: true, version, sha256: signed.sha256, keyId: key.keyId, algorithm: key.algorithm, files: ['payload.sigstore.json', 'payload.sig'] });
  },
});
