import { defineCommand } from 'citty';
import { log, printJson } from '../../lib/cli/output.ts';
import { assertSafeVersion } from '../../lib/bundle/layout.ts';
import { ContainaiError } from '../../lib/errors.ts';
import { registryAuthFromEnv, type RegistryAuth } from '../../lib/images/auth.ts';
import { buildImage, devReference, type BuildOutput, type BuiltImage } from '../../lib/images/build.ts';
import { DEFAULT_IMAGE_SET_FILE, proxyImage, readImageSet, selectImages, type ImageSpec } from '../../lib/images/config.ts';
import { pushImage, writeImagesRecord, type ImagesRecord, type PushedImage } from '../../lib/images/push.ts';
import { digestKey, imageReference, readProfile, updateProfile } from '../../lib/profile.ts';
import { runSteps, type Step } from '../../lib/steps.ts';
import { jsonArgs, listArg } from '../_shared.ts';
import type Docker from 'dockerode';

/** Builds and pushes stream for minutes with long quiet spells (a big layer going up): only a hung engine should time out. */
const ENGINE_IDLE_TIMEOUT_MS = 10 * 60_000;

const imageSetArgs = {
  'image-set': { type: 'string', description: 'the file that declares the images', default: DEFAULT_IMAGE_SET_FILE, valueHint: 'FILE' },
} as const;

/** The engine, after refusing Podman the same way check-health does. */
async function dockerEngine(): Promise<Docker> {
  const { connectDocker } = await import('../../lib/engine/connect.ts');
  const { assertDockerEngine } = await import('../../lib/engine/identify.ts');
  await assertDockerEngine();
  return connectDocker({ timeoutMs: ENGINE_IDLE_TIMEOUT_MS });
}

const engineOutput: BuildOutput = (_image, line) => log().log(`  ${line}`);

interface BuildContext {
  engine?: Docker;
  built: BuiltImage[];
}

function buildSteps<C extends BuildContext>(images: ImageSpec[], referenceOf: (name: string) => string): Step<C>[] {
  return images.map((image) => ({
    name: `build:${image.name}`,
    title: `build ${image.name} as ${referenceOf(image.name)}`,
    async run(c) {
      const base = image.from ? referenceOf(image.from) : undefined;
      c.built.push(await buildImage(c.engine!, image, referenceOf(image.name), base, engineOutput));
    },
  }));
}

const build = defineCommand({
  meta: { name: 'build', description: 'Build the selected agents, their bases and the proxy as containai-dev-<name>:devlocal (dev only; never pushes).' },
  args: {
    agents: { type: 'string', description: 'agents to build, comma-separated (default: all of the image set)', valueHint: 'copilot,codex,claude' },
    ...imageSetArgs,
    ...jsonArgs,
  },
  async run({ args }) {
    const set = await readImageSet(args['image-set']);
    const agents = listArg(args.agents).flatMap((a) => a.split(',')).map((a) => a.trim()).filter(Boolean);
    const images = selectImages(set, agents);
    if (!proxyImage(set)) log().warn(`${set.source} declares no proxy image: "images push" will refuse this set`);
    const ctx: BuildContext = { built: [] };
    ctx.engine = await dockerEngine();
    await runSteps(buildSteps(images, devReference), ctx);
    log().success(`built ${ctx.built.map((b) => b.reference).join(', ')}`);
    if (args.json) printJson({ ok: true, images: ctx.built });
  },
});

interface PushContext extends BuildContext {
  images: ImageSpec[];
  auth: RegistryAuth;
  pushed: PushedImage[];
  record?: ImagesRecord;
}

/** A push that failed after others went through: say which are in the registry and that no record was written. */
function partlyPushed(err: unknown, pushed: PushedImage[]): unknown {
  if (!(err instanceof ContainaiError)) return err;
  return new ContainaiError(err.code, err.message, {
    cause: err.cause,
    hint: `${err.hint ? `${err.hint}; ` : ''}already pushed: ${pushed.map((p) => p.name).join(', ')} (no images.json written; rerun the push once fixed)`,
    details: { ...err.details, pushed },
  });
}

