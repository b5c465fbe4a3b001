/**
 * Lays out the payload tree on disk (SPEC "The release"): payload/ with host/,
 * README.md and LICENSE where the project has them, and tools/containai-host.
 * release.json (the version, lib/bundle/manifest.ts) is written by package's
 * stage step; sbom.json and SHA256SUMS are added by their own steps.
 *
 * Files are hard-linked into the staging folder rather than copied (the host
 * binary alone is 100 MB): the staging folder sits beside the output, usually
 * on the same file system as the project. Across file systems we copy.
 */
import { constants } from 'node:fs';
import { link, lstat, mkdir, open, stat, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { type ArchiveEntry } from '../archive/write.ts';
import { FORMAT1_HOST_TOOL, PAYLOAD_TOP, FORMAT1_TOOLS_DIR } from '../bundle/layout.ts';
import { ContainaiError, describeCause } from '../errors.ts';
import { scanTree } from './tree.ts';

export interface PayloadSources {
  /** The host tree, shipped as payload/host/. */
  hostDir: string;
  /** Where README.md and LICENSE are taken from, when present (the project root). */
  projectDir: string;
  /** The containai-host binary, shipped as payload/tools/containai-host. */
  hostBinary: string;
}

/** Documents shipped beside host/ when the project has them. */
const PROJECT_DOCS = ['README.md', 'LICENSE'] as const;

/** Checks the host binary before anything is written: a missing one is the commonest mistake. */
export async function assertHostBinary(path: string): Promise<void> {
  const info = await stat(path).catch((err: unknown) => {
    throw new ContainaiError('NOT_FOUND', `containai-host not found at ${path} (${describeCause(err)})`, {
      cause: err,
      hint: 'build it with "bun scripts/build.ts", or pass --host-binary FILE',
    });
  });
  if (!info.isFile()) throw new ContainaiError('INPUT', `--host-binary ${path} is not a file`);
}

/** Builds <payloadDir> (whose name is "payload") from the sources; the host tree is checked first, whole. */
export async function stagePayload(sources: PayloadSources, payloadDir: string): Promise<void> {
  const hostEntries = await scanTree(sources.hostDir, 'host', { refusePrivate: true });
  await assertHostBinary(sources.hostBinary);

  const hostOut = join(payloadDir, 'host');
  await mkdir(hostOut, { recursive: true });
  for (const entry of hostEntries) {
    const target = join(hostOut, entry.path);
    if (entry.type === 'directory') await mkdir(target);
    else if (entry.type === 'symlink') await symlink(entry.linkTarget as string, target);
    else await linkOrCopy(entry.absolute, target);
  }
  for (const doc of PROJECT_DOCS) {
    const source = join(sources.projectDir, doc);
    // lstat: a README.md linked to ~/.ssh/id_ed25519 must not ship what it points at.
    const info = await lstat(source).catch(() => undefined);
    if (info?.isSymbolicLink()) {
      throw new ContainaiError('INPUT', `${source} is a symlink; project documents ship only as regular files`, {
        hint: `replace ${doc} with the file itself, or remove it`,
      });
    }
    if (info?.isFile()) await linkOrCopy(source, join(payloadDir, doc));
  }
  await mkdir(join(payloadDir, FORMAT1_TOOLS_DIR));
  await linkOrCopy(sources.hostBinary, join(payloadDir, FORMAT1_HOST_TOOL));
}

async function linkOrCopy(source: string, target: string): Promise<void> {
  try {
    await link(source, target);
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
async function copyNoFollow(source: string, target: string): Promise<void> {
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
    const output = await open(target, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, info.mode & 0o777);
    try {
      const chunk = Buffer.allocUnsafe(1 << 20);
      for (;;) {
        const { bytesRead } = await input.read(chunk, 0, chunk.length, null);
        if (bytesRead === 0) break;
        for (let done = 0; done < bytesRead; ) done += (await output.write(chunk, done, bytesRead - done)).bytesWritten;
      }
      // The mode is what payloadEntries reads the executable bit from; the umask must not change it.
      await output.chmod(info.mode & 0o777);
    } finally {
      await output.close();
    }
  } finally {
    await input.close();
  }
}

/**
 * The archive entries of a staged payload, under payload/. Modes are
 * normalised: git records only the executable bit, so the other bits of a
 * checkout depend on the umask of the machine; 0755/0644 makes the payload the
 * same everywhere (and drops setuid, setgid and sticky).
 */
export async function payloadEntries(payloadDir: string): Promise<ArchiveEntry[]> {
  const entries = await scanTree(payloadDir, PAYLOAD_TOP);
  return [
    { path: PAYLOAD_TOP, type: 'directory', mode: 0o755 },
    ...entries.map((e): ArchiveEntry => {
      const path = `${PAYLOAD_TOP}/${e.path}`;
      if (e.type === 'directory') return { path, type: 'directory', mode: 0o755 };
      if (e.type === 'symlink') return { path, type: 'symlink', mode: 0o777, linkTarget: e.linkTarget };
      // The host tool is a program whatever mode the file it came from had.
      const executable = e.path === FORMAT1_HOST_TOOL || (e.mode & 0o111) !== 0;
      return { path, type: 'file', source: e.absolute, mode: executable ? 0o755 : 0o644 };
    }),
  ];
}
