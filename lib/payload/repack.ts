/**
 * What repack checks about an existing release before it rewrites the bundle:
 * the bundle is there, and the release folder beside it describes the same
 * payload (a bundle and a payload.tar.gz from two different builds must not be
 * shipped together).
 */
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { bundleFileName, PAYLOAD_ARCHIVE, PAYLOAD_SHA256 } from '../bundle/layout.ts';
import { parseSingleSum } from '../digest.ts';
import { ContainaiError } from '../errors.ts';
import { tempSibling } from '../fs/atomic.ts';

/** <out>/<version>/containai-<version>.tar.gz, which must exist. */
export async function requireBundle(outDir: string, version: string): Promise<string> {
  const path = join(outDir, version, bundleFileName(version));
  const info = await stat(path).catch(() => undefined);
  if (!info?.isFile()) {
    throw new ContainaiError('NOT_FOUND', `no bundle at ${path}`, {
      hint: `build the release first with "containai-build package --version ${version}", or pass the --out it used`,
    });
  }
  return path;
}

/** A hidden folder beside <out>/<version> to unpack into; package cleans up one left by a killed run. */
export function workFolder(outDir: string, version: string): string {
  return tempSibling(join(outDir, version), 'tmp');
}

/** The release's own payload.sha256 (when present) must name the payload inside the bundle. */
export async function assertReleaseMatchesBundle(releaseDir: string, payloadSha256: string): Promise<void> {
  const path = join(releaseDir, PAYLOAD_SHA256);
  const text = await readFile(path, 'utf8').catch(() => undefined);
  if (text === undefined) return;
  const expected = parseSingleSum(text, PAYLOAD_ARCHIVE, path);
  if (expected !== payloadSha256) {
    throw new ContainaiError('VERIFY', `${path} does not match the payload inside the bundle (sha256 ${payloadSha256})`, {
      hint: 'the release folder mixes two builds: rebuild it with "containai-build package"',
    });
  }
}
