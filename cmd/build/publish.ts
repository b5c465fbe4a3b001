import { defineCommand } from 'citty';
import { join } from 'node:path';
import { assertSafeVersion } from '../../lib/bundle/layout.ts';
import { log, printJson, printResult } from '../../lib/cli/output.ts';
import { publishRelease } from '../../lib/oci/publish.ts';
import { assertTag, parseRegistryReference } from '../../lib/oci/reference.ts';
import { jsonArgs } from '../_shared.ts';

export default defineCommand({
  meta: {
    name: 'publish',
    description:
      'Push dist/<version>/ to an OCI registry as one release artifact, tagged with the version (and the channel), with its signatures attached as referrers. Credentials: GHCR_PAT or GITHUB_TOKEN with GHCR_USER or GITHUB_ACTOR, else Docker config.json (DOCKER_CONFIG).',
  },
  args: {
    version: { type: 'string', description: 'the release to publish, dist/<version>/', required: true, valueHint: 'V' },
    to: { type: 'string', description: 'the repository, oci://REGISTRY/REPO (no tag: the version and the channel are the tags)', required: true, valueHint: 'oci://REGISTRY/REPO' },
    channel: { type: 'string', description: 'also tag it with this channel (e.g. stable), moved last', valueHint: 'C' },
    out: { type: 'string', description: 'the folder of releases holding <version>/', default: 'dist', valueHint: 'DIR' },
    ...jsonArgs,
  },
  async run({ args }) {
    const version = assertSafeVersion(args.version);
    const to = parseRegistryReference(args.to, '--to');
    const channel = args.channel === undefined ? undefined : assertTag(args.channel, '--channel');
    const result = await publishRelease({ version, releaseDir: join(args.out, version), to, channel, log: (line) => log().info(line) });
    if (args.json) printJson({ ok: true, version, ...result });
    printResult(`published ${version} as ${result.reference} (tags: ${result.tags.join(', ')}; referrers via ${result.referrers.via})`, { json: Boolean(args.json) });
  },
});
