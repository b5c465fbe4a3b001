/**
 * Where a new agent comes from: a release's asset folder (dist/<version>/),
 * GitHub Releases, or a registry artifact / OCI layout (lib/oci/agent-source.ts).
 * Each gives the same parts: containai-host.SHA256SUMS and its signature
 * material, read small and whole before anything else; then the agent binary
 * for one architecture, streamed into a file the caller names (beside the
 * binary it will replace) and hashed as it is written. Nothing here is
 * trusted: lib/agent/verify.ts decides.
 */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  agentAssetName,
  AGENT_SUMS_FILE,
  AGENT_SUMS_SIG_FILE,
  AGENT_SUMS_SIGSTORE_FILE,
  ATTESTATION_FILE,
  type AgentArch,
} from '../bundle/layout.ts';
import { ContainaiError, describeCause } from '../errors.ts';
import { downloadReleaseAsset } from '../github/download.ts';
import type { BlobSignatures } from '../trust/verify.ts';

/** The sums file lists two binaries; signature material is a few KB (an attestation .jsonl a little more). */
export const SUMS_MAX_BYTES = 64 * 1024;
export const SIGNATURE_MAX_BYTES = 4 * 1024 * 1024;
/** The agent is ~114 MB today; the cap bounds a hostile source, not a real agent. */
export const AGENT_MAX_BYTES = 1024 ** 3;

export interface AgentParts {
  sums: Uint8Array;
  signatures: BlobSignatures;
  /** File names, for messages. */
  labels: { artifact: string; attestation: string; sigstoreBundle: string; sig: string };
}

export interface WrittenAgent {
  bytes: number;
  /** Of the bytes as they were written into the file. */
  sha256: string;
}

export interface AgentSource {
  /** Printable: a folder, or repo@version; no credentials. */
  readonly location: string;
  /** The sums and their signature material, before a byte of the agent is asked for. */
  open(): Promise<AgentParts>;
  /** The agent for arch, written into dest (created exclusively, 0700) and hashed as written. */
  writeAgent(arch: AgentArch, dest: string): Promise<WrittenAgent>;
  close(): Promise<void>;
}

const LABELS = { artifact: AGENT_SUMS_FILE, attestation: ATTESTATION_FILE, sigstoreBundle: AGENT_SUMS_SIGSTORE_FILE, sig: AGENT_SUMS_SIG_FILE };

async function readCapped(path: string, max: number, what: string): Promise<Buffer | undefined> {
  let handle;
  try {
    handle = await open(path, constants.O_RDONLY);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new ContainaiError('NOT_FOUND', `cannot read ${what}: ${describeCause(err)}`, { cause: err });
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw new ContainaiError('INPUT', `${what} is not a regular file`);
    if (st.size > max) throw new ContainaiError('INPUT', `${what} is ${st.size} bytes, more than the ${max} a release's would be`);
    return await handle.readFile();
  } finally {
    await handle.close();
  }
}

const text = (bytes: Uint8Array | undefined) => (bytes === undefined ? undefined : new TextDecoder().decode(bytes));

/** The parts as every source hands them over (a registry source too: lib/oci/agent-source.ts). */
export function partsFrom(sums: Uint8Array | undefined, attestation: Uint8Array | undefined, bundle: Uint8Array | undefined, sig: Uint8Array | undefined, where: string): AgentParts {
  if (!sums) {
    throw new ContainaiError('NOT_FOUND', `${where} has no ${AGENT_SUMS_FILE}`, {
      hint: 'self-update needs a release of the second format (the agent as its own asset, with containai-host.SHA256SUMS)',
    });
  }
  return {
    sums,
    signatures: { attestation: text(attestation), sigstoreBundle: text(bundle), sig: text(sig) },
    labels: LABELS,
  };
}

/** Streams src into a new file dest (exclusive, 0700), hashing every chunk as it is written; fsynced. */
export async function copyHashed(src: string, dest: string, max = AGENT_MAX_BYTES): Promise<WrittenAgent> {
  const input = await open(src, constants.O_RDONLY).catch((err: unknown) => {
    throw new ContainaiError('NOT_FOUND', `cannot read ${src}: ${describeCause(err)}`, { cause: err });
  });
  try {
    const st = await input.stat();
    if (!st.isFile()) throw new ContainaiError('INPUT', `${src} is not a regular file`);
    const output = await open(dest, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o700);
    const hasher = new Bun.CryptoHasher('sha256');
    let bytes = 0;
    try {
      const buffer = Buffer.allocUnsafe(4 << 20);
      for (;;) {
        const { bytesRead } = await input.read(buffer, 0, buffer.length, null);
        if (bytesRead === 0) break;
        bytes += bytesRead;
        if (bytes > max) throw new ContainaiError('INPUT', `${src} is larger than ${max} bytes: not an agent`);
        const chunk = buffer.subarray(0, bytesRead);
        hasher.update(chunk);
        await output.write(chunk);
      }
      await output.sync();
    } finally {
      await output.close();
    }
    return { bytes, sha256: hasher.digest('hex') };
  } finally {
    await input.close();
  }
}

