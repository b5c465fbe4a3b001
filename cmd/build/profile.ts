import { defineCommand } from 'citty';
import { log, printJson } from '../../lib/cli/output.ts';
import { updateProfile } from '../../lib/profile.ts';
import { jsonArgs } from '../_shared.ts';

/** Flag → profile key, and the environment variable that may give it instead. */
const FIELDS = [
  ['profile', 'PROFILE'],
  ['image-prefix', 'IMAGE_PREFIX'],
  ['image-tag', 'IMAGE_TAG'],
  ['registry', 'REGISTRY'],
] as const;

export default defineCommand({
  meta: {
    name: 'profile',
    description: 'Stamp host/profile.env (PROFILE, IMAGE_PREFIX, IMAGE_TAG, REGISTRY); other keys such as IMAGE_DIGEST_* are kept.',
  },
  args: {
    profile: { type: 'string', description: 'dev or prod (env PROFILE)', valueHint: 'dev|prod' },
    'image-prefix': { type: 'string', description: 'image name prefix, e.g. containai (env IMAGE_PREFIX)', valueHint: 'NAME' },
    'image-tag': { type: 'string', description: 'image tag; prod needs an immutable one such as v1.2.3 (env IMAGE_TAG)', valueHint: 'TAG' },
    registry: { type: 'string', description: 'registry and namespace, e.g. ghcr.io/owner (env REGISTRY)', valueHint: 'HOST/OWNER' },
    file: { type: 'string', description: 'the profile file to write', default: 'host/profile.env', valueHint: 'FILE' },
    ...jsonArgs,
  },
  async run({ args }) {
    const updates: Record<string, string> = {};
    for (const [flag, key] of FIELDS) {
      const value = (args[flag] as string | undefined) ?? process.env[key];
      if (value !== undefined) updates[key] = value;
    }
    const profile = await updateProfile(args.file, updates);
    log().success(`wrote ${args.file} (${profile.PROFILE}, ${profile.REGISTRY ?? 'no registry'}, ${profile.IMAGE_PREFIX}-*:${profile.IMAGE_TAG})`);
    if (args.json) printJson({ ok: true, file: args.file, profile });
  },
});
