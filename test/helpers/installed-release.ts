/**
 * An installed release built by hand after SPEC "The host", for tests and the
 * benchmark that need one before (or without) running `containai-host install`:
 * releases/<v>/ holding the payload tree (release.json included), SHA256SUMS,
 * the kept bundle and install.json, and `current` pointing at it.
 */
import { chmodSync, copyFileSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatReleaseManifest, RELEASE_FILE } from '../../lib/bundle/manifest.ts';
import { sha256Bytes, formatSums } from '../../lib/digest.ts';

export interface HandInstallOptions {
  version?: string;
  profile?: string;
  /** Files of the payload tree, relative path → content. */
  files?: Record<string, string>;
  /** A binary to place at tools/containai-host (the real one, for timers and benchmarks). */
  hostBinary?: string;
  signer?: 'UNSIGNED' | Record<string, unknown>;
  /** The version release.json names (default: version); null leaves release.json out. */
  payloadVersion?: string | null;
}

export const DEV_PROFILE = 'PROFILE=dev\nIMAGE_PREFIX=containai\nIMAGE_TAG=devlocal\n';

function tar(args: string[], cwd: string): void {
  const r = Bun.spawnSync(['tar', '--sort=name', '--owner=0', '--group=0', '--numeric-owner', '--mtime=@0', ...args], { cwd, stderr: 'pipe' });
  if (r.exitCode !== 0) throw new Error(`tar ${args.join(' ')} failed: ${r.stderr.toString()}`);
}

/** Builds a bundle (payload.tar.gz + payload.sha256) for a payload tree in `payloadDir`; returns the bundle path. */
function makeBundle(workDir: string, payloadParent: string, version: string): { bundle: string; payloadSha256: string } {
  tar(['-czf', join(workDir, 'payload.tar.gz'), 'payload'], payloadParent);
  const payloadSha256 = sha256Bytes(readFileSync(join(workDir, 'payload.tar.gz')));
  writeFileSync(join(workDir, 'payload.sha256'), `${payloadSha256}  payload.tar.gz\n`);
  const bundle = join(workDir, `containai-${version}.tar.gz`);
  tar(['-czf', bundle, 'payload.tar.gz', 'payload.sha256'], workDir);
  return { bundle, payloadSha256 };
}

export function handInstall(root: string, options: HandInstallOptions = {}): { dir: string; version: string } {
  const version = options.version ?? 'v1.0.0';
  const payloadVersion = options.payloadVersion === undefined ? version : options.payloadVersion;
  const files: Record<string, string> = {
    'host/profile.env': options.profile ?? DEV_PROFILE,
    'host/README.md': 'ContainAI host tree\n',
    ...(payloadVersion === null ? {} : { [RELEASE_FILE]: formatReleaseManifest(payloadVersion) }),
    ...options.files,
  };
  const work = join(root, '.work');
  const payload = join(work, 'payload');
  mkdirSync(join(payload, 'tools'), { recursive: true });
  for (const [rel, text] of Object.entries(files)) {
    mkdirSync(join(payload, rel, '..'), { recursive: true });
    writeFileSync(join(payload, rel), text);
  }
  if (options.hostBinary) copyFileSync(options.hostBinary, join(payload, 'tools', 'containai-host'));
  else writeFileSync(join(payload, 'tools', 'containai-host'), '#!/bin/sh\nexit 0\n');
  chmodSync(join(payload, 'tools', 'containai-host'), 0o755);
  const sums = [...Object.keys(files), 'tools/containai-host'].map((path) => ({ path, sha256: sha256Bytes(readFileSync(join(payload, path))) }));
  writeFileSync(join(payload, 'SHA256SUMS'), formatSums(sums));
  const { bundle, payloadSha256 } = makeBundle(work, work, version);

  const dir = join(root, 'releases', version);
  mkdirSync(join(root, 'releases'), { recursive: true });
  tar(['-cf', join(work, 'tree.tar'), '-C', payload, '.'], work);
  mkdirSync(dir);
  Bun.spawnSync(['tar', '-xf', join(work, 'tree.tar'), '-C', dir]);
  copyFileSync(bundle, join(dir, `containai-${version}.tar.gz`));
  writeFileSync(
    join(dir, 'install.json'),
    JSON.stringify({
      version,
      source: bundle,
      bundle: `containai-${version}.tar.gz`,
      bundleSha256: sha256Bytes(readFileSync(bundle)),
      payloadSha256,
      signer: options.signer ?? 'UNSIGNED',
      installedAt: '2026-11-27T00:00:00Z',
      installedBy: 'test',
    }, null, 2),
  );
  Bun.spawnSync(['rm', '-rf', work]);
  symlinkSync(`releases/${version}`, join(root, 'current'));
  return { dir, version };
}

/** Another valid bundle for the same version: the "bundle replaced by another" case. */
export function otherBundle(root: string, version: string): string {
  const work = join(root, '.other');
  mkdirSync(join(work, 'payload', 'host'), { recursive: true });
  writeFileSync(join(work, 'payload', 'host', 'profile.env'), DEV_PROFILE.replace('devlocal', 'other'));
  writeFileSync(join(work, 'payload', RELEASE_FILE), formatReleaseManifest(version));
  const listed = ['host/profile.env', RELEASE_FILE].map((path) => ({ path, sha256: sha256Bytes(readFileSync(join(work, 'payload', path))) }));
  writeFileSync(join(work, 'payload', 'SHA256SUMS'), formatSums(listed));
  return makeBundle(work, work, version).bundle;
}

/**
 * Changes a file of an installed release and rewrites its line in the
 * release's SHA256SUMS to match: the tampering a check of the tree against its
 * own SHA256SUMS cannot see.
 */
export function tamperWithSums(releaseDir: string, rel: string, text: string): void {
  writeFileSync(join(releaseDir, rel), text);
  const sumsPath = join(releaseDir, 'SHA256SUMS');
  const lines = readFileSync(sumsPath, 'utf8').split('\n');
  const at = lines.findIndex((line) => line.endsWith(`  ${rel}`));
  if (at < 0) throw new Error(`${rel} is not listed in ${sumsPath}`);
  lines[at] = `${sha256Bytes(Buffer.from(text))}  ${rel}`;
  writeFileSync(sumsPath, lines.join('\n'));
}
