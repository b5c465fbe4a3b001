/** The image-set file: validation, build order from the declared FROM relations, and --agents selection. */
import { describe, expect, test } from 'bun:test';
import { join } from 'node:path';
import { REPO_ROOT } from '../helpers/cli.ts';
import { ContainaiError } from '../../lib/errors.ts';
import { agentNames, parseImageSet, proxyImage, readImageSet, selectImages } from '../../lib/images/config.ts';

const names = (images: { name: string }[]) => images.map((i) => i.name);

function parse(images: unknown[]) {
  return parseImageSet({ images }, 'set.json', '/repo');
}

function refusal(fn: () => unknown): ContainaiError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ContainaiError);
    return err as ContainaiError;
  }
  throw new Error('expected a refusal');
}

describe('image set', () => {
  test("the repo's example set is valid, parents first, with one proxy and three agents", async () => {
    const set = await readImageSet(join(REPO_ROOT, 'containai-images.json'));
    expect(names(set.images)).toEqual(['base', 'agents', 'copilot', 'codex', 'claude', 'proxy']);
    expect(agentNames(set)).toEqual(['copilot', 'codex', 'claude']);
    expect(proxyImage(set)?.name).toBe('proxy');
    expect(set.images[0]!.context).toBe(join(REPO_ROOT, 'images', 'base'));
    expect(set.images[0]!.dockerfile).toBe('Dockerfile');
  });

  test('orders parents before children whatever the order of the file', () => {
    const set = parse([
      { name: 'proxy', kind: 'proxy', context: 'p', from: 'base' },
      { name: 'copilot', kind: 'agent', context: 'c', from: 'agents' },
      { name: 'agents', context: 'a', from: 'base' },
      { name: 'base', context: 'b' },
    ]);
    expect(names(set.images)).toEqual(['base', 'proxy', 'agents', 'copilot']);
  });

  test('refuses a cycle, spelling it out', () => {
    const err = refusal(() =>
      parse([
        { name: 'a', context: 'a', from: 'c' },
        { name: 'b', context: 'b', from: 'a' },
        { name: 'c', context: 'c', from: 'b' },
      ]),
    );
    expect(err.code).toBe('INPUT');
    expect(err.message).toContain('cycle');
    expect(err.message).toContain('a -> c -> b -> a');
  });

  test('refuses an unknown parent and an image built from itself, naming each', () => {
    const err = refusal(() =>
      parse([
        { name: 'a', context: 'a', from: 'nope' },
        { name: 'b', context: 'b', from: 'b' },
      ]),
    );
    expect(err.message).toContain('images.0.from: "nope" is not an image of the set');
    expect(err.message).toContain('images.1.from: "b" cannot be built from itself');
  });

  test('reports every invalid field at once as path: message', () => {
    const err = refusal(() =>
      parse([
        { name: 'Bad_Name', context: '/abs' },
        { name: 'ok', context: '../outside', kind: 'sidecar' },
        { name: 'extra', context: 'x', unexpected: true },
      ]),
    );
    expect(err.message).toContain('images.0.name');
    expect(err.message).toContain('images.0.context: must be relative');
    expect(err.message).toContain('images.1.context: must not leave');
    expect(err.message).toContain('images.1.kind');
    expect(err.message).toContain('images.2');
  });

  test('refuses duplicates, two proxies and an empty set', () => {
    expect(refusal(() => parse([{ name: 'a', context: 'a' }, { name: 'a', context: 'b' }])).message).toContain('declared twice');
    expect(
      refusal(() => parse([{ name: 'p', kind: 'proxy', context: 'a' }, { name: 'q', kind: 'proxy', context: 'b' }])).message,
    ).toContain('only one image may be the proxy');
    expect(refusal(() => parse([])).message).toContain('images');
  });

  test('a missing or non-JSON file is a clear refusal', async () => {
    const missing = await readImageSet('/nonexistent/containai-images.json').catch((e) => e);
    expect(missing.code).toBe('NOT_FOUND');
    expect(missing.hint).toContain('--image-set');
    const dir = (await import('../helpers/cli.ts')).tempDir();
    await Bun.write(join(dir, 'set.json'), '{ not json');
    expect((await readImageSet(join(dir, 'set.json')).catch((e) => e)).message).toContain('not JSON');
  });
});

describe('selecting images to build', () => {
  const set = parse([
    { name: 'base', context: 'b' },
    { name: 'agents', context: 'a', from: 'base' },
    { name: 'copilot', kind: 'agent', context: 'c', from: 'agents' },
    { name: 'codex', kind: 'agent', context: 'x', from: 'agents' },
    { name: 'claude', kind: 'agent', context: 'y', from: 'agents' },
    { name: 'lonely', context: 'l' },
    { name: 'proxy', kind: 'proxy', context: 'p', from: 'base' },
  ]);

  test('no selection: every agent, their bases and the proxy (not unrelated bases)', () => {
    expect(names(selectImages(set))).toEqual(['base', 'agents', 'copilot', 'codex', 'claude', 'proxy']);
  });

  test('one agent: it, its bases and the proxy always', () => {
    expect(names(selectImages(set, ['codex']))).toEqual(['base', 'agents', 'codex', 'proxy']);
  });

  test('an unknown agent (or a base named as an agent) is refused with the list of agents', () => {
    for (const wanted of [['gemini'], ['base']]) {
      const err = refusal(() => selectImages(set, wanted));
      expect(err.message).toContain(`"${wanted[0]}"`);
      expect(err.hint).toContain('copilot, codex, claude');
    }
  });
});
