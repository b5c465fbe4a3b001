/**
 * Builds the single-file binaries into dist/:
 *   containai-build, containai-host    for this machine (what developers and CI run);
 *   containai-host-linux-x64,
 *   containai-host-linux-arm64          the agent, published with every release (package copies them).
 *
 * Cross-compiling (--target=bun-linux-<arch>) takes Bun's runtime for that target from the npm
 * registry the first time (cached in ~/.bun/install/cache). --bytecode works cross-target: the
 * arm64 agent runs under qemu-aarch64 and starts from its bytecode like the native one.
 *
 * The binaries run as root on servers, so they must not read settings from the folder they
 * happen to run in: .env, bunfig.toml, tsconfig.json and package.json autoloading are off.
 *
 * Stamped into every binary (lib/version.ts): the version, from CONTAINAI_BUILD_VERSION, else
 * `git describe --tags --always --dirty`, else package.json; and the commit, from
 * `git rev-parse --short HEAD` ("unknown" outside git).
 *
 *   bun scripts/build.ts [NAME...]      e.g. bun scripts/build.ts containai-build
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { isSafeVersion } from '../lib/bundle/layout.ts';

const root = join(import.meta.dir, '..');

interface Target {
  /** The file in dist/. */
  name: string;
  /** The entry point under cmd/. */
  entry: 'containai-build' | 'containai-host';
  /** Bun's --target; none builds for this machine. */
  target?: string;
}

const TARGETS: readonly Target[] = [
  { name: 'containai-build', entry: 'containai-build' },
  { name: 'containai-host', entry: 'containai-host' },
  { name: 'containai-host-linux-x64', entry: 'containai-host', target: 'bun-linux-x64' },
  { name: 'containai-host-linux-arm64', entry: 'containai-host', target: 'bun-linux-arm64' },
];

function git(args: string[]): string | undefined {
  try {
    const result = Bun.spawnSync(['git', ...args], { cwd: root, stderr: 'ignore' });
    const text = result.stdout.toString().trim();
    return result.exitCode === 0 && text ? text : undefined;
  } catch {
    return undefined; // no git on this machine
  }
}

const version: string =
  process.env.CONTAINAI_BUILD_VERSION || git(['describe', '--tags', '--always', '--dirty']) || (await Bun.file(join(root, 'package.json')).json()).version;
// `--version` prints `<name> <version> (<commit>)` and self-update parses it: no space, no parenthesis.
if (!isSafeVersion(version)) {
  process.stderr.write(`error: the version "${version}" is not a safe version name (letters, digits, ".", "_", "+", "-")\n`);
  process.exit(1);
}
const commit = git(['rev-parse', '--short', 'HEAD']) ?? 'unknown';

const only = process.argv.slice(2);
const unknown = only.filter((n) => !TARGETS.some((t) => t.name === n));
if (unknown.length > 0) {
  process.stderr.write(`error: unknown binary ${unknown.join(', ')}; expected ${TARGETS.map((t) => t.name).join(', ')}\n`);
  process.exit(2);
}

mkdirSync(join(root, 'dist'), { recursive: true });
const started = performance.now();

async function compile(t: Target): Promise<string> {
  const proc = Bun.spawn(
    [
      process.execPath,
      'build',
      '--compile',
      ...(t.target ? [`--target=${t.target}`] : []),
      '--minify',
      // Start-up matters (check-health runs from a timer every minute): bytecode skips parsing, and
      // splitting keeps each command's code (sigstore, dockerode, tar) in chunks loaded only when
      // that command runs. Measured on --version: ~93 ms plain, ~29 ms bytecode, ~22 ms both.
      '--bytecode',
      '--splitting',
      '--format=esm',
      '--sourcemap=none',
      // ssh2 (dockerode's ssh:// transport) only tunes cipher order with cpu-features, inside a
      // try; its native addon exists only if install scripts ran, and CI installs without them.
      '--external=cpu-features',
      '--no-compile-autoload-dotenv',
      '--no-compile-autoload-bunfig',
      '--no-compile-autoload-tsconfig',
      '--no-compile-autoload-package-json',
      `--define=__CONTAINAI_VERSION__=${JSON.stringify(version)}`,
      `--define=__CONTAINAI_COMMIT__=${JSON.stringify(commit)}`,
      join(root, 'cmd', `${t.entry}.ts`),
      '--outfile',
      join(root, 'dist', t.name),
    ],
    { cwd: root, stdout: 'pipe', stderr: 'pipe' },
  );
  const [code, out, err] = await Promise.all([proc.exited, new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  if (code !== 0) {
    process.stderr.write(out + err);
    throw new Error(`bun build failed for ${t.name}${t.target ? ` (--target=${t.target}: its runtime comes from the npm registry)` : ''}`);
  }
  return t.name;
}

const chosen = TARGETS.filter((t) => only.length === 0 || only.includes(t.name));
for (const name of await Promise.all(chosen.map(compile))) process.stderr.write(`built dist/${name}\n`);
process.stderr.write(`${version} (${commit}) in ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
