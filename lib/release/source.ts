/**
 * Where an install's bytes come from. Every source hands over the small parts
 * first (the manifest and its signature material), and the payload's bytes
 * only when asked, after install has verified those parts: a bundle file, a
 * bundle downloaded from GitHub Releases, a registry artifact
 * (lib/oci/release-source.ts). A bundle of the first format is handed to its
 * own path (format1.ts) as a file.
 */
import { stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { ATTESTATION_FILE, bundleFileName, isSafeVersion, SUMS_FILE, SUMS_SIG_FILE, SUMS_SIGSTORE_FILE, TRUSTED_ROOT_FILE } from '../bundle/layout.ts';
import { openBundleFile, type OpenedBundle } from '../bundle/stream.ts';
import { ContainaiError, describeCause } from '../errors.ts';
import { downloadReleaseAsset } from '../github/download.ts';
import { log } from '../cli/output.ts';
import type { SignatureSet } from '../manifest/verify.ts';

export type ReleaseParts =
  | {
      format: 2;
      /** SHA256SUMS as it came. */
      sums: Uint8Array;
      /** release.json, when the source has it apart from the payload (a registry layer). */
      releaseJson?: Uint8Array;
      signatures: SignatureSet;
      /** CI's trusted root, recorded only: never trusted. */
      trustedRoot?: string;
    }
  | { format: 1; bundlePath: string };

/** The parts of a release of the current format (what a registry artifact always is). */
export type ManifestParts = Extract<ReleaseParts, { format: 2 }>;

/** Where open() may write: the install's private staging folder, and the resumable downloads folder. */
export interface SourceContext {
  work: string;
  downloads: string;
}

export interface ReleaseSource {
  /** Printable, recorded in install.json: no credentials, no query string. */
  readonly location: string;
  /** The small parts, before any payload byte is requested (a source may ignore the context). */
  open(context?: SourceContext): Promise<ReleaseParts>;
  /** payload.tar.gz's bytes in order; asked only after open()'s parts verified. */
  payload(): AsyncIterable<Uint8Array>;
  /** Frees what the source holds; always called. */
  close(): Promise<void>;
}

const decode = (bytes: Uint8Array | undefined) => (bytes === undefined ? undefined : new TextDecoder().decode(bytes));

/** The parts of an opened bundle of the current format. */
function partsOf(bundle: OpenedBundle): ReleaseParts {
  const m = bundle.members;
  return {
    format: 2,
    sums: m.get(SUMS_FILE) as Uint8Array,
    signatures: { attestation: decode(m.get(ATTESTATION_FILE)), sigstoreBundle: decode(m.get(SUMS_SIGSTORE_FILE)), sig: decode(m.get(SUMS_SIG_FILE)) },
    trustedRoot: decode(m.get(TRUSTED_ROOT_FILE)),
  };
}

/** The operator's bundle file, checked before it is read: a regular file (not a FIFO that never ends). */
async function assertBundleFile(path: string): Promise<void> {
  const info = await stat(path).catch((err: NodeJS.ErrnoException) => {
    throw new ContainaiError(err.code === 'ENOENT' ? 'NOT_FOUND' : 'INPUT', `cannot read the bundle ${path} (${err.code ?? describeCause(err)})`, {
      hint: 'check --bundle / --asset-dir and --version',
    });
  });
  if (!info.isFile()) throw new ContainaiError('INPUT', `the bundle ${path} is not a regular file`, { hint: 'check --bundle / --asset-dir and --version' });
}

/**
 * A bundle file named for one version (containai-<v>.tar.gz) is not installed as another: refused
 * before a byte is read. A name that states no version leaves the decision to release.json.
 */
export function assertBundleNamed(path: string, version: string): void {
  const name = basename(path);
  const named = /^containai-(.+)\.tar\.gz$/.exec(name)?.[1];
  if (named !== undefined && isSafeVersion(named) && named !== version) {
    throw new ContainaiError('VERIFY', `refusing to install ${name} as ${version}: the bundle file is named for ${named}`, {
      hint: `install it as --version ${named}, or take containai-${version}.tar.gz`,
    });
  }
}

/** A bundle read from a file, once, front to back. */
export function bundleFileSource(path: string, version?: string): ReleaseSource {
  let opened: OpenedBundle | undefined;
  return {
    location: path,
    async open() {
      if (version !== undefined) assertBundleNamed(path, version);
      await assertBundleFile(path);
      opened = await openBundleFile(path);
      return opened.format === 1 ? { format: 1, bundlePath: path } : partsOf(opened);
    },
    payload() {
      if (!opened) throw new ContainaiError('INTERNAL', 'payload() before open()');
      return opened.payload();
    },
    async close() {
      await opened?.close();
    },
  };
}

/** A bundle from GitHub Releases (or CONTAINAI_GITHUB_URL): downloaded into the staging folder, then read as a file. */
export function githubSource(options: { baseUrl: string; repo: string; version: string; token?: string }): ReleaseSource {
  let file: ReleaseSource | undefined;
  let location = `${options.baseUrl.replace(/\/+$/, '')}/${options.repo}/releases/download/${options.version}/${bundleFileName(options.version)}`;
  return {
    get location() {
      return location;
    },
    async open(context) {
      if (!context) throw new ContainaiError('INTERNAL', 'a download needs the staging folder');
      const dest = join(context.work, bundleFileName(options.version));
      const result = await downloadReleaseAsset({
        baseUrl: options.baseUrl,
        repo: options.repo,
        version: options.version,
        asset: bundleFileName(options.version),
        dest,
        token: options.token,
      });
      location = result.from;
      log().info(`  downloaded ${result.bytes} bytes from ${result.from}`);
      file = bundleFileSource(dest, options.version);
      return file.open(context);
    },
    payload() {
      if (!file) throw new ContainaiError('INTERNAL', 'payload() before open()');
      return file.payload();
    },
    async close() {
      await file?.close();
    },
  };
}