/** dist/<version>/ as `containai-build package` and `sign` leave it. */
export function assetDirSource(dir: string): AgentSource {
  const root = resolve(dir);
  return {
    location: root,
    async open() {
      const [sums, attestation, bundle, sig] = await Promise.all([
        readCapped(join(root, AGENT_SUMS_FILE), SUMS_MAX_BYTES, join(root, AGENT_SUMS_FILE)),
        readCapped(join(root, ATTESTATION_FILE), SIGNATURE_MAX_BYTES, join(root, ATTESTATION_FILE)),
        readCapped(join(root, AGENT_SUMS_SIGSTORE_FILE), SIGNATURE_MAX_BYTES, join(root, AGENT_SUMS_SIGSTORE_FILE)),
        readCapped(join(root, AGENT_SUMS_SIG_FILE), SIGNATURE_MAX_BYTES, join(root, AGENT_SUMS_SIG_FILE)),
      ]);
      return partsFrom(sums, attestation, bundle, sig, root);
    },
    async writeAgent(arch, dest) {
      const src = join(root, agentAssetName(arch));
      return copyHashed(src, dest);
    },
    async close() {},
  };
}

export interface GithubSourceOptions {
  baseUrl: string;
  repo: string;
  version: string;
  token?: string;
}

/** GitHub Releases (or CONTAINAI_GITHUB_URL): the small parts into a private temp folder, the agent straight beside its target. */
export function githubSource(options: GithubSourceOptions): AgentSource {
  let work: string | undefined;
  const fetchSmall = async (asset: string, max: number, required: boolean): Promise<Buffer | undefined> => {
    work ??= await mkdtemp(join(tmpdir(), 'containai-self-update-'));
    const dest = join(work, `${randomBytes(4).toString('hex')}-${asset}`);
    try {
      await downloadReleaseAsset({ ...options, asset, dest, maxBytes: max, deadlineMs: 5 * 60_000 });
    } catch (err) {
      if (!required && err instanceof ContainaiError && err.code === 'NOT_FOUND') return undefined;
      throw err;
    }
    return readFile(dest);
  };
  return {
    location: `${options.repo}@${options.version}`,
    async open() {
      const sums = await fetchSmall(AGENT_SUMS_FILE, SUMS_MAX_BYTES, true);
      const [attestation, bundle, sig] = await Promise.all([
        fetchSmall(ATTESTATION_FILE, SIGNATURE_MAX_BYTES, false),
        fetchSmall(AGENT_SUMS_SIGSTORE_FILE, SIGNATURE_MAX_BYTES, false),
        fetchSmall(AGENT_SUMS_SIG_FILE, SIGNATURE_MAX_BYTES, false),
      ]);
      return partsFrom(sums, attestation, bundle, sig, `release ${options.version} of ${options.repo}`);
    },
    async writeAgent(arch, dest) {
      // downloadReleaseAsset opens dest with "w": make it exist, private, first (exclusive, not through a link).
      await (await open(dest, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o700)).close();
      const result = await downloadReleaseAsset({ ...options, asset: agentAssetName(arch), dest, maxBytes: AGENT_MAX_BYTES });
      return { bytes: result.bytes, sha256: result.sha256 };
    },
    async close() {
      if (work) await rm(work, { recursive: true, force: true });
    },
  };
}

/**
 * A registry artifact (`--from oci://REGISTRY/REPO[:TAG|@DIGEST]`) or an OCI image layout
 * (`--from oci-layout:DIR[:TAG]`): the same parts, from the release artifact's layers.
 * Loaded only when asked for: the OCI client is not on the path of the other sources.
 */
export async function ociSource(from: string): Promise<AgentSource> {
  const { ociAgentSource } = await import('../oci/agent-source.ts');
  return ociAgentSource(from);
}
