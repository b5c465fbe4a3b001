/**
 * Builds a real release with the compiled containai-build, fast: a small host
 * tree, small stand-ins for the two agents (a valid ELF header for each
 * architecture, so package accepts them, and a few bytes), and --skip-sbom
 * unless told otherwise. Any test that needs dist/<version>/ (install, verify,
 * repack, sign, check-health) can call makeRelease and get the paths back.
 * A test that must run the agent uses the real ones in dist/ (agentDir: DIST).
 */
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { AGENT_ARCHES, type AgentArch, agentAssetName } from '../../lib/bundle/layout.ts';
import { build, tempDir, type RunResult } from './cli.ts';
import { keyDsseBundle, makeKeyPair, sha256Hex, SLSA } from './signing.ts';

/** A file's content, or its content and mode, or a symlink. */
export type TreeSpec = Record<string, string | { content: string; mode: number } | { symlink: string }>;

export const SMALL_HOST_TREE: TreeSpec = {
  'profile.env': 'PROFILE=dev\nIMAGE_PREFIX=containai-dev\nIMAGE_TAG=devlocal\n',
  'utils/health.sh': { content: '#!/bin/sh\necho healthy\n', mode: 0o755 },
  'utils/README.txt': 'helper scripts\n',
  'utils/latest': { symlink: 'health.sh' },
};

export interface ReleaseOptions {
  version?: string;
  /** A host tree: a folder to use as it is, or files to write (default SMALL_HOST_TREE). */
  hostTree?: string | TreeSpec;
  /** Where dist/ goes (default: a new temp folder). */
  out?: string;
  /** The folder holding containai-host-linux-x64 and -arm64 (default: stand-ins from fakeAgents). */
  agentDir?: string;
  /** More flags for package, e.g. ['--attestation', FILE]; --skip-sbom is added unless --sbom is here. */
  args?: string[];
  env?: Record<string, string | undefined>;
}

export interface Release {
  version: string;
  /** <out>/<version> */
  dir: string;
  out: string;
  /** The project folder package ran in (host/ and README.md live there). */
  project: string;
  payload: string;
  payloadSha256: string;
  /** SHA256SUMS and release.json beside the payload (the same bytes as inside it). */
  sums: string;
  releaseJson: string;
  sbom: string;
  /** The agents in dist/<version>/ and their sums. */
  agents: Record<AgentArch, string>;
  agentSums: string;
  bundle: string;
  result: RunResult;
}

export function writeTree(root: string, spec: TreeSpec): void {
  mkdirSync(root, { recursive: true });
  for (const [path, value] of Object.entries(spec)) {
    const target = join(root, path);
    mkdirSync(dirname(target), { recursive: true });
    if (typeof value === 'string') writeFileSync(target, value);
    else if ('symlink' in value) symlinkSync(value.symlink, target);
    else writeFileSync(target, value.content, { mode: value.mode });
  }
}

/** A project folder: host/ from the spec (or a copy-free pointer to a given folder via --host-dir) and a README.md. */
export function makeProject(hostTree: string | TreeSpec = SMALL_HOST_TREE): { project: string; hostDir: string } {
  const project = tempDir('cai-project-');
  writeFileSync(join(project, 'README.md'), '# test project\n');
  if (typeof hostTree === 'string') return { project, hostDir: hostTree };
  writeTree(join(project, 'host'), hostTree);
  return { project, hostDir: join(project, 'host') };
}

export interface ElfShape {
  /** e_machine: 62 x86-64, 183 aarch64. */
  machine: number;
  /** EI_CLASS: 2 for 64-bit (default), 1 for 32-bit. */
  elfClass?: number;
  /** EI_DATA: 1 little-endian (default), 2 big-endian. */
  data?: number;
  /** e_type: 2 ET_EXEC (default), 3 ET_DYN. */
  type?: number;
}

