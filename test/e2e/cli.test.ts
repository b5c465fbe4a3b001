/** The CLI surface of both binaries: version, help, usage errors, and no settings taken from the folder. */
import { describe, expect, test } from 'bun:test';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { build, expectNoStack, host, tempDir, type BinaryName, run } from '../helpers/cli.ts';

const BINARIES: BinaryName[] = ['containai-build', 'containai-host'];

async function commandPaths(bin: BinaryName): Promise<string[][]> {
  const top = await run(bin, ['--help']);
  const section = (top.stdout.split('COMMANDS')[1] ?? '').split('GLOBAL OPTIONS')[0] ?? '';
  const names = [...section.matchAll(/^\s+(\S+)\s{2,}/gm)].map((m) => m[1] as string);
  const paths: string[][] = [];
  for (const name of names) {
    paths.push([name]);
    const sub = await run(bin, [name, '--help']);
    const subSection = sub.stdout.split('COMMANDS')[1]?.split('GLOBAL OPTIONS')[0];
    if (subSection) for (const m of subSection.matchAll(/^\s+(\S+)\s{2,}/gm)) paths.push([name, m[1] as string]);
  }
  return paths;
}

describe.each(BINARIES)('%s', (bin) => {
  test('--version prints the name, the stamped version and the commit: "<name> <version> (<commit>)"', async () => {
    const r = await run(bin, ['--version']);
    expect(r.code).toBe(0);
    const line = /^(\S+) (\S+) \(([0-9a-f]{4,}|unknown)\)\n$/.exec(r.stdout);
    expect(line?.[1]).toBe(bin);
    expect(line?.[2]).not.toBe('dev');
  });

  test('--help on every command and subcommand answers with usage and exit 0', async () => {
    const paths = await commandPaths(bin);
    const expected = bin === 'containai-build'
      ? ['profile', 'package', 'sbom', 'sign', 'repack', 'verify', 'images', 'images build', 'images push', 'publish', 'rollout']
      : ['install', 'update', 'rollback', 'status', 'prune', 'verify', 'check-health', 'gate', 'gate status', 'gate pass', 'gate fail', 'systemd', 'systemd install', 'systemd uninstall', 'trust', 'trust status', 'trust update', 'self-update', 'mirror'];
    expect(paths.map((p) => p.join(' ')).sort()).toEqual(expected.sort());
    for (const path of paths) {
      const r = await run(bin, [...path, '--help']);
      expect(r.code, `${bin} ${path.join(' ')} --help`).toBe(0);
      expect(r.stdout).toContain('USAGE');
      expect(r.stdout).not.toContain('\u001b[');
    }
  });

  test('an unknown command is a usage error (exit 2) without a stack', async () => {
    const r = await run(bin, ['no-such-command']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('unknown command (the word is not shown): expected one of ');
    expect(r.stderr).toContain(bin === 'containai-build' ? 'package' : 'install');
    expectNoStack(r.stderr);
  });
});

describe('usage errors', () => {
  test('an unknown flag is refused with exit 2', async () => {
    const dir = tempDir();
    const r = await build(['profile', '--profile', 'dev', '--image-prefix', 'x', '--image-tag', 'y', '--file', join(dir, 'p.env'), '--regsitry', 'ghcr.io/o']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('unknown flag --regsitry');
    expect(existsSync(join(dir, 'p.env'))).toBe(false);
  });

  test('an unknown flag that is not a flag name (a key pasted after --key) is not echoed, nor in --json', async () => {
    const pem = '-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgSECRETSECRET\n-----END PRIVATE KEY-----\n';
    const r = await build(['sign', '--version', 'v1.0.0', '--key', pem, '--json']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('an unknown flag (not shown)');
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, error: { code: 'USAGE' } });
    for (const out of [r.stderr, r.stdout]) {
      expect(out).not.toContain('BEGIN PRIVATE KEY');
      expect(out).not.toContain('SECRETSECRET');
    }
    // A flag name is shown without its value.
    const named = await build(['sign', '--version', 'v1.0.0', '--passwrod=SECRETSECRET']);
    expect(named.code).toBe(2);
    expect(named.stderr).toContain('unknown flag --passwrod');
    expect(named.stderr).not.toContain('SECRETSECRET');
  });

  test('a flag value taken for a command word (a password before the sub-command) is not echoed', async () => {
    const r = await build(['images', '--password', 'Hunter2Secret!', 'push', '--json']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('unknown command after "images" (the word is not shown): expected one of build, push');
    for (const out of [r.stderr, r.stdout]) expect(out).not.toContain('Hunter2Secret');
    const lower = await build(['images', '--password', 'hunter', 'push']);
    expect(lower.code).toBe(2);
    expect(lower.stderr).not.toContain('hunter');
  });

  test('--json failure still prints one JSON document on stdout', async () => {
    const dir = tempDir();
    const r = await build(['profile', '--profile', 'prod', '--image-prefix', 'x', '--image-tag', 'latest', '--registry', 'ghcr.io/o', '--file', join(dir, 'p.env'), '--json']);
    expect(r.code).toBe(1);
    const doc = JSON.parse(r.stdout);
    expect(doc.ok).toBe(false);
    expect(doc.error.code).toBe('INPUT');
    expect(r.stderr).toContain('IMAGE_TAG');
  });
});

describe('--signer-workflow alone is a usage error on every command that reads a policy', () => {
  const wf = ['--signer-workflow', 'acme/app/.github/workflows/release.yml'];
  const cases: Array<[BinaryName, string, (root: string, units: string) => string[]]> = [
    ['containai-host', 'install', (root) => ['install', '--version', 'v1.0.0', '--bundle', '/nonexistent/b.tar.gz', '--allow-nonroot', '--install-root', root]],
    ['containai-host', 'install --verify-only', (root) => ['install', '--verify-only', '--install-root', root]],
    ['containai-host', 'rollback', (root) => ['rollback', '--allow-nonroot', '--install-root', root]],
    ['containai-host', 'verify', () => ['verify', '--artifact', '/nonexistent/a', '--attestation', '/nonexistent/a.jsonl']],
    ['containai-build', 'verify', () => ['verify', '--artifact', '/nonexistent/a', '--attestation', '/nonexistent/a.jsonl']],
    ['containai-host', 'check-health', (root) => ['check-health', '--offline', '--install-root', root]],
    ['containai-host', 'systemd install', (root, units) => ['systemd', 'install', '--binary', '/bin/true', '--install-root', root, '--unit-dir', units]],
  ];
  test.each(cases)('%s %s', async (bin, _name, args) => {
    const dir = tempDir();
    const r = await run(bin, [...args(join(dir, 'root'), join(dir, 'units')), ...wf]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--signer-workflow needs --repo or --owner: a shared reusable workflow signs with its own identity for every repository that calls it');
    expect(existsSync(join(dir, 'root'))).toBe(false);
    expect(existsSync(join(dir, 'units'))).toBe(false);
    expectNoStack(r.stderr);
  });
});

describe('the last redaction layer', () => {
  const TOKEN = 'ghp_LastLayerTokenSeenAsAVersion0123456789';
  test.each([
    ['--asset-dir', (dir: string) => ['--version', TOKEN, '--asset-dir', dir]],
    ['an unsafe version', () => ['--version', `${TOKEN}/x`]],
  ])('GITHUB_TOKEN=ghp_x… install --version ghp_x… (%s) shows [REDACTED] on stderr and in --json', async (_name, args) => {
    const dir = tempDir();
    const r = await host(['install', ...args(dir), '--install-root', join(dir, 'root'), '--allow-nonroot', '--json'], { env: { GITHUB_TOKEN: TOKEN } });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('[REDACTED]');
    expect(JSON.parse(r.stdout).error.message).toContain('[REDACTED]');
    for (const out of [r.stdout, r.stderr]) {
      expect(out).not.toContain(TOKEN);
      expect(out).not.toContain(Buffer.from(TOKEN).toString('base64'));
    }
  });
});

describe('the compiled binaries ignore .env and bunfig.toml in the working folder', () => {
  test.each(BINARIES)('%s', async (bin) => {
    const dir = tempDir();
    const marker = join(dir, 'preload-ran');
    writeFileSync(join(dir, '.env'), 'IMAGE_TAG=from-dotenv\nDOCKER_HOST=unix:///tmp/evil.sock\n');
    writeFileSync(join(dir, 'evil.ts'), `require('node:fs').writeFileSync(${JSON.stringify(marker)}, 'x');\n`);
    writeFileSync(join(dir, 'bunfig.toml'), 'preload = ["./evil.ts"]\n');
    if (bin === 'containai-build') {
      // Without .env, IMAGE_TAG is unset and the profile is refused.
      const r = await build(['profile', '--profile', 'dev', '--image-prefix', 'x', '--file', 'p.env'], { cwd: dir });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('IMAGE_TAG');
      expect(existsSync(join(dir, 'p.env'))).toBe(false);
    } else {
      const r = await host(['--version'], { cwd: dir });
      expect(r.code).toBe(0);
    }
    expect(existsSync(marker)).toBe(false);
    expect(readFileSync(join(dir, '.env'), 'utf8')).toContain('from-dotenv');
  });
});
