/**
 * current/host/profile.env validates, and in prod every image it names is in
 * the engine, by digest when IMAGE_DIGEST_* are stamped.
 *
 * Which images: until the image set is declared in one module (images issue),
 * the names are those the profile pins with IMAGE_DIGEST_<NAME>; a prod
 * profile that pins none is a warning, since nothing can be checked.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { imageReference, type Profile } from '../profile.ts';
import { outcomeOfError } from './runner.ts';
import type { EngineProbe, HealthCheck } from './types.ts';

/** The reference to look up: repo@digest when pinned, else repo:tag. */
export function expectedImages(profile: Profile): Array<{ name: string; ref: string }> {
  return Object.entries(profile.digests)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, digest]) => ({ name, ref: imageReference(profile, name).replace(/:[^:/]+$/, `@${digest}`) }));
}

async function missingImages(probe: EngineProbe, images: Array<{ ref: string }>): Promise<string[]> {
  const found = await Promise.all(images.map(async ({ ref }) => ((await probe.api.get(`/images/${ref}/json`, `image ${ref}`)).status === 404 ? ref : undefined)));
  return found.filter((ref): ref is string => ref !== undefined);
}

export const profileCheck: HealthCheck = {
  id: 'profile',
  title: 'profile',
  timeoutMs: 8_000,
  async run(ctx) {
    let profile: Profile;
    try {
      profile = await ctx.profile();
    } catch (err) {
      if (!existsSync(join(ctx.installRoot, 'current'))) return { status: 'skip', message: 'no release installed (see the release check)' };
      return outcomeOfError(err);
    }
    const what = `${profile.PROFILE}: ${profile.REGISTRY ? `${profile.REGISTRY}/` : ''}${profile.IMAGE_PREFIX}-*:${profile.IMAGE_TAG}`;
    if (profile.PROFILE !== 'prod') return { status: 'pass', message: `${what} (images not checked in dev)` };
    const images = expectedImages(profile);
    if (images.length === 0) {
      return { status: 'warn', message: `${what}, but no IMAGE_DIGEST_* pinned: images not checked`, fix: 'release with "containai-build images push --stamp-digests" so hosts pin images by digest' };
    }
    let probe: EngineProbe;
    try {
      probe = await ctx.engine();
    } catch {
      return { status: 'warn', message: `${what}; images not checked: no engine (see the engine check)`, fix: 'fix the engine first' };
    }
    if (probe.identity.kind !== 'docker') return { status: 'warn', message: `${what}; images not checked: not Docker (see the engine check)`, fix: 'fix the engine first' };
    const missing = await missingImages(probe, images);
    if (missing.length > 0) {
      return {
        status: 'fail',
        message: `${missing.length} of ${images.length} images missing from the engine: ${missing.join(', ')}`,
        fix: `pull them: docker pull ${missing[0]}`,
        details: { missing },
      };
    }
    return { status: 'pass', message: `${what}, all ${images.length} images present by digest`, details: { images: images.map((i) => i.ref) } };
  },
};
