import { defineCommand } from 'citty';
import { basename, resolve } from 'node:path';
import { log, printJson, printResult } from '../../lib/cli/output.ts';
import { assertSafeVersion } from '../../lib/bundle/layout.ts';
import { usageError } from '../../lib/errors.ts';
import { DEFAULT_GITHUB_URL } from '../../lib/github/download.ts';
import { secretFromEnv } from '../../lib/secrets.ts';
import { policyFromArgs } from '../../lib/trust/policy.ts';
import { VERSION } from '../../lib/version.ts';
import { installRootArgs, jsonArgs, policyArgs, trustDirArgs } from '../_shared.ts';

export default defineCommand({
  meta: {
    name: 'self-update',
    description:
      "Replace this agent with the one of a release, for this host's architecture: containai-host.SHA256SUMS verified under the policy, the binary checked against it, smoke-tested, then renamed into place (the old one kept as <binary>.previous). --rollback puts the previous one back.",
  },
  args: {
    version: { type: 'string', description: 'the release to take the agent from, e.g. v1.2.3 (needed with --repo; with --asset-dir the new agent must say it)', valueHint: 'V' },
    'asset-dir': { type: 'string', description: 'a release folder (dist/<version>/) holding containai-host.SHA256SUMS, its signature and the agents', valueHint: 'DIR' },
    from: { type: 'string', description: "a release in a registry, oci://REGISTRY/REPO[:TAG|@DIGEST], or an OCI image layout, oci-layout:DIR[:TAG]: the agent and containai-host.SHA256SUMS (+ signature) from the artifact's layers (the tag is not trusted)", valueHint: 'oci://REGISTRY/REPO[:TAG]' },
    binary: { type: 'string', description: 'the agent to replace (default: this one)', valueHint: 'PATH' },
    'allow-downgrade': { type: 'boolean', description: 'take an agent older than the one here' },
    rollback: { type: 'boolean', description: 'put <binary>.previous back (the agent before the last self-update); atomic' },
    'install-root': { ...installRootArgs['install-root'], default: undefined, description: "log the event in this install root's state/events.jsonl (default: the state folder's events.jsonl)" },
    ...policyArgs,
    ...trustDirArgs,
    ...jsonArgs,
  },
  async run({ args }) {
    const binary = agentPath(args.binary);
    const runningVersion = binary === process.execPath ? VERSION : undefined;
    const installRoot = args['install-root'] ? resolve(args['install-root']) : undefined;
    const { rollbackAgent, selfUpdate } = await import('../../lib/agent/self-update.ts');

    if (args.rollback) {
      if (args.version || args['asset-dir'] || args.from) throw usageError('--rollback takes no release: it puts <binary>.previous back');
      const result = await rollbackAgent({ binary, runningVersion, installRoot });
      printResult(`rolled back: ${result.binary} is ${result.version} again${result.from ? ` (${result.from} is now ${basename(result.previous)})` : ''}`, { json: args.json });
      if (args.json) printJson({ ok: true, outcome: 'rolled-back', ...result });
      return;
    }

    const policy = policyFromArgs(args);
    const source = await agentSource(args);
    log().start(`self-update of ${binary} from ${source.location}`);
    const result = await selfUpdate({ binary, runningVersion, source, version: args.version, policy, allowDowngrade: args['allow-downgrade'] === true, installRoot });
    printResult(
      result.outcome === 'updated'
        ? `updated: ${result.binary} is ${result.version}${result.from ? ` (was ${result.from}, kept as ${basename(result.previous ?? '')})` : ''}; signed by ${result.signer}`
        : `unchanged: ${result.binary} is ${result.version} already`,
      { json: args.json },
    );
    if (args.json) printJson({ ok: true, ...result });
  },
});

/** The agent to replace: --binary, else this process's own binary (never bun running the sources). */
function agentPath(given: string | undefined): string {
  if (given) return resolve(given);
  if (VERSION === 'dev' || /^bun(-debug)?$/.test(basename(process.execPath))) {
    throw usageError('this containai-host runs from source: there is no agent binary to replace', 'give --binary PATH');
  }
  return process.execPath;
}

async function agentSource(args: { version?: string; 'asset-dir'?: string; from?: string; repo?: string }) {
  const { assetDirSource, githubSource, ociSource } = await import('../../lib/agent/source.ts');
  const given = [args['asset-dir'] && '--asset-dir', args.from && '--from'].filter(Boolean);
  if (given.length > 1) throw usageError(`give one source: ${given.join(' or ')}`);
  if (args.version !== undefined) assertSafeVersion(args.version);
  if (args.from) return ociSource(args.from);
  if (args['asset-dir']) return assetDirSource(args['asset-dir']);
  if (!args.repo) throw usageError('say where the agent comes from: --asset-dir DIR, or --repo OWNER/REPO --version V (GitHub Releases)');
  if (!args.version) throw usageError('--version V is needed to take the agent from GitHub Releases');
  return githubSource({ baseUrl: process.env.CONTAINAI_GITHUB_URL || DEFAULT_GITHUB_URL, repo: args.repo, version: args.version, token: secretFromEnv('GITHUB_TOKEN') });
}
