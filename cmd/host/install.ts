import { defineCommand } from 'citty';
import { join, resolve } from 'node:path';
import { log, printJson } from '../../lib/cli/output.ts';
import { bundleFileName, assertSafeVersion } from '../../lib/bundle/layout.ts';
import { ContainaiError, usageError } from '../../lib/errors.ts';
import { DEFAULT_GITHUB_URL } from '../../lib/github/download.ts';
import { appendEvent } from '../../lib/release/events.ts';
import { assertInstallRootAllowed, assertLayoutFolders } from '../../lib/release/guard.ts';
import { installRelease, type BundleSource } from '../../lib/release/install.ts';
import { verifyInstalledRelease } from '../../lib/release/installed.ts';
import { installLayout } from '../../lib/release/layout.ts';
import { describeSigner } from '../../lib/release/record.ts';
import { secretFromEnv } from '../../lib/secrets.ts';
import { policyFromArgs } from '../../lib/trust/policy.ts';
import { installRootArgs, jsonArgs, lockArgs, lockWaitMs, nonrootArgs, policyArgs, trustDirArgs } from './_release.ts';

export default defineCommand({
  meta: { name: 'install', description: 'Install a release bundle (GitHub Releases, a folder or a file), verified, and make it current.' },
  args: {
    version: { type: 'string', description: 'the release to install, e.g. v1.2.3', valueHint: 'V' },
    'asset-dir': { type: 'string', description: 'take containai-<version>.tar.gz from this folder instead of GitHub Releases', valueHint: 'DIR' },
    bundle: { type: 'string', description: 'install this bundle file instead of downloading', valueHint: 'FILE' },
    'verify-only': { type: 'boolean', description: 'verify the current release (SHA256SUMS, the kept bundle and its signature) and change nothing' },
    force: { type: 'boolean', description: 'reinstall the version that is already current (into a fresh folder, switched atomically)' },
    'allow-downgrade': { type: 'boolean', description: 'install a version older than the highest one ever installed here' },
    ...installRootArgs,
    ...nonrootArgs,
    ...lockArgs,
    ...policyArgs,
    ...trustDirArgs,
    ...jsonArgs,
  },
  async run({ args }) {
    const policy = policyFromArgs(args);
    if (args['verify-only']) {
      const root = resolve(args['install-root']);
      await assertLayoutFolders(installLayout(root));
      const result = await verifyInstalledRelease(root, { policy });
      const version = result.release?.version;
      if (args.json) printJson({ ...result, release: result.release && { version, dir: result.release.dir, signer: result.release.record?.signer } });
      if (!result.ok) {
        await appendEvent(installLayout(root), { action: 'verify', version, outcome: 'refused', reason: result.problems.slice(0, 5).join('; ') }, { createState: false });
        throw new ContainaiError('VERIFY', `the ${result.link} release${version ? ` ${version}` : ''} does not verify: ${result.problems.slice(0, 5).join('; ')}${result.problems.length > 5 ? `; and ${result.problems.length - 5} more` : ''}`, {
          hint: 'reinstall it with install --force, or roll back; nothing was changed',
        });
      }
      log().success(`${version} verifies: ${result.filesChecked} files match SHA256SUMS, kept bundle present, signer ${describeSigner(result.release!.record!.signer)}`);
      return;
    }

    const version = assertSafeVersion(args.version);
    const source = bundleSource(args, version);
    const installRoot = await assertInstallRootAllowed(args['install-root'], { allowNonroot: Boolean(args['allow-nonroot']) });
    const result = await installRelease({
      installRoot,
      version,
      repo: args.repo,
      source,
      policy,
      force: Boolean(args.force),
      allowDowngrade: Boolean(args['allow-downgrade']),
      lockWaitMs: lockWaitMs(args['lock-wait']),
    });
    if (result.outcome === 'already-current') {
      log().success(`${version} is already current and verifies (${result.verification?.filesChecked} files); nothing changed (--force reinstalls it)`);
    } else {
      log().success(`${version} is current (releases/${result.dirName}, signer ${describeSigner(result.signer!)})${result.previous ? `; previous is releases/${result.previous}` : ''}`);
    }
    if (args.json) {
      printJson({ ok: true, outcome: result.outcome, version, dir: join(installRoot, 'releases', result.dirName), previous: result.previous, signer: result.signer, steps: result.steps });
    }
  },
});

function bundleSource(args: { bundle?: string; 'asset-dir'?: string; repo?: string }, version: string): BundleSource {
  if (args.bundle && args['asset-dir']) throw usageError('give --bundle or --asset-dir, not both');
  if (args.bundle) return { kind: 'file', path: resolve(args.bundle) };
  if (args['asset-dir']) return { kind: 'file', path: resolve(args['asset-dir'], bundleFileName(version)) };
  if (!args.repo) throw usageError('--repo OWNER/REPO is needed to download from GitHub Releases', 'or give --bundle FILE or --asset-dir DIR');
  return {
    kind: 'github',
    baseUrl: process.env.CONTAINAI_GITHUB_URL || DEFAULT_GITHUB_URL,
    repo: args.repo,
    token: secretFromEnv('GITHUB_TOKEN'),
  };
}
