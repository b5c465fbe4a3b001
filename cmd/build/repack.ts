import { defineCommand } from 'citty';
import { readFile, realpath } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { archiveMtime } from '../../lib/archive/write.ts';
import { ATTESTATION_FILE, assertSafeVersion, bundleFileName, COSIGN_FILE, TRUSTED_ROOT_FILE } from '../../lib/bundle/layout.ts';
import { checkMember } from '../../lib/bundle/write.ts';
import { log, printJson } from '../../lib/cli/output.ts';
import { usageError } from '../../lib/errors.ts';
import { placeExecutable } from '../../lib/payload/agents.ts';
import { assertAttestationCoversSums } from '../../lib/payload/attestation.ts';
import { checkReleaseFolder, updateReleaseFolder } from '../../lib/payload/folder.ts';
import type { ExtraMember } from '../../lib/payload/release.ts';
import { bundleExtraArgs, extraMembers, jsonArgs, releaseOutArgs } from '../_shared.ts';

export default defineCommand({
  meta: {
    name: 'repack',
    description:
      "Add or replace attestation.intoto.jsonl, cosign and trusted_root.json in dist/<version>/ and rebuild the bundle from that folder, after checking payload.tar.gz against payload.sha256 and SHA256SUMS against payload/SHA256SUMS; payload.tar.gz's bytes never change.",
  },
  args: {
    ...releaseOutArgs,
    // No default here: repack rewrites a release that exists, so it is named.
    version: { type: 'string', description: 'the release to repack, dist/<version>/ (required), e.g. v1.2.3', valueHint: 'V' },
    ...bundleExtraArgs,
    ...jsonArgs,
  },
  async run({ args }) {
    if (!args.version) throw usageError('repack needs --version V', 'name the release to repack, e.g. --version v1.2.3');
    const version = assertSafeVersion(args.version);
    const added = extraMembers(args);
    const names = Object.keys(added) as ExtraMember[];
    if (names.length === 0) throw usageError('nothing to add', 'pass --attestation FILE, --cosign-asset FILE or --trusted-root FILE');
    for (const name of names) await checkMember(name, added[name] as string);

    const folder = await checkReleaseFolder(resolve(args.out), version, { bundle: false });
    const attestation = added[ATTESTATION_FILE] ? await readFile(added[ATTESTATION_FILE], 'utf8') : undefined;
    // An attestation a host cannot verify this release with is refused before anything changes.
    if (attestation !== undefined) assertAttestationCoversSums(attestation, `--attestation ${added[ATTESTATION_FILE]}`, folder.sumsSha256);

    const cosign = added[COSIGN_FILE];
    const members = await updateReleaseFolder(
      folder,
      {
        ...(attestation !== undefined ? { [ATTESTATION_FILE]: { data: attestation } } : {}),
        ...(added[TRUSTED_ROOT_FILE] ? { [TRUSTED_ROOT_FILE]: { data: await readFile(added[TRUSTED_ROOT_FILE]) } } : {}),
        // --cosign-asset "$(command -v cosign)" may name a link: the file it names ships.
        ...(cosign ? { [COSIGN_FILE]: { write: async (temp: string) => placeExecutable(await realpath(cosign), temp) } } : {}),
      },
      archiveMtime(),
    );

    log().success(`repacked ${join(args.out, version, bundleFileName(version))}: ${members.join(', ')}`);
    if (args.json) printJson({ ok: true, version, bundle: folder.bundle, sumsSha256: folder.sumsSha256, payloadSha256: folder.payloadSha256, members, added: names });
  },
});
