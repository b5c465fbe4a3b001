/**
 * What the binaries print, as an operator sees it: a name from an archive with a C1 control
 * (U+009B opens a terminal escape) shown escaped everywhere (stderr, --json, events.jsonl); results
 * on stdout and progress on stderr; -q/--quiet and --verbose; colour only on a terminal and never
 * with NO_COLOR; did-you-mean for commands and flags; a negative --keep named invalid.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { binaryPath, host, removeDir, systemTempDir, tempDir } from '../helpers/cli.ts';
import { craftRelease } from '../helpers/craft.ts';
import { makeTestBundle } from '../helpers/release-server.ts';
import { makeKeyPair, writeKeyPair } from '../helpers/signing.ts';
import { loadSigningKey } from '../../lib/trust/keys.ts';
import { signBlob } from '../../lib/trust/sign.ts';

const work = tempDir('cai-output-');
afterAll(() => removeDir(work));
const assets = join(work, 'assets');
for (const v of ['v1.0.0', 'v1.1.0']) makeTestBundle(assets, v);

const CSI = '\u009b';
/** Raw C0 (but newline and tab), DEL and C1 bytes: none may reach a terminal, a JSON document or the log. */
const RAW_CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/;

let roots = 0;
async function installedRoot(): Promise<string> {
  const root = join(work, `root${roots++}`);
  for (const v of ['v1.0.0', 'v1.1.0']) {
    const r = await host(['install', '--version', v, '--asset-dir', assets, '--install-root', root, '--allow-unsigned', '--allow-nonroot']);
    expect(r.code, r.stderr).toBe(0);
  }
  return root;
}

describe('control characters from outside are escaped in every output', () => {
  test('an archive entry named with U+009B: the refusal on stderr, the --json document and events.jsonl show it escaped', async () => {
    const root = await installedRoot();
    const name = `payload/evil${CSI}31m`;
    // After the payload's SHA256SUMS and release.json, so the entry meets the extractor's policy (a hardlink) by its name.
    const { bundle } = craftRelease(join(work, 'evil'), {
      version: 'v2.0.0',
      editPayload: (entries) => [...entries.slice(0, 3), { name, type: 'hardlink', linkname: 'payload/README.md' }, ...entries.slice(3)],
    });
    const r = await host(['install', '--version', 'v2.0.0', '--bundle', bundle, '--install-root', root, '--allow-unsigned', '--allow-nonroot', '--json']);
    expect(r.code).toBe(1);
    // The refusal escapes the name where it is made (printableName), so the message itself holds no raw
    // control: stderr, the --json document and events.jsonl all carry it as \x9b (the extractor's quote()
    // escapes that backslash once more today, hence \\+).
    const escaped = /payload\/evil\\+x9b31m/;
    expect(r.stderr).toMatch(escaped);
    expect(r.stderr).not.toMatch(RAW_CONTROL);
    expect(r.stdout).not.toMatch(RAW_CONTROL);
    const doc = JSON.parse(r.stdout);
    expect(doc.ok).toBe(false);
    expect(doc.error.message).toMatch(escaped);
    expect(doc.error.message).not.toContain(CSI);
    const events = readFileSync(join(root, 'state', 'events.jsonl'), 'utf8');
    expect(events).not.toMatch(RAW_CONTROL);
    const reason = JSON.parse(events.trim().split('\n').at(-1) as string).reason as string;
    expect(reason).toMatch(escaped);
    expect(reason).not.toContain(CSI);
  });
});

