/**
 * The host agent, its own release asset (SPEC "The release"): package copies
 * containai-host-linux-x64 and containai-host-linux-arm64 into dist/<version>/
 * and lists them in containai-host.SHA256SUMS, which is signed and attested
 * like SHA256SUMS. Hosts update their agent from these files, so a file that is
 * not the agent for its architecture must never ship under its name: each is
 * checked to be a 64-bit little-endian ELF executable whose e_machine is the
 * architecture its name says, before anything is written and again once it
 * sits in the release folder (where nobody else writes).
 */
import { constants } from 'node:fs';
import { link, lstat, open, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AGENT_ARCHES, AGENT_SUMS_FILE, type AgentArch, agentAssetName } from '../bundle/layout.ts';
import { formatSums } from '../digest.ts';
import { ContainaiError, describeCause } from '../errors.ts';
import { copyNoFollow } from './stage.ts';
import { hashFiles } from './sums.ts';

/** ELF e_machine of each architecture: EM_X86_64 and EM_AARCH64. */
export const ELF_MACHINE: Readonly<Record<AgentArch, number>> = { x64: 62, arm64: 183 };
const MACHINE_NAMES: Readonly<Record<number, string>> = { 3: 'x86 (32-bit)', 40: 'arm (32-bit)', 62: 'x86-64', 183: 'aarch64', 243: 'riscv' };

export interface Agent {
  arch: AgentArch;
  /** The asset's name, containai-host-linux-<arch>. */
  name: string;
  /** Where it was found. */
  source: string;
}

const ELF_HEADER_BYTES = 64;
const ET_EXEC = 2;
const ET_DYN = 3;
const PT_INTERP = 3;
/** Program headers read to tell a PIE executable (ET_DYN with an interpreter) from a shared library. */
const MAX_PROGRAM_HEADERS = 64;

/** The agents in `dir` (--agent-dir, or beside containai-build), each checked; nothing is written. */
export async function findAgents(dir: string, where: string): Promise<Agent[]> {
  const agents: Agent[] = [];
  for (const arch of AGENT_ARCHES) {
    const name = agentAssetName(arch);
    const source = join(dir, name);
    await checkAgentFile(source, arch, where);
    agents.push({ arch, name, source });
  }
  return agents;
}

/** Refuses a path that is missing, a link, not a regular file, or not the ELF executable for `arch`; `where` names its folder. */
export async function checkAgentFile(path: string, arch: AgentArch, where: string): Promise<void> {
  const name = agentAssetName(arch);
  const info = await lstat(path).catch((err: unknown) => {
    throw new ContainaiError('NOT_FOUND', `the agent ${name} is not in ${where} (${describeCause(err)})`, {
      cause: err,
      hint: 'build the agents with "bun scripts/build.ts", or pass --agent-dir DIR holding containai-host-linux-x64 and containai-host-linux-arm64',
    });
  });
  if (info.isSymbolicLink()) {
    throw new ContainaiError('INPUT', `the agent ${path} is a symlink; the agent ships only as a regular file`, {
      hint: 'put the file itself there (a link could point at any file), or pass --agent-dir DIR holding the files',
    });
  }
  if (!info.isFile()) throw new ContainaiError('INPUT', `the agent ${path} is not a regular file`);
  const problem = await elfProblem(path, arch);
  if (problem) {
    throw new ContainaiError('INPUT', `the agent ${path} ${problem}`, {
      hint: `ship the containai-host that "bun scripts/build.ts" compiles for linux-${arch}: a wrong-architecture agent must never ship under this name`,
    });
  }
}

/** Why the file is not a 64-bit little-endian ELF executable for `arch`; undefined when it is. */
export async function elfProblem(path: string, arch: AgentArch): Promise<string | undefined> {
  let handle;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (err) {
    return `cannot be read (${describeCause(err)})`;
  }
  try {
    const header = Buffer.alloc(ELF_HEADER_BYTES);
    const { bytesRead } = await handle.read(header, 0, ELF_HEADER_BYTES, 0);
    if (bytesRead < ELF_HEADER_BYTES || header.readUInt32BE(0) !== 0x7f454c46) return 'is not an ELF executable (no ELF header)';
    if (header[4] !== 2) return 'is a 32-bit ELF, not a 64-bit one';
    if (header[5] !== 1) return 'is a big-endian ELF, not a little-endian one';
    const machine = header.readUInt16LE(18);
    if (machine !== ELF_MACHINE[arch]) {
      const found = MACHINE_NAMES[machine] ?? 'another architecture';
      return `is an ELF for ${found} (e_machine ${machine}), not for linux-${arch} (e_machine ${ELF_MACHINE[arch]})`;
    }
    const type = header.readUInt16LE(16);
    if (type === ET_EXEC) return undefined;
    if (type === ET_DYN && (await hasInterpreter(handle, header))) return undefined;
    return type === ET_DYN ? 'is a shared library, not an executable' : `is not an executable (ELF type ${type})`;
  } finally {
    await handle.close();
  }
}

/** A position-independent executable is ET_DYN with a PT_INTERP program header; a library has none. */
async function hasInterpreter(handle: Awaited<ReturnType<typeof open>>, header: Buffer): Promise<boolean> {
  const offset = Number(header.readBigUInt64LE(32));
  const size = header.readUInt16LE(54);
  const count = Math.min(header.readUInt16LE(56), MAX_PROGRAM_HEADERS);
  if (size < 4 || count === 0 || !Number.isSafeInteger(offset)) return false;
  const table = Buffer.alloc(size * count);
  const { bytesRead } = await handle.read(table, 0, table.length, offset);
  for (let i = 0; i + 4 <= bytesRead && i < size * count; i += size) if (table.readUInt32LE(i) === PT_INTERP) return true;
  return false;
}

/**
 * Puts each agent into the release folder as a 0755 file (a hard link when the source already is
 * one, else a copy that never follows a link), checks it again there, and writes
 * containai-host.SHA256SUMS. Returns the file names written.
 */
export async function placeAgents(agents: readonly Agent[], releaseDir: string): Promise<string[]> {
  const placed: string[] = [];
  for (const agent of agents) {
    const target = join(releaseDir, agent.name);
    await placeExecutable(agent.source, target);
    // Between the first check and the link, the path could have been swapped: what ships is checked.
    await checkAgentFile(target, agent.arch, releaseDir);
    placed.push(target);
  }
  const hashes = await hashFiles(placed);
  await writeFile(join(releaseDir, AGENT_SUMS_FILE), formatSums(agents.map((a, i) => ({ path: a.name, sha256: hashes[i] as string }))), {
    mode: 0o644,
    flag: 'wx',
  });
  return [...agents.map((a) => a.name), AGENT_SUMS_FILE];
}

/** A hard link keeps the source's mode, so it is used only when that is 0755 already. */
export async function placeExecutable(source: string, target: string): Promise<void> {
  const info = await stat(source).catch(() => undefined);
  if (info && (info.mode & 0o7777) === 0o755) {
    try {
      await link(source, target);
      return;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EXDEV' && code !== 'EPERM' && code !== 'EMLINK') {
        throw new ContainaiError('INPUT', `cannot place ${source}: ${describeCause(err)}`, { cause: err });
      }
    }
  }
  await copyNoFollow(source, target, 0o755);
}