/** A 64-byte ELF header of the given shape, then a line of text: enough for package's check, not a program. */
export function elfStandIn(shape: ElfShape, text: string): Buffer {
  const header = Buffer.alloc(64);
  header.writeUInt32BE(0x7f454c46, 0);
  header[4] = shape.elfClass ?? 2;
  header[5] = shape.data ?? 1;
  header[6] = 1; // EI_VERSION
  header.writeUInt16LE(shape.type ?? 2, 16);
  header.writeUInt16LE(shape.machine, 18);
  header.writeUInt32LE(1, 20); // e_version
  header.writeUInt16LE(64, 52); // e_ehsize
  return Buffer.concat([header, Buffer.from(text)]);
}

export const AGENT_MACHINE: Record<AgentArch, number> = { x64: 62, arm64: 183 };

/** A folder with stand-ins for containai-host-linux-x64 and -arm64 (0755), as --agent-dir takes it. */
export function fakeAgents(dir = tempDir('cai-agents-')): string {
  for (const arch of AGENT_ARCHES) {
    writeFileSync(join(dir, agentAssetName(arch)), elfStandIn({ machine: AGENT_MACHINE[arch] }, `containai-host stand-in for linux-${arch}\n`), { mode: 0o755 });
  }
  return dir;
}

/** Runs the package command and returns the release's paths; throws with the output if it fails. */
export async function makeRelease(options: ReleaseOptions = {}): Promise<Release> {
  const version = options.version ?? 'v1.2.3';
  const { project, hostDir } = makeProject(options.hostTree);
  const out = options.out ?? join(tempDir('cai-release-'), 'dist');
  const extra = options.args ?? [];
  const args = [
    'package',
    '--version', version,
    '--out', out,
    '--host-dir', hostDir,
    '--agent-dir', options.agentDir ?? fakeAgents(),
    ...(extra.includes('--sbom') ? [] : ['--skip-sbom']),
    ...extra,
  ];
  const result = await build(args, { cwd: project, env: { SOURCE_DATE_EPOCH: '1700000000', ...options.env } });
  if (result.code !== 0) throw new Error(`containai-build package failed (${result.code}):\n${result.stderr}`);
  const dir = join(out, version);
  return {
    version,
    dir,
    out,
    project,
    payload: join(dir, 'payload.tar.gz'),
    payloadSha256: join(dir, 'payload.sha256'),
    sums: join(dir, 'SHA256SUMS'),
    releaseJson: join(dir, 'release.json'),
    sbom: join(dir, 'sbom.json'),
    agents: { x64: join(dir, agentAssetName('x64')), arm64: join(dir, agentAssetName('arm64')) },
    agentSums: join(dir, 'containai-host.SHA256SUMS'),
    bundle: join(dir, `containai-${version}.tar.gz`),
    result,
  };
}

/** An in-toto statement naming each subject (name → sha256 hex), as the release workflow's one attestation does. */
export function releaseStatement(subjects: Record<string, string>): Buffer {
  return Buffer.from(
    JSON.stringify({
      _type: 'https://in-toto.io/Statement/v1',
      subject: Object.entries(subjects).map(([name, sha256]) => ({ name, digest: { sha256 } })),
      predicateType: SLSA,
      predicate: {},
    }),
  );
}

/** attestation.intoto.jsonl text: one key-signed DSSE bundle over releaseStatement(subjects). */
export function attestationFor(subjects: Record<string, string>): string {
  return `${JSON.stringify(keyDsseBundle(makeKeyPair('ecdsa'), releaseStatement(subjects)))}\n`;
}

/** The subjects CI attests for a release folder: SHA256SUMS, payload.tar.gz, containai-host.SHA256SUMS and both agents. */
export function releaseSubjects(rel: Pick<Release, 'dir'>): Record<string, string> {
  const names = ['SHA256SUMS', 'payload.tar.gz', 'containai-host.SHA256SUMS', ...AGENT_ARCHES.map(agentAssetName)];
  return Object.fromEntries(names.map((n) => [n, sha256Hex(readFileSync(join(rel.dir, n)))]));
}
