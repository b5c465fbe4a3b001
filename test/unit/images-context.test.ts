/** Build contexts go to the engine as a streamed tar with no owner names and fixed times; missing pieces are refused first. */
import { describe, expect, test } from 'bun:test';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ImageSpec } from '../../lib/images/config.ts';
import { checkContext, contextTarStream } from '../../lib/images/context.ts';
import { tempDir } from '../helpers/cli.ts';

function image(context: string, dockerfile = 'Dockerfile'): ImageSpec {
  return { name: 'proxy', kind: 'proxy', context, dockerfile };
}

describe('build context', () => {
  test('streams every file of the folder, without owners and with one fixed mtime', async () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'etc'));
    writeFileSync(join(dir, 'Dockerfile'), 'FROM scratch\nCOPY etc /etc\n');
    writeFileSync(join(dir, 'etc', 'proxy.conf'), 'listen 3128\n');
    const { Parser } = await import('tar');
    const entries: { path: string; uname?: string; uid?: number; mtime?: Date }[] = [];
    const parser = new Parser({ onReadEntry: (e) => (entries.push({ path: e.path, uname: e.uname, uid: e.uid, mtime: e.mtime }), e.resume()) });
    const stream = await contextTarStream(image(dir));
    await new Promise<void>((resolve, reject) => {
      parser.on('end', resolve);
      parser.on('error', reject);
      stream.pipe(parser as unknown as NodeJS.WritableStream);
    });
    expect(entries.map((e) => e.path.replace(/^\.\//, '')).sort()).toEqual(['', 'Dockerfile', 'etc/', 'etc/proxy.conf'].sort());
    for (const e of entries) {
      expect(e.uname ?? '').toBe('');
      // portable mode leaves folders' mtime out altogether.
      expect(e.mtime?.getTime() ?? 0).toBe(0);
    }
  });

  test('refuses a missing context folder or Dockerfile, naming the image', async () => {
    const dir = tempDir();
    expect(checkContext(image(join(dir, 'nope')))).rejects.toThrow('image "proxy": build context');
    expect(checkContext(image(dir, 'Containerfile'))).rejects.toThrow('image "proxy": no Dockerfile at');
  });
});
