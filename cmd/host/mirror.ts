import { defineCommand } from 'citty';
import { resolve } from 'node:path';
import { log, printJson, printResult } from '../../lib/cli/output.ts';
import { mirrorReleases } from '../../lib/oci/mirror.ts';
import { parseRegistryReference } from '../../lib/oci/reference.ts';
import { printableName } from '../../lib/text.ts';
import { jsonArgs } from '../_shared.ts';

export default defineCommand({
  meta: {
    name: 'mirror',
    description:
      'Copy a release and its referrers from a registry into an OCI image layout (every blob checked), for hosts with no network: install --from oci-layout:DIR. Without a tag, every release tag of the repository.',
  },
  args: {
    from: { type: 'string', description: 'the release, oci://REGISTRY/REPO[:TAG|@DIGEST]', required: true, valueHint: 'oci://REGISTRY/REPO[:TAG]' },
    to: { type: 'string', description: 'the OCI image layout folder to write (created, or added to)', required: true, valueHint: 'DIR' },
    ...jsonArgs,
  },
  async run({ args }) {
    const from = parseRegistryReference(args.from, '--from');
    const result = await mirrorReleases({ from, to: resolve(args.to), log: (line) => log().info(line) });
    if (args.json) printJson({ ok: true, ...result });
    const tags = result.releases.map((r) => `${r.tag ?? r.digest} (${r.digest})`).join(', ');
    printResult(`mirrored ${tags} into ${printableName(result.dir)} (${result.fetched} blobs fetched, ${result.present} already there)`, { json: Boolean(args.json) });
  },
});
