/**
 * The one reader of small files root relies on (state files, kept signatures,
 * the manifest): a FIFO planted in a state file's place must not hang root's
 * timer, a link must not be followed, a huge file must not be read.
 */
import { expect, test } from 'bun:test';
import { symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readPlainFile } from '../../lib/fs/plain-file.ts';
import { tempDir } from '../helpers/cli.ts';

test('a plain file is read; an absent one is undefined; a link, a FIFO, a folder and a file over the bound are problems, never followed or waited on', async () => {
  const dir = tempDir('cai-plain-');
  writeFileSync(join(dir, 'ok.json'), '{"a":1}');
  symlinkSync('/etc/passwd', join(dir, 'link.json'));
  expect(Bun.spawnSync(['mkfifo', join(dir, 'fifo.json')]).exitCode).toBe(0);
  writeFileSync(join(dir, 'big.json'), 'x'.repeat(2048));
  expect(await readPlainFile(join(dir, 'ok.json'), 1024)).toEqual({ bytes: Buffer.from('{"a":1}') });
  expect(await readPlainFile(join(dir, 'absent.json'), 1024)).toBeUndefined();
  expect(await readPlainFile(join(dir, 'link.json'), 1024)).toEqual({ problem: 'is a symlink' });
  expect(await readPlainFile(join(dir, 'fifo.json'), 1024)).toEqual({ problem: 'is not a regular file' });
  expect(await readPlainFile(dir, 1024)).toEqual({ problem: 'is not a regular file' });
  expect(await readPlainFile(join(dir, 'big.json'), 1024)).toEqual({ problem: 'is 2048 bytes (at most 1024)' });
});
