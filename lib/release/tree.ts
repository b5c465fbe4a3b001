/**
 * Walking an installed release folder as it is on disk, never following a
 * link: every entry with its type, permission bits, size, link target and
 * identity (the verification stamp's key, lib/release/stamp.ts). This is the
 * disk side's raw facts; what they must be is the verifier's business.
 */
import { lstat, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';

export interface TreeEntry {
  /** Relative, "/"-separated. */
  path: string;
  kind: 'file' | 'dir' | 'symlink' | 'other';
  size: number;
  /** st_mode & 0o7777 (not followed); 0 for links. */
  mode: number;
  /** A link's target, as written. */
  target?: string;
  /** dev:ino:size:mtimeNs:ctimeNs of a file, taken before it is hashed. */
  identity?: string;
}

/** Every entry under root (not root itself). `skip` names top-level entries not to descend into or list. */
export async function walkTree(root: string, skip: ReadonlySet<string> = new Set()): Promise<TreeEntry[]> {
  const out: TreeEntry[] = [];
  const visit = async (rel: string): Promise<void> => {
    const entries = await readdir(rel ? join(root, rel) : root, { withFileTypes: true });
    await Promise.all(
      entries.map(async (entry) => {
        const path = rel ? `${rel}/${entry.name}` : entry.name;
        if (!rel && skip.has(entry.name)) return;
        const abs = join(root, path);
        const info = await lstat(abs, { bigint: true });
        const mode = Number(info.mode & 0o7777n);
        if (info.isDirectory()) {
          out.push({ path, kind: 'dir', size: 0, mode });
          await visit(path);
        } else if (info.isFile()) {
          out.push({ path, kind: 'file', size: Number(info.size), mode, identity: `${info.dev}:${info.ino}:${info.size}:${info.mtimeNs}:${info.ctimeNs}` });
        } else if (info.isSymbolicLink()) {
          out.push({ path, kind: 'symlink', size: 0, mode: 0, target: await readlink(abs) });
        } else {
          out.push({ path, kind: 'other', size: 0, mode });
        }
      }),
    );
  };
  await visit('');
  return out;
}
