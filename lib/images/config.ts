/**
 * The image set: one small JSON file at the root of the repo being released
 * (containai-images.json) that says which images exist, where each one's build
 * context and Dockerfile are, and which other image of the set it is built FROM.
 * Validated with zod at the edge; everything after works on a typed, ordered set.
 *
 * A dependent image receives its parent's reference as the build argument
 * BASE_IMAGE (`ARG BASE_IMAGE` then `FROM ${BASE_IMAGE}`), so the same
 * Dockerfile builds in the dev namespace and in the registry's.
 */
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, join, normalize, relative, resolve } from 'node:path';
import { z } from 'zod';
import { ContainaiError } from '../errors.ts';

export const DEFAULT_IMAGE_SET_FILE = 'containai-images.json';
/** The build argument that carries the parent image's reference. */
export const BASE_IMAGE_ARG = 'BASE_IMAGE';

/**
 * Lower-case words joined by single hyphens: a valid OCI path component, and one
 * that survives the round trip to IMAGE_DIGEST_<NAME> and back (no "_" or ".").
 */
const NAME = /^[a-z0-9]+(?:-[a-z0-9]+)*$/;

/** A path inside the repo, written relative and with forward slashes. */
const relativePath = z
  .string()
  .min(1, 'must not be empty')
  .refine((p) => !isAbsolute(p), 'must be relative to the image-set file')
  .refine((p) => !normalize(p).split('/').includes('..'), 'must not leave the folder of the image-set file');

const imageSchema = z.strictObject({
  name: z.string().regex(NAME, 'must be lower-case letters and digits joined by single hyphens, e.g. copilot'),
  /** base: built only as another image's parent; agent: selectable with --agents; proxy: always built, mandatory to push. */
  kind: z.enum(['base', 'agent', 'proxy'], { error: 'must be base, agent or proxy' }).default('base'),
  context: relativePath,
  dockerfile: relativePath.default('Dockerfile'),
  from: z.string().optional(),
  description: z.string().optional(),
});

const imageSetSchema = z.strictObject({
  $schema: z.string().optional(),
  images: z.array(imageSchema).min(1, 'must list at least one image'),
});

export type ImageKind = 'base' | 'agent' | 'proxy';

export interface ImageSpec {
  name: string;
  kind: ImageKind;
  /** Absolute path of the build context. */
  context: string;
  /** The Dockerfile's path inside the context, with forward slashes. */
  dockerfile: string;
  /** The name of the image of the set this one is built FROM. */
  from?: string;
}

export interface ImageSet {
  /** The file it was read from, for messages. */
  source: string;
  /** Parents before children; otherwise in the file's order. */
  images: ImageSpec[];
}

function invalid(source: string, problems: string[]): ContainaiError {
  return new ContainaiError('INPUT', `invalid image set ${source}: ${problems.join('; ')}`, {
    hint: `fix ${source}: each image needs a name, a context folder, and optionally a dockerfile, a kind and the image it is built from`,
  });
}

/** Validates a parsed image-set document; relative paths resolve against `baseDir`. */
export function parseImageSet(doc: unknown, source: string, baseDir: string): ImageSet {
  const parsed = imageSetSchema.safeParse(doc);
  if (!parsed.success) {
    throw invalid(
      source,
      parsed.error.issues.map((i) => `${i.path.join('.') || 'file'}: ${i.message}`),
    );
  }
  const problems: string[] = [];
  const byName = new Map<string, ImageSpec>();
  const specs = parsed.data.images.map((raw, i): ImageSpec => {
    if (byName.has(raw.name)) problems.push(`images.${i}.name: "${raw.name}" is declared twice`);
    const spec: ImageSpec = {
      name: raw.name,
      kind: raw.kind,
      context: resolve(baseDir, normalize(raw.context)),
      dockerfile: normalize(raw.dockerfile).split('\\').join('/'),
      from: raw.from,
    };
    byName.set(raw.name, spec);
    return spec;
  });
  specs.forEach((image, i) => {
    if (image.from === undefined) return;
    if (image.from === image.name) problems.push(`images.${i}.from: "${image.name}" cannot be built from itself`);
    else if (!byName.has(image.from)) {
      problems.push(`images.${i}.from: "${image.from}" is not an image of the set (known: ${[...byName.keys()].join(', ')})`);
    }
  });
  const proxies = [...byName.values()].filter((image) => image.kind === 'proxy');
  if (proxies.length > 1) problems.push(`images: only one image may be the proxy (found ${proxies.map((p) => p.name).join(', ')})`);
  if (problems.length > 0) throw invalid(source, problems);
  return { source, images: dependencyOrder([...byName.values()], source) };
}

