/**
 * Reading a small file root relies on (a state file, a kept signature, a
 * manifest) through a descriptor opened without following a link and without
 * blocking (a FIFO planted in its place would hang root's timer), then checked
 * to be a regular file under a size bound. One reader for all of them: each
 * caller words the problem as its own error.
 */
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';

export type PlainFile = { bytes: Buffer } | { problem: string };

/** The file's bytes; undefined when it does not exist; a problem when it is not a plain file under maxBytes. Other errors (EACCES, EIO) are thrown as they are. */
export async function readPlainFile(path: string, maxBytes: number): Promise<PlainFile | undefined> {
  let handle;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'ELOOP') return { problem: 'is a symlink' };
    throw err;
  }
  try {
    const info = await handle.stat();
    if (!info.isFile()) return { problem: 'is not a regular file' };
    if (info.size > maxBytes) return { problem: `is ${info.size} bytes (at most ${maxBytes})` };
    const buffer = Buffer.alloc(info.size);
    let off = 0;
    while (off < buffer.length) {
      const { bytesRead } = await handle.read(buffer, off, buffer.length - off, off);
      if (bytesRead === 0) break;
      off += bytesRead;
    }
    return { bytes: buffer.subarray(0, off) };
  } finally {
    await handle.close();
  }
}
