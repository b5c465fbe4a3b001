import { defineCommand } from 'citty';
import { existsSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { printJson, printResult } from '../../lib/cli/output.ts';
import { assertSafeVersion, bundleFileName } from '../../lib/bundle/layout.ts';
import { ContainaiError, usageError } from '../../lib/errors.ts';
import { gateDeps, gateInstallHooks, gateOptionsFromFlags } from '../../lib/gate/install-hooks.ts';
import { gateRefusal, trialOf, waitForTrial } from '../../lib/gate/wait.ts';
import { DEFAULT_GITHUB_URL } from '../../lib/github/download.ts';
import { appendEvent } from '../../lib/release/events.ts';
import { assertInstallRootAllowed, assertLayoutFolders } from '../../lib/release/guard.ts';
import { installRelease } from '../../lib/release/install.ts';
import { inspectInstalledRelease } from '../../lib/release/installed.ts';
import { installLayout, isReleaseDirName, versionOfDir } from '../../lib/release/layout.ts';
import { describeSigner } from '../../lib/release/record.ts';
import { bundleFileSource, githubSource, type ReleaseSource } from '../../lib/release/source.ts';
import { fixForVerification } from '../../lib/release/verify-explain.ts';
import { verifyInstalledRelease } from '../../lib/release/verify-installed.ts';
import { DEFAULT_RECORD_POLICY, policyForInstalled } from '../../lib/release/record-policy.ts';
import { didYouMeanVersion } from '../../lib/release/versions.ts';
import { secretFromEnv } from '../../lib/secrets.ts';
import type { TrustPolicy } from '../../lib/trust/policy.ts';
import { probeDirArgs, readPolicyFlags } from '../_shared.ts';
import { installRootArgs, jsonArgs, lockArgs, lockWaitMs, nonrootArgs, policyArgs, trustDirArgs } from './_release.ts';

export default defineCommand({
  meta: {
    name: 'install',
    description:
      'Install a release (GitHub Releases, a folder or a bundle file), verified, and make it current. The manifest and its signature are verified before a byte of the payload is read; every file is checked as it is written.',
  },
  args: {
    version: { type: 'string', description: 'the release to install, e.g. v1.2.3 (required, except with --verify-only or --from, where the verified release.json names it)', valueHint: 'V' },
    from: { type: 'string', description: 'install from a registry, oci://REGISTRY/REPO[:TAG|@DIGEST], or an OCI image layout, oci-layout:DIR[:TAG|@DIGEST] (never trusts the tag: the signed manifest names the version)', valueHint: 'oci://REGISTRY/REPO[:TAG]' },
    'asset-dir': { type: 'string', description: 'take containai-<version>.tar.gz from this folder instead of GitHub Releases', valueHint: 'DIR' },
    bundle: { type: 'string', description: 'install this bundle file instead of downloading', valueHint: 'FILE' },
    'verify-only': { type: 'boolean', description: 'verify the current release again (its kept signature, then every file, mode and link) and change nothing; with --version, that it is the current one' },
    force: { type: 'boolean', description: 'reinstall the version that is already current (into a fresh folder, switched atomically), or install a version that failed its health gate (it goes on trial again)' },
    'allow-downgrade': { type: 'boolean', description: 'install a version older than the highest one ever installed here' },
    gate: { type: 'string', description: 'how long the new release is on trial (its health probes must keep passing, or the previous release becomes current again), a systemd time span from 1s to 24h (default 10min)', valueHint: 'SPAN' },
    'no-gate': { type: 'boolean', description: 'activate without a trial (no health gate, no probe files read)' },
    wait: { type: 'boolean', description: 'wait until the gate is decided: exit 0 when the release passes, 1 when it fails (and the previous release is current again)' },
    ...probeDirArgs,
    ...installRootArgs,
    ...nonrootArgs,
    ...lockArgs,
    ...policyArgs,
    ...trustDirArgs,
    ...jsonArgs,
  },
  async run({ args, rawArgs }) {
    if (args['verify-only']) {
      // Without policy flags, --verify-only judges the release under the signer its install.json records, as
      // rollback does: --allow-unsigned alone chooses no signer, it only lets an UNSIGNED record pass.
      const { policy, chosen } = readPolicyFlags(args, rawArgs, { notChoosing: ['allow-unsigned'] });
      return verifyOnly(resolve(args['install-root']), args.version, chosen ? policy : undefined, args['trust-dir'], args['allow-unsigned'] === true, args.json === true);
    }
    const { policy } = readPolicyFlags(args, rawArgs);

    if (!args.version && !args.from) throw usageError('--version is required', 'name the release to install, e.g. --version v1.2.3 (or give --from oci://…, whose signed manifest names it)');
    const version = args.version === undefined ? undefined : assertSafeVersion(args.version);
    const gate = {
      ...gateOptionsFromFlags({ gate: flagGiven(rawArgs, 'gate') ? String(args.gate) : undefined, noGate: rawArgs.includes('--no-gate'), probeDir: args['probe-dir'] }, 'install'),
      // A decision this install completes, or --wait makes, verifies the release it goes back to under this install's policy.
      policy,
      trustDir: args['trust-dir'],
    };
    if (args.wait && gate.spanMs === undefined) throw usageError('--wait waits for the health gate, and --no-gate turns it off', 'drop one of them');
    const installRoot = await assertInstallRootAllowed(args['install-root'], { allowNonroot: Boolean(args['allow-nonroot']) });
    const source = await releaseSource(args, version, installRoot);
    const result = await installRelease({
      installRoot,
      version,
      repo: args.repo,
      source,
      policy,
      force: Boolean(args.force),
      allowDowngrade: Boolean(args['allow-downgrade']),
      lockWaitMs: lockWaitMs(args['lock-wait']),
      hooks: gateInstallHooks(gate),
    });
    const json = args.json === true;
    if (result.outcome === 'already-current') {
      printResult(`${result.version} is already current and verifies (${result.verification?.filesChecked} files); nothing changed (--force reinstalls it)`, { json });
    } else {
      const format = result.format === 1 ? ' (first format)' : '';
      printResult(`${result.version} is current (releases/${result.dirName}${format}, signer ${describeSigner(result.signer!)})${result.previous ? `; previous is releases/${result.previous}` : ''}`, { json });
    }
    const layout = installLayout(installRoot);
    const trial = gate.spanMs === undefined ? undefined : await trialOf(layout, result.dirName);
    let gateDoc: Record<string, unknown> = { status: gate.spanMs === undefined ? 'off' : 'none' };
    if (trial && !trial.decision) {
      const files = trial.probes.filter((p) => p.kind !== 'check').length;
      printResult(`${result.version} is on trial until ${trial.deadline} (${trial.probes.length} probes, ${files} from probe files)${args.wait ? '' : ': check-health decides it, or containai-host gate pass|fail'}`, { json });
      gateDoc = { status: 'on-trial', trialId: trial.trialId, deadline: trial.deadline, probes: trial.probes.map((p) => p.name) };
      if (args.wait) {
        // operatorDir left to the trial's own (it may be an earlier install's, when this version was already current).
        const deps = gateDeps(gate, { by: 'install --wait', lockWaitMs: lockWaitMs(args['lock-wait']), operatorDir: undefined });
        const outcome = await waitForTrial(layout, trial.trialId, deps);
        if (outcome.result.status !== 'passed') throw gateRefusal(result.version, outcome);
        printResult(outcome.result.message, { json });
        gateDoc = { status: 'passed', trialId: trial.trialId, decision: outcome.trial?.decision };
      }
    } else if (trial) {
      gateDoc = { status: trial.decision?.outcome, trialId: trial.trialId, decision: trial.decision };
    }
    if (json) {
      printJson({ ok: true, outcome: result.outcome, version: result.version, source: source.location, format: result.format, dir: join(installRoot, 'releases', result.dirName), previous: result.previous, signer: result.signer, gate: gateDoc, steps: result.steps, warnings: result.warnings });
    }
  },
});

/** The flag was typed (citty reads --no-gate as gate=false, so the value alone cannot tell). */
function flagGiven(rawArgs: readonly string[], name: string): boolean {
  return rawArgs.some((a) => a === `--${name}` || a.startsWith(`--${name}=`));
}

/** Where the release comes from: a registry or an OCI layout, a bundle file, a folder of release assets, or GitHub Releases. */
async function releaseSource(args: { bundle?: string; 'asset-dir'?: string; repo?: string; from?: string }, version: string | undefined, installRoot: string): Promise<ReleaseSource> {
  const given = [args.from && '--from', args.bundle && '--bundle', args['asset-dir'] && '--asset-dir'].filter(Boolean);
  if (given.length > 1) throw usageError(`give one of --from, --bundle and --asset-dir, not ${given.join(' and ')}`);
  if (args.from) {
    // Loaded only for a registry install: the OCI client is not on the path of a bundle install.
    const [{ parseOciReference }, { downloadsDir, layoutReleaseSource, registryReleaseSource }] = await Promise.all([import('../../lib/oci/reference.ts'), import('../../lib/oci/release-source.ts')]);
    const ref = parseOciReference(args.from, '--from');
    return ref.kind === 'layout' ? layoutReleaseSource(ref.dir, ref) : registryReleaseSource(ref, { downloadDir: downloadsDir(installRoot) });
  }
  if (version === undefined) throw usageError('--version is required', 'name the release to install, e.g. --version v1.2.3');
  if (args.bundle) return bundleFileSource(resolve(args.bundle), version);
  if (args['asset-dir']) {
    const dir = resolve(args['asset-dir']);
    const path = join(dir, bundleFileName(version));
    if (!existsSync(path)) {
      const named = (existsSync(dir) ? readdirSync(dir) : []).flatMap((n) => /^containai-(.+)\.tar\.gz$/.exec(n)?.[1] ?? []);
      throw new ContainaiError('NOT_FOUND', `no ${bundleFileName(version)} in ${dir}${didYouMeanVersion(version, named)}`, {
        hint: named.length ? `the folder holds ${named.slice(0, 5).join(', ')}; check --version` : 'check --asset-dir and --version',
      });
    }
    return bundleFileSource(path, version);
  }
  if (!args.repo) throw usageError('--repo OWNER/REPO is needed to download from GitHub Releases', 'or give --bundle FILE, --asset-dir DIR or --from oci://…');
  return githubSource({ baseUrl: process.env.CONTAINAI_GITHUB_URL || DEFAULT_GITHUB_URL, repo: args.repo, version, token: secretFromEnv('GITHUB_TOKEN') });
}

/** install --verify-only: the current release verified again from disk, nothing changed. */
async function verifyOnly(root: string, version: string | undefined, given: TrustPolicy | undefined, trustDir: string | undefined, allowUnsigned: boolean, json: boolean): Promise<void> {
  const layout = installLayout(root);
  await assertLayoutFolders(layout);
  const state = await inspectInstalledRelease(root);
  const current = state.current;
  if (version !== undefined && current?.version !== version) {
    const installed = state.releases.filter((r) => isReleaseDirName(r.dirName)).map((r) => versionOfDir(r.dirName));
    throw new ContainaiError('STATE', `${version} is not the current release (current is ${current?.version ?? 'none'})${didYouMeanVersion(version, installed)}: --verify-only checks the current release`, {
      hint: current ? `run it with --version ${current.version}, or without --version` : 'install a release first',
    });
  }
  const policy = current?.record ? policyForInstalled(current.record, given, { trustDir, allowUnsigned }) : given;
  const result = await verifyInstalledRelease(root, { policy: policy ?? { ...DEFAULT_RECORD_POLICY, trustDir } });
  const release = result.release;
  if (json) printJson({ ok: result.ok, link: result.link, filesChecked: result.filesChecked, bytesChecked: result.bytesChecked, problems: result.problems, release: release && { version: release.version, dir: release.dir, format: release.format, signer: release.record?.signer } });
  const signer = release?.record ? describeSigner(release.record.signer) : undefined;
  if (!result.ok) {
    const shown = result.problems.slice(0, 5).join('; ') + (result.problems.length > 5 ? `; and ${result.problems.length - 5} more` : '');
    await appendEvent(layout, { action: 'verify', version: release?.version, outcome: 'refused', reason: shown }, { createState: false });
    throw new ContainaiError('VERIFY', `the current release${release ? ` ${release.version}` : ''} does not verify: ${shown}`, {
      hint: `${fixForVerification(result, release?.version ?? 'it', signer, given !== undefined)}; nothing was changed`,
    });
  }
  const what = release?.format === 1 ? `${result.filesChecked} files match the SHA256SUMS of its signed payload (first format)` : `${result.filesChecked} files, every mode and link, match the signed manifest`;
  printResult(`${release!.version} verifies: signer ${signer}; ${what}`, { json });
}
