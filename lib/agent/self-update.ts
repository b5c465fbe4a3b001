/**
 * `self-update` as ordered steps over one context (issue 15):
 *
 *   find the agent → fetch the sums → verify them → write the agent beside
 *   it, hashed as written → check its architecture → smoke test → version
 *   and downgrade → replace (keeping <binary>.previous)
 *
 * Nothing at the path changes before the last step, and that step is one
 * rename (lib/agent/replace.ts). A refusal or failure anywhere removes the
 * temp file, logs the event and leaves the agent as it was.
 */
import { lstat, rm } from 'node:fs/promises';
import type { AgentArch } from '../bundle/layout.ts';
import { log } from '../cli/output.ts';
import { ContainaiError, describeCause, isContainaiError } from '../errors.ts';
import { describeSigner } from '../release/record.ts';
import { compareSemver, isSemver } from '../release/floor.ts';
import { runSteps, type Step, type StepRecord } from '../steps.ts';
import type { TrustPolicy } from '../trust/policy.ts';
import type { Verdict } from '../trust/verify.ts';
import { appendAgentEvent } from './events.ts';
import { lockFolder, matchOwnerAndMode, placeAgent, removeLeftovers, resolveTarget, swapWithPrevious, tempName, type AgentTarget } from './replace.ts';
import { smokeTest, type AgentIdentity } from './smoke.ts';
import type { AgentParts, AgentSource, WrittenAgent } from './source.ts';
import { checkAgentDigest, checkArchitecture, hostArch, verifyAgentSums, type VerifiedSums } from './verify.ts';

export interface SelfUpdateRequest {
  /** The agent to replace (links resolved to the file). */
  binary: string;
  /** Its version when it is the running binary (no need to ask it). */
  runningVersion?: string;
  source: AgentSource;
  /** The release asked for; the new agent must say this version. */
  version?: string;
  policy: TrustPolicy;
  allowDowngrade: boolean;
  /** Where events go (lib/agent/events.ts). */
  installRoot?: string;
  arch?: AgentArch;
}

export interface SelfUpdateResult {
  outcome: 'updated' | 'unchanged';
  binary: string;
  version: string;
  from?: string;
  previous?: string;
  sha256?: string;
  signer?: string;
  source: string;
  steps: StepRecord[];
}

interface Context {
  request: SelfUpdateRequest;
  arch: AgentArch;
  target?: AgentTarget;
  current?: string;
  unchanged?: string;
  parts?: AgentParts;
  sums?: VerifiedSums;
  temp?: string;
  written?: WrittenAgent;
  identity?: AgentIdentity;
}

const need = <T>(value: T | undefined, what: string): T => {
  if (value === undefined) throw new ContainaiError('INTERNAL', `self-update step ran without ${what}`);
  return value;
};

/** Why going from current to next is a downgrade to refuse, or undefined. */
export function downgradeRefusal(current: string | undefined, next: string): string | undefined {
  if (current === undefined) return undefined;
  if (isSemver(current) && isSemver(next)) return compareSemver(next, current) < 0 ? `${next} is older than ${current}, the agent here` : undefined;
  return next === current ? undefined : `${next} and ${current} (the agent here) cannot be ordered: one is not a semver version`;
}

/** The version of the agent at the path: known when it is this process, else asked; undefined when it does not answer. */
async function currentVersion(ctx: Context, target: AgentTarget): Promise<string | undefined> {
  if (ctx.request.runningVersion) return ctx.request.runningVersion;
  try {
    return (await smokeTest(target.path, target.path)).version;
  } catch (err) {
    log().warn(`the agent at ${target.path} does not answer --version (${describeCause(err)}): it will be replaced without a downgrade check`);
    return undefined;
  }
}

const notUnchanged = (ctx: Context) => (ctx.unchanged ? ctx.unchanged : undefined);

