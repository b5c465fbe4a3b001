/**
 * Lays out the payload tree on disk (SPEC "The release"): payload/ with host/,
 * and README.md and LICENSE where the project has them. sbom.json, release.json
 * and SHA256SUMS are added by package's later steps. The agent is not in the
 * payload: it is its own asset beside it (lib/payload/agents.ts).
 *
 * Files are hard-linked into the staging folder rather than copied: the staging
 * folder sits beside the output, usually on the same file system as the
 * project. Across file systems we copy, never following a link.
 */
import { constants, linkSync, lstatSync, mkdirSync, symlinkSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { ContainaiError, describeCause } from '../errors.ts';
import { scanTree } from './tree.ts';

export interface PayloadSources {
  /** The host tree, shipped as payload/host/. */
  hostDir: string;
  /** Where README.md and LICENSE are taken from, when present (the project root). */
  projectDir: string;
}

/** Documents shipped beside host/ when the project has them. */
const PROJECT_DOCS = ['README.md', 'LICENSE'] as const;

/** Builds <payloadDir> (whose name is "payload") from the sources; the host tree is checked first, whole. */
export async function stagePayload(sources: PayloadSources, payloadDir: string): Promise<void> {
  const hostEntries = await scanTree(sources.hostDir, 'host', { refusePrivate: true });

  // Synchronous calls, as in scanTree: thousands of links and folders, each a few microseconds.
  const hostOut = join(payloadDir, 'host');
  mkdirSync(hostOut, { recursive: true });
  for (const entry of hostEntries) {
    const target = join(hostOut, entry.path);
    if (entry.type === 'directory') mkdirSync(target);
    else if (entry.type === 'symlink') symlinkSync(entry.linkTarget as string, target);
    else await linkOrCopy(entry.absolute, target);
  }
  for (const doc of PROJECT_DOCS) {
    const source = join(sources.projectDir, doc);
    // lstat: a README.md linked to ~/.ssh/id_ed25519 must not ship what it points at.
    let info;
    try {
      info = lstatSync(source, { throwIfNoEntry: false });
    } catch (err) {
      throw new ContainaiError('INPUT', `cannot read ${source}: ${describeCause(err)}`, { cause: err });
    }
    if (info?.isSymbolicLink()) {
      throw new ContainaiError('INPUT', `${source} is a symlink; project documents ship only as regular files`, {
        hint: `replace ${doc} with the file itself, or remove it`,
      });
    }
    if (info?.isFile()) await linkOrCopy(source, join(payloadDir, doc));
  }
}

/** A hard link where the file system allows one, else a copy that never follows a link. */
export async function linkOrCopy(source: string, target: string): Promise<void> {
  try {
    linkSync(source, target);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EXDEV' && code !== 'EPERM' && code !== 'EMLINK') {
      throw new ContainaiError('INPUT', `cannot stage ${source}: ${describeCause(err)}`, { cause: err });
    }
    await copyNoFollow(source, target);
  }
}

/**
 * The copy across file systems. link(2) never follows a symlink; copyFile would,
 * so the source is opened O_NOFOLLOW and must be a regular file: a path swapped
 * for a link after the tree was checked is refused, not its target copied.
 */
export async function copyNoFollow(source: string, target: string, mode?: number): Promise<void> {
  let input;
  try {
    input = await open(source, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code === 'ELOOP' ? 'it is a symlink' : describeCause(err);
    throw new ContainaiError('INPUT', `cannot stage ${source}: ${why}`, { cause: err });
  }
  try {
    const info = await input.stat();
    if (!info.isFile()) throw new ContainaiError('INPUT', `cannot stage ${source}: not a regular file`);
    const finalMode = mode ?? info.mode & 0o777;
    const output = await open(target, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, finalMode);
    try {
      const chunk = Buffer.allocUnsafe(1 << 20);
      for (;;) {
        const { bytesRead } = await input.read(chunk, 0, chunk.length, null);
        if (bytesRead === 0) break;
        for (let done = 0; done < bytesRead; ) done += (await output.write(chunk, done, bytesRead - done)).bytesWritten;
      }
      // The manifest reads the executable bit from the mode; the umask must not change it.
      await output.chmod(finalMode);
    } finally {
      await output.close();
    }
  } finally {
    await input.close();
  }
}
