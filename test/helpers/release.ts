/**
 * Builds a real release with the compiled containai-build, fast: a small host
 * tree, a tiny stand-in for containai-host, and --skip-sbom unless told
 * otherwise. Any test that needs dist/<version>/ (install, verify, repack,
 * check-health) can call makeRelease and get the paths back.
 */
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { build, tempDir, type RunResult } from './cli.ts';

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
  /** The file shipped as tools/containai-host (default: a small shell script). */
  hostBinary?: string;
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
  sbom: string;
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

export function fakeHostBinary(dir = tempDir('cai-hostbin-')): string {
  const path = join(dir, 'containai-host');
  writeFileSync(path, '#!/bin/sh\necho "containai-host (test stand-in)"\n', { mode: 0o755 });
  return path;
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
    '--host-binary', options.hostBinary ?? fakeHostBinary(),
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
    sbom: join(dir, 'sbom.json'),
    bundle: join(dir, `containai-${version}.tar.gz`),
    result,
  };
}