const STEPS: Step<Context>[] = [
  {
    name: 'current',
    title: 'find the agent to replace',
    async run(ctx) {
      const target = need(ctx.target, 'the target');
      const left = await removeLeftovers(target);
      if (left.length) log().info(`removed ${left.length} temp file(s) a killed self-update left in ${target.dir}`);
      ctx.current = await currentVersion(ctx, target);
      const asked = ctx.request.version;
      if (asked && asked === ctx.current) {
        ctx.unchanged = `${asked} is the agent here already`;
        return;
      }
      const refusal = asked ? downgradeRefusal(ctx.current, asked) : undefined;
      if (refusal && !ctx.request.allowDowngrade) throw downgradeError(refusal);
    },
  },
  {
    name: 'fetch-sums',
    title: 'fetch containai-host.SHA256SUMS and its signature',
    skip: notUnchanged,
    async run(ctx) {
      ctx.parts = await ctx.request.source.open();
    },
  },
  {
    name: 'verify-sums',
    title: 'verify containai-host.SHA256SUMS under the policy',
    skip: notUnchanged,
    async run(ctx) {
      ctx.sums = await verifyAgentSums(need(ctx.parts, 'the sums'), ctx.request.policy, ctx.arch);
    },
  },
  {
    name: 'write',
    title: 'write the new agent beside the old one, hashed as written',
    skip: notUnchanged,
    async run(ctx) {
      const target = need(ctx.target, 'the target');
      ctx.temp = tempName(target, 'new');
      try {
        ctx.written = await ctx.request.source.writeAgent(ctx.arch, ctx.temp);
      } catch (err) {
        if (isContainaiError(err)) throw err;
        throw new ContainaiError('STATE', `cannot write the new agent beside ${target.path}: ${describeCause(err)}`, {
          hint: "self-update writes into the agent's own folder (one file system, for an atomic rename): it must be writable, with room for one more agent",
          cause: err,
        });
      }
      checkAgentDigest(ctx.written, need(ctx.sums, 'the sums'));
    },
  },
  {
    name: 'architecture',
    title: 'check the agent is built for this host',
    skip: notUnchanged,
    async run(ctx) {
      await checkArchitecture(need(ctx.temp, 'the agent'), ctx.arch, need(ctx.sums, 'the sums').asset);
    },
  },
  {
    name: 'smoke',
    title: 'smoke test: the new agent answers --version',
    skip: notUnchanged,
    async run(ctx) {
      const sums = need(ctx.sums, 'the sums');
      ctx.identity = await smokeTest(need(ctx.temp, 'the agent'), `the new agent (${sums.asset})`);
      const asked = ctx.request.version;
      if (asked && ctx.identity.version !== asked) {
        throw new ContainaiError('VERIFY', `the new agent says it is ${ctx.identity.version}, not ${asked} (--version)`, { hint: 'the release holds another version than its name: nothing was replaced' });
      }
    },
  },
  {
    name: 'version',
    title: 'compare versions',
    skip: notUnchanged,
    async run(ctx) {
      const next = need(ctx.identity, 'the new version').version;
      if (next === ctx.current) {
        ctx.unchanged = `${next} is the agent here already`;
        return;
      }
      const refusal = downgradeRefusal(ctx.current, next);
      if (refusal && !ctx.request.allowDowngrade) throw downgradeError(refusal);
      if (refusal) log().warn(`${refusal}: going ahead (--allow-downgrade)`);
    },
  },
  {
    name: 'replace',
    title: 'replace the agent (keeping the old one as .previous)',
    skip: notUnchanged,
    async run(ctx) {
      const target = need(ctx.target, 'the target');
      const temp = need(ctx.temp, 'the agent');
      await matchOwnerAndMode(temp, target);
      await placeAgent(target, temp);
      ctx.temp = undefined;
    },
  },
];

function downgradeError(reason: string): ContainaiError {
  return new ContainaiError('VERIFY', `refusing a downgrade: ${reason}`, {
    hint: 'an older agent may lack fixes; pass --allow-downgrade if you mean it (self-update --rollback puts back the one before the last update)',
  });
}