/**
 * Parents before children, keeping the file's order among images that do not
 * depend on each other. A cycle is refused with its path spelled out.
 */
export function dependencyOrder(images: ImageSpec[], source = 'the image set'): ImageSpec[] {
  const byName = new Map(images.map((image) => [image.name, image]));
  const ordered: ImageSpec[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (image: ImageSpec, path: string[]) => {
    const seen = state.get(image.name);
    if (seen === 'done') return;
    if (seen === 'visiting') {
      const cycle = [...path.slice(path.indexOf(image.name)), image.name];
      throw new ContainaiError('INPUT', `invalid image set ${source}: images are built from each other in a cycle: ${cycle.join(' -> ')}`, {
        hint: 'remove one "from" so that every chain of images ends at one built FROM outside the set',
      });
    }
    state.set(image.name, 'visiting');
    const parent = image.from === undefined ? undefined : byName.get(image.from);
    if (image.from !== undefined && !parent) {
      throw new ContainaiError('INPUT', `invalid image set ${source}: "${image.name}" is built from unknown image "${image.from}"`);
    }
    if (parent) visit(parent, [...path, image.name]);
    state.set(image.name, 'done');
    ordered.push(image);
  };
  for (const image of images) visit(image, []);
  return ordered;
}

export async function readImageSet(path: string): Promise<ImageSet> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new ContainaiError('NOT_FOUND', `cannot read image set ${path}: ${(err as NodeJS.ErrnoException).code ?? err}`, {
      cause: err,
      hint: `run from the root of the repo that holds ${DEFAULT_IMAGE_SET_FILE}, or pass --image-set FILE`,
    });
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new ContainaiError('INPUT', `invalid image set ${path}: not JSON (${(err as Error).message})`, { cause: err });
  }
  return parseImageSet(doc, path, dirname(resolve(path)));
}

/** The parents of an image, nearest first. */
function ancestors(set: ImageSet, image: ImageSpec): ImageSpec[] {
  const byName = new Map(set.images.map((i) => [i.name, i]));
  const chain: ImageSpec[] = [];
  for (let parent = image.from ? byName.get(image.from) : undefined; parent; parent = parent.from ? byName.get(parent.from) : undefined) {
    chain.push(parent);
  }
  return chain;
}

export function proxyImage(set: ImageSet): ImageSpec | undefined {
  return set.images.find((image) => image.kind === 'proxy');
}

export function agentNames(set: ImageSet): string[] {
  return set.images.filter((image) => image.kind === 'agent').map((image) => image.name);
}

/**
 * The images to build for a selection of agents (all of them when none is
 * given): those agents, every image they are built from, and the proxy with
 * its parents. Returned in build order.
 */
export function selectImages(set: ImageSet, agents?: string[]): ImageSpec[] {
  const known = agentNames(set);
  const wanted = agents && agents.length > 0 ? agents : known;
  const unknown = wanted.filter((name) => !known.includes(name));
  if (unknown.length > 0) {
    throw new ContainaiError('INPUT', `unknown agent${unknown.length > 1 ? 's' : ''} ${unknown.map((n) => `"${n}"`).join(', ')} in --agents`, {
      hint: `the agents of ${set.source} are: ${known.join(', ') || '(none)'}`,
    });
  }
  const chosen = new Set<string>();
  const roots = set.images.filter((image) => wanted.includes(image.name) || image.kind === 'proxy');
  for (const image of roots) {
    chosen.add(image.name);
    for (const parent of ancestors(set, image)) chosen.add(parent.name);
  }
  return set.images.filter((image) => chosen.has(image.name));
}

/** For messages: where the context is, relative to the working directory when that is shorter. */
export function displayPath(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel && !rel.startsWith('..') && rel.length < path.length ? rel : path;
}

export function dockerfilePath(image: ImageSpec): string {
  return join(image.context, image.dockerfile);
}
