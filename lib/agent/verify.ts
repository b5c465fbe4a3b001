/**
 * Trusting a new agent: containai-host.SHA256SUMS must verify under the
 * policy with the same verifier as a release's manifest (verifyBlob: an
 * attestation, a key-signed bundle, a bare .sig), and then the agent's bytes
 * as written must hash to its line. The architecture is read from the ELF
 * header before the binary is ever run: an arm64 agent on an x64 host (or
 * the other way round, through qemu's binfmt) is refused, not tried.
 */
import { open } from 'node:fs/promises';
import { agentAssetName, type AgentArch } from '../bundle/layout.ts';
import { parseSums } from '../digest.ts';
import { ContainaiError, isContainaiError } from '../errors.ts';
import { keyIdOf, readPinnedKey } from '../trust/keys.ts';
import { namesSigner, type TrustPolicy } from '../trust/policy.ts';
import { trustDirFiles } from '../trust/trust-dir.ts';
import { verifyBlob, type Verdict } from '../trust/verify.ts';
import type { AgentParts } from './source.ts';

export function hostArch(arch: string = process.arch): AgentArch {
  if (arch === 'x64' || arch === 'arm64') return arch;
  throw new ContainaiError('INPUT', `this host's architecture (${arch}) has no containai-host agent`, { hint: 'releases carry x64 and arm64 agents' });
}

export interface VerifiedSums {
  verdict: Verdict;
  /** The sha256 the verified sums give the agent for this architecture. */
  sha256: string;
  asset: string;
}

/** The key hint of a key-signed Sigstore bundle, when there is one. */
function bundleKeyHint(text: string | undefined): string | undefined {
  if (!text) return undefined;
  try {
    const hint = (JSON.parse(text) as { verificationMaterial?: { publicKey?: { hint?: unknown } } }).verificationMaterial?.publicKey?.hint;
    return typeof hint === 'string' && /^[0-9a-f]{64}$/.test(hint) ? hint : undefined;
  } catch {
    return undefined;
  }
}

/**
 * After a rotation the old key is removed: a release signed only by it is refused, and the
 * person reading the refusal should learn that this is why, not only "signed by another key".
 */
async function explainUnpinnedKey(err: ContainaiError, parts: AgentParts, policy: TrustPolicy): Promise<ContainaiError> {
  const hint = bundleKeyHint(parts.signatures.sigstoreBundle);
  if (!hint) return err;
  const files = [...policy.keyFiles, ...(namesSigner(policy) ? [] : trustDirFiles(policy.trustDir, '.pub'))];
  const pinned = await Promise.all(files.map((f) => readPinnedKey(f).then((k) => keyIdOf(k.key), () => undefined)));
  if (pinned.includes(hint)) return err;
  return new ContainaiError('VERIFY', `${err.message}; it was signed by key sha256:${hint.slice(0, 16)}…, which this host does not pin (a key removed after a rotation no longer verifies the releases it alone signed)`, {
    hint: 'take a release signed with a key pinned here (after a rotation, one signed with the new key), or pin the key again if its removal was a mistake',
    cause: err,
    details: err.details,
  });
}

export async function verifyAgentSums(parts: AgentParts, policy: TrustPolicy, arch: AgentArch): Promise<VerifiedSums> {
  let verdict: Verdict;
  try {
    verdict = await verifyBlob(parts.sums, parts.signatures, policy, parts.labels);
  } catch (err) {
    if (isContainaiError(err) && err.code === 'VERIFY') throw await explainUnpinnedKey(err, parts, policy);
    throw err;
  }
  const asset = agentAssetName(arch);
  const entry = parseSums(Buffer.from(parts.sums).toString('utf8'), parts.labels.artifact).find((e) => e.path === asset);
  if (!entry) {
    throw new ContainaiError('NOT_FOUND', `${parts.labels.artifact} lists no ${asset}`, { hint: `the release carries no agent for ${arch} hosts` });
  }
  return { verdict, sha256: entry.sha256, asset };
}

/** The written agent's digest against its verified line; a mismatch is a damaged or swapped download. */
export function checkAgentDigest(written: { sha256: string; bytes: number }, expected: VerifiedSums): void {
  if (written.sha256 !== expected.sha256) {
    throw new ContainaiError('VERIFY', `${expected.asset} does not match its signed sum (got sha256:${written.sha256}, ${written.bytes} bytes; signed sha256:${expected.sha256})`, {
      hint: 'the download was cut short or the file was changed: fetch the release again; nothing was replaced',
    });
  }
}

const EM_X86_64 = 62;
const EM_AARCH64 = 183;
const MACHINE: Record<number, AgentArch> = { [EM_X86_64]: 'x64', [EM_AARCH64]: 'arm64' };

/** The architecture an ELF file is built for, from its header (64-bit little-endian only). */
export async function elfArch(path: string): Promise<AgentArch | string> {
  const handle = await open(path, 'r');
  try {
    const header = Buffer.alloc(20);
    const { bytesRead } = await handle.read(header, 0, 20, 0);
    if (bytesRead < 20 || header.readUInt32BE(0) !== 0x7f454c46) return 'not an ELF program';
    if (header[4] !== 2 || header[5] !== 1) return 'not a 64-bit little-endian ELF program';
    const machine = header.readUInt16LE(18);
    return MACHINE[machine] ?? `ELF machine ${machine}`;
  } finally {
    await handle.close();
  }
}

export async function checkArchitecture(path: string, arch: AgentArch, asset: string): Promise<void> {
  const found = await elfArch(path);
  if (found !== arch) {
    throw new ContainaiError('VERIFY', `${asset} is built for ${found === 'x64' || found === 'arm64' ? found : `something else (${found})`}, not for this ${arch} host`, {
      hint: 'the release put the wrong binary under this name: report it to whoever published the release; nothing was replaced',
    });
  }
}