describe('results on stdout, progress on stderr', () => {
  test('status, prune and rollback print their result on stdout; install its steps on stderr', async () => {
    const root = await installedRoot();
    const status = await host(['status', '--install-root', root]);
    expect(status.code).toBe(0);
    expect(status.stdout).toContain('current:  v1.1.0');
    expect(status.stderr).toBe('');
    const rollback = await host(['rollback', '--install-root', root, '--allow-unsigned', '--allow-nonroot']);
    expect(rollback.code, rollback.stderr).toBe(0);
    expect(rollback.stdout).toBe('rolled back: v1.0.0 is current, v1.1.0 is previous\n');
    const prune = await host(['prune', '--install-root', root, '--allow-nonroot']);
    expect(prune.stdout).toBe('nothing to remove\n');
    const again = await host(['install', '--version', 'v1.1.0', '--asset-dir', assets, '--install-root', join(work, `root${roots++}`), '--allow-unsigned', '--allow-nonroot']);
    expect(again.stderr).toContain('→ ');
  });

  test('verify prints its verdict on stdout, and a refusal only on stderr', async () => {
    const artifact = join(work, 'artifact');
    writeFileSync(artifact, 'bytes');
    const keys = writeKeyPair(work, 'verify', makeKeyPair('ecdsa'));
    const signed = await signBlob(artifact, await loadSigningKey(keys.key));
    const bundle = join(work, 'artifact.sigstore.json');
    writeFileSync(bundle, JSON.stringify(signed.bundle));
    const trustDir = join(work, 'empty-trust');
    mkdirSync(trustDir, { recursive: true });
    const ok = await host(['verify', '--artifact', artifact, '--attestation', bundle, '--key', keys.pub, '--trust-dir', trustDir]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toContain(`verified ${artifact}: signature by pinned key`);
    expect(ok.stderr).toBe('');
    writeFileSync(artifact, 'other bytes');
    const refused = await host(['verify', '--artifact', artifact, '--attestation', bundle, '--key', keys.pub, '--trust-dir', trustDir]);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toBe('');
    expect(refused.stderr).toContain('error: ');
  });

  test('systemd install prints what it wrote on stdout', async () => {
    // What a unit names must be visible in its sandbox: not /tmp, not a home.
    const system = systemTempDir('cai-output-');
    try {
      const bin = join(system, 'containai-host');
      copyFileSync(binaryPath('containai-host'), bin);
      const units = join(system, 'units');
      const r = await host(['systemd', 'install', '--unit-dir', units, '--install-root', join(system, 'root'), '--binary', bin, '--allow-unsigned']);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain(`wrote ${units}/containai-health.service`);
    } finally {
      removeDir(system);
    }
  });
});

describe('-q/--quiet and --verbose', () => {
  test('--quiet: only errors and the result', async () => {
    const root = join(work, `root${roots++}`);
    const r = await host(['install', '--version', 'v1.0.0', '--asset-dir', assets, '--install-root', root, '--allow-unsigned', '--allow-nonroot', '-q']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    const status = await host(['--quiet', 'status', '--install-root', root]);
    expect(status.stdout).toContain('current:  v1.0.0');
    const bad = await host(['install', '--version', 'v9.9.9', '--asset-dir', assets, '--install-root', root, '--allow-unsigned', '--allow-nonroot', '-q']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^error: /);
  });

  test('--verbose: debug lines too; both at once is a usage error', async () => {
    const root = join(work, `root${roots++}`);
    const r = await host(['install', '--version', 'v1.0.0', '--asset-dir', assets, '--install-root', root, '--allow-unsigned', '--allow-nonroot', '--verbose']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/^debug: \w[\w-]*: done in \d+ ms$/m);
    const plain = await host(['status', '--install-root', root]);
    expect(plain.stderr).not.toContain('debug:');
    const both = await host(['status', '-q', '--verbose']);
    expect(both.code).toBe(2);
  });

  test('--help lists the global flags', async () => {
    const r = await host(['status', '--help']);
    expect(r.stdout).toContain('-q, --quiet');
    expect(r.stdout).toContain('--verbose');
  });
});

describe('colour only for a person at a terminal', () => {
  /** Runs the binary under a pseudo-terminal (util-linux script), as a person would. */
  function inTerminal(args: string[], env: Record<string, string>): string {
    const r = Bun.spawnSync(['script', '-qec', [binaryPath('containai-host'), ...args].join(' '), '/dev/null'], { env: { PATH: process.env.PATH ?? '', TERM: 'xterm', ...env }, stdout: 'pipe', stderr: 'pipe' });
    return r.stdout.toString();
  }

  test('a terminal gets colour; NO_COLOR and a pipe get none', async () => {
    expect(inTerminal(['prune', '--kep', '3'], {})).toContain('\u001b[31merror:\u001b[0m');
    expect(inTerminal(['prune', '--kep', '3'], { NO_COLOR: '1' })).not.toContain('\u001b[');
    const piped = await host(['prune', '--kep', '3'], { env: { NO_COLOR: undefined } });
    expect(piped.stderr).toMatch(/^error: unknown flag --kep/);
    expect(piped.stderr).not.toContain('\u001b[');
  });
});

describe('mistakes a person makes', () => {
  test('a mistyped command or flag gets a did-you-mean; the mistyped command word itself is still not shown', async () => {
    const command = await host(['instal', '--version', 'v1.0.0']);
    expect(command.code).toBe(2);
    expect(command.stderr).toContain('did you mean "install"?');
    expect(command.stderr).not.toContain('instal ');
    const flag = await host(['prune', '--kep', '3']);
    expect(flag.code).toBe(2);
    expect(flag.stderr).toContain('unknown flag --kep; did you mean --keep?');
    const far = await host(['prune', '--zzzzzz', '3']);
    expect(far.stderr).not.toContain('did you mean');
  });

  test('prune --keep -1 says the number is invalid, and changes nothing', async () => {
    const root = await installedRoot();
    for (const args of [['--keep', '-1'], ['--keep=-1'], ['--keep', 'three']]) {
      const r = await host(['prune', ...args, '--install-root', root, '--allow-nonroot']);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/--keep "[^"]+" is not a valid number: give how many releases to keep/);
      expect(existsSync(join(root, 'releases', 'v1.0.0'))).toBe(true);
    }
  });
});