function outcomeOf(err: unknown): 'refused' | 'failed' {
  return isContainaiError(err) && ['VERIFY', 'INPUT', 'USAGE', 'NOT_FOUND', 'PERMISSION'].includes(err.code) ? 'refused' : 'failed';
}

function signerOf(verdict: Verdict | undefined): string | undefined {
  if (!verdict) return undefined;
  if (verdict.kind === 'unsigned') return 'UNSIGNED';
  const { sourceRepository, workflow, ref, issuer, keyId } = verdict.signer ?? {};
  return describeSigner({ kind: verdict.kind, sourceRepository, workflow, ref, issuer, keyId });
}

export async function selfUpdate(request: SelfUpdateRequest): Promise<SelfUpdateResult> {
  const ctx: Context = { request, arch: request.arch ?? hostArch() };
  let lock: { release(): void } | undefined;
  try {
    ctx.target = await resolveTarget(request.binary);
    lock = lockFolder(ctx.target);
    const steps = await runSteps(STEPS, ctx);
    const version = ctx.identity?.version ?? request.version ?? ctx.current ?? '?';
    const result: SelfUpdateResult = {
      outcome: ctx.unchanged ? 'unchanged' : 'updated',
      binary: ctx.target.path,
      version,
      from: ctx.current,
      previous: ctx.unchanged ? undefined : ctx.target.previous,
      sha256: ctx.written?.sha256,
      signer: signerOf(ctx.sums?.verdict),
      source: request.source.location,
      steps,
    };
    await appendAgentEvent(request.installRoot, {
      action: 'self-update',
      outcome: ctx.unchanged ? 'unchanged' : 'ok',
      version,
      from: ctx.current,
      binary: ctx.target.path,
      source: request.source.location,
      sha256: result.sha256,
      signer: result.signer,
    });
    return result;
  } catch (err) {
    await appendAgentEvent(request.installRoot, {
      action: 'self-update',
      outcome: outcomeOf(err),
      version: ctx.identity?.version ?? request.version,
      from: ctx.current,
      binary: ctx.target?.path ?? request.binary,
      source: request.source.location,
      reason: isContainaiError(err) ? err.message : describeCause(err),
    });
    throw err;
  } finally {
    if (ctx.temp) await rm(ctx.temp, { force: true });
    lock?.release();
    await request.source.close();
  }
}

export interface AgentRollbackResult {
  binary: string;
  version: string;
  from?: string;
  previous: string;
}

/** Puts <binary>.previous back (smoke-tested first), and the current agent becomes .previous. */
export async function rollbackAgent(options: { binary: string; runningVersion?: string; installRoot?: string }): Promise<AgentRollbackResult> {
  let target: AgentTarget | undefined;
  let lock: { release(): void } | undefined;
  let from: string | undefined;
  try {
    target = await resolveTarget(options.binary);
    lock = lockFolder(target);
    await removeLeftovers(target);
    from = options.runningVersion ?? (await smokeTest(target.path, target.path).then((i) => i.version, () => undefined));
    if (!(await lstat(target.previous).catch(() => undefined))?.isFile()) {
      throw new ContainaiError('STATE', `there is no ${target.previous} to roll back to`, { hint: 'a rollback needs a self-update before it; nothing was changed' });
    }
    const restored = await smokeTest(target.previous, target.previous);
    await swapWithPrevious(target);
    await appendAgentEvent(options.installRoot, { action: 'self-update-rollback', outcome: 'ok', version: restored.version, from, binary: target.path });
    return { binary: target.path, version: restored.version, from, previous: target.previous };
  } catch (err) {
    await appendAgentEvent(options.installRoot, {
      action: 'self-update-rollback',
      outcome: outcomeOf(err),
      from,
      binary: target?.path ?? options.binary,
      reason: isContainaiError(err) ? err.message : describeCause(err),
    });
    throw err;
  } finally {
    lock?.release();
  }
}
