import { defineCommand } from 'citty';
import { rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { archiveMtime } from '../../lib/archive/write.ts';
import { checkPayloadHash, unpackBundle } from '../../lib/bundle/read.ts';
import { checkMember, writeBundle } from '../../lib/bundle/write.ts';
import { assertSafeVersion, bundleFileName, type Format1Member } from '../../lib/bundle/layout.ts';
import { log, printJson } from '../../lib/cli/output.ts';
import { usageError } from '../../lib/errors.ts';
import { assertReleaseMatchesBundle, requireBundle, workFolder } from '../../lib/payload/repack.ts';
import type { ExtraMember } from '../../lib/payload/release.ts';
import { bundleExtraArgs, extraMembers, jsonArgs, releaseOutArgs } from '../_shared.ts';

export default defineCommand({
  meta: {
    name: 'repack',
    description:
      "Add or replace attestation.intoto.jsonl, cosign and trusted_root.json in dist/<version>/containai-<version>.tar.gz, after checking payload.sha256; payload.tar.gz's bytes never change.",
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

    const outDir = resolve(args.out);
    const bundlePath = await requireBundle(outDir, version);
    const work = workFolder(outDir, version);
    let members: Partial<Record<Format1Member, string>>;
    let payloadSha256: string;
    try {
      const bundle = await unpackBundle(bundlePath, work);
      payloadSha256 = await checkPayloadHash(bundle);
      await assertReleaseMatchesBundle(join(outDir, version), payloadSha256);
      members = { ...bundle.members, ...added };
      await writeBundle(bundlePath, members, { mtime: archiveMtime() });
    } finally {
      await rm(work, { recursive: true, force: true });
    }

    const list = Object.keys(members).sort();
    log().success(`repacked ${join(args.out, version, bundleFileName(version))}: ${list.join(', ')}`);
    if (args.json) printJson({ ok: true, version, bundle: bundlePath, payloadSha256, members: list, added: names });
  },
});
