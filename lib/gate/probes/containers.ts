/**
 * containers: the profile's containers run the image digests the release
 * pinned (IMAGE_DIGEST_* of current/host/profile.env) and do not restart.
 *
 * Which containers: those created from one of the profile's repositories (by
 * the reference they were created with) or from a pinned image. Each one that
 * is up, or should be (exited under restart policy always/unless-stopped),
 * must be running, run the pinned image, and keep its RestartCount: a
 * container whose command exits under policy "always" is a crash loop, and its
 * count grows. Exited containers under other policies are history (a one-shot
 * agent run) and are not judged. No container at all fails: the probe would
 * otherwise pass on a host where nothing runs. Asked over the Engine API as
 * lib/engine/connect.ts does it (no dockerode: a probe round must stay cheap).
 */
import { z } from 'zod';
import { describeCause, isContainaiError } from '../../errors.ts';
import { expectedImages } from '../../health/profile.ts';
import { printableName } from '../../text.ts';
import { COMMON_FIELDS, type ProbeKind } from '../kind.ts';
import type { ContainersProbe, ProbeOutcome } from '../types.ts';

const schema = z.strictObject({ kind: z.literal('containers'), ...COMMON_FIELDS });

const listSchema = z.array(z.object({ Id: z.string(), Image: z.string().optional(), ImageID: z.string().optional() }).loose());
const inspectSchema = z
  .object({
    Id: z.string(),
    Name: z.string().optional(),
    Image: z.string().optional(),
    RestartCount: z.number().int().optional(),
    State: z.object({ Status: z.string().optional() }).loose().optional(),
    HostConfig: z.object({ RestartPolicy: z.object({ Name: z.string().optional() }).loose().nullish() }).loose().optional(),
  })
  .loose();
const imageSchema = z.object({ Id: z.string() }).loose();

const SHOULD_RUN = new Set(['always', 'unless-stopped']);

/** The repository of a reference: host:port/path/name[:tag][@digest] without tag and digest. */
export function repositoryOf(reference: string): string {
  const noDigest = reference.split('@')[0] ?? reference;
  const slash = noDigest.lastIndexOf('/');
  const colon = noDigest.lastIndexOf(':');
  return colon > slash ? noDigest.slice(0, colon) : noDigest;
}

const short = (id: string) => id.replace(/^sha256:/, '').slice(0, 12);

async function run(_probe: ContainersProbe, ctx: Parameters<ProbeKind<ContainersProbe>['run']>[1]): Promise<ProbeOutcome> {
  let images;
  try {
    images = expectedImages(await ctx.health.profile());
  } catch (err) {
    return { ok: false, message: `no profile to read the pinned images from: ${isContainaiError(err) ? err.message : describeCause(err)}` };
  }
  if (images.length === 0) return { ok: false, message: 'the profile pins no image (IMAGE_DIGEST_*): there is nothing to compare the containers with' };
  const engine = await ctx.health.engine();
  if (engine.identity.kind !== 'docker') return { ok: false, message: 'the engine is not Docker (see the engine check)' };
  // The image id each pinned digest names here: what a container created from it reports as its Image.
  const pinned = new Map<string, { name: string; ref: string; id?: string }>();
  await Promise.all(
    images.map(async ({ name, ref }) => {
      const res = await engine.api.get(`/images/${ref}/json`, `image ${ref}`);
      const parsed = imageSchema.safeParse(res.body);
      pinned.set(repositoryOf(ref), { name, ref, id: res.status === 404 || !parsed.success ? undefined : parsed.data.Id });
    }),
  );
  const missing = [...pinned.values()].filter((p) => !p.id);
  const byId = new Map([...pinned.values()].filter((p) => p.id).map((p) => [p.id as string, p]));
  const list = listSchema.safeParse((await engine.api.get('/containers/json?all=1', 'the container list')).body);
  if (!list.success) return { ok: false, message: 'the engine answered the container list with something else' };
  const mine = list.data.flatMap((c) => {
    const image = (c.Image && pinned.get(repositoryOf(c.Image))) || (c.ImageID ? byId.get(c.ImageID) : undefined);
    return image ? [{ id: c.Id, image }] : [];
  });
  const problems: string[] = [];
  const observed: Record<string, number> = {};
  let judged = 0;
  for (const { id, image } of mine) {
    const res = await engine.api.get(`/containers/${id}/json`, `container ${short(id)}`);
    const c = inspectSchema.safeParse(res.body);
    if (res.status === 404 || !c.success) continue; // removed since the list
    const name = printableName((c.data.Name ?? short(id)).replace(/^\//, ''));
    const status = c.data.State?.Status ?? 'unknown';
    const policy = c.data.HostConfig?.RestartPolicy?.Name ?? '';
    const up = ['running', 'restarting', 'paused'].includes(status);
    if (!up && !SHOULD_RUN.has(policy)) continue;
    judged += 1;
    const count = c.data.RestartCount ?? 0;
    observed[id] = count;
    const base = ctx.baseline?.[id];
    if (status !== 'running') problems.push(`${name} is ${printableName(status)}`);
    else if (base !== undefined && count > base) problems.push(`${name} restarted ${count - base} time${count - base === 1 ? '' : 's'} during the trial`);
    if (image.id && c.data.Image !== image.id) problems.push(`${name} runs image ${short(c.data.Image ?? '?')}, not the pinned ${image.ref}`);
  }
  if (missing.length > 0) problems.push(`pinned image${missing.length === 1 ? '' : 's'} not in the engine: ${missing.map((m) => m.ref).join(', ')}`);
  if (judged === 0) problems.push(`no container runs the profile's images (${[...pinned.values()].map((p) => p.name).join(', ')})`);
  if (problems.length > 0) return { ok: false, message: problems.slice(0, 3).join('; ') + (problems.length > 3 ? ` (+${problems.length - 3} more)` : ''), observed };
  return { ok: true, message: `${judged} container${judged === 1 ? '' : 's'} running the pinned images, none restarting`, observed };
}

export const containersProbe: ProbeKind<ContainersProbe> = {
  kind: 'containers',
  schema,
  async prepare(_fields, common) {
    return { ...common, kind: 'containers' };
  },
  run,
  describe: () => "the profile's containers",
};