const push = defineCommand({
  meta: {
    name: 'push',
    description: 'Build every image of the set as <REGISTRY>/<IMAGE_PREFIX>-<name>:<IMAGE_TAG> from the prod profile, push them all, and record their digests.',
  },
  args: {
    version: { type: 'string', description: 'the release the digests are recorded for (default: IMAGE_TAG)', valueHint: 'V' },
    out: { type: 'string', description: 'output folder; the record goes to <out>/<version>/images.json', default: 'dist', valueHint: 'DIR' },
    'stamp-digests': { type: 'boolean', description: 'write IMAGE_DIGEST_<NAME>=sha256:… into the profile so hosts pin images by digest' },
    file: { type: 'string', description: 'the profile to read (and stamp)', default: 'host/profile.env', valueHint: 'FILE' },
    ...imageSetArgs,
    ...jsonArgs,
  },
  async run({ args }) {
    // Everything that can be refused without the engine or the registry is refused first.
    const profile = await readProfile(args.file);
    if (profile.PROFILE !== 'prod' || !profile.REGISTRY) {
      throw new ContainaiError('INPUT', `images push needs a prod profile with a registry; ${args.file} is PROFILE=${profile.PROFILE}`, {
        hint: 'stamp it in CI with "containai-build profile --profile prod --image-tag vX.Y.Z --registry ghcr.io/owner ..."; for local images use "images build"',
      });
    }
    const version = assertSafeVersion(args.version ?? profile.IMAGE_TAG);
    const set = await readImageSet(args['image-set']);
    if (!proxyImage(set)) {
      throw new ContainaiError('INPUT', `no proxy image in ${set.source}: refusing to push any image`, {
        hint: 'hosts cannot run agents without the proxy: declare it with "kind": "proxy" in the image set',
      });
    }
    const ctx: PushContext = {
      images: set.images,
      auth: registryAuthFromEnv(profile.REGISTRY),
      built: [],
      pushed: [],
    };
    ctx.engine = await dockerEngine();
    const referenceOf = (name: string) => imageReference(profile, name);

    // Every image (the proxy among them) is built before the first push: a failed build pushes nothing.
    const steps: Step<PushContext>[] = [
      ...buildSteps<PushContext>(ctx.images, referenceOf),
      ...ctx.images.map(
        (image): Step<PushContext> => ({
          name: `push:${image.name}`,
          title: `push ${referenceOf(image.name)}`,
          async run(c) {
            try {
              c.pushed.push(await pushImage(c.engine!, image.name, referenceOf(image.name), c.auth, (line) => log().log(`  ${line}`)));
            } catch (err) {
              throw c.pushed.length > 0 ? partlyPushed(err, c.pushed) : err;
            }
          },
        }),
      ),
      {
        name: 'record',
        title: `record digests in ${args.out}/${version}/images.json`,
        async run(c) {
          c.record = { version, images: c.pushed };
          await writeImagesRecord(args.out, c.record);
        },
      },
      {
        name: 'stamp',
        title: `stamp IMAGE_DIGEST_* into ${args.file}`,
        skip: () => (args['stamp-digests'] ? false : 'no --stamp-digests'),
        async run(c) {
          await updateProfile(args.file, Object.fromEntries(c.pushed.map((p) => [digestKey(p.name), p.digest])));
        },
      },
    ];
    await runSteps(steps, ctx);
    for (const p of ctx.pushed) log().success(`${p.reference}@${p.digest}`);
    if (args.json) printJson(ctx.record);
  },
});

export default defineCommand({
  meta: { name: 'images', description: 'Build the agent and proxy images (dev) or push them to the registry (CI).' },
  subCommands: { build, push },
});
