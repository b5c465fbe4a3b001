/** cmd/_shared.ts readPolicyFlags: the one reader of the policy flags, for every command that takes them. */
import { describe, expect, test } from 'bun:test';
import { readPolicyFlags } from '../../cmd/_shared.ts';
import { ContainaiError } from '../../lib/errors.ts';

describe('readPolicyFlags', () => {
  test('only policy flag words choose a policy: --install-root or --trust-dir do not, nor a value that reads like a flag name', () => {
    for (const raw of [
      ['--install-root', '/opt/x'],
      ['--trust-dir', '/etc/containai/trust'],
      ['--install-root', 'repo'],
      ['--trust-dir', 'key'],
      ['--json', '--offline', '--install-root=/x'],
      ['--', '--repo', 'a/b'],
    ]) {
      expect(readPolicyFlags({}, raw).chosen, raw.join(' ')).toBe(false);
    }
    for (const raw of [['--repo', 'acme/app'], ['--key=k.pub'], ['--no-public-good'], ['--allow-unsigned'], ['--predicate-type', 'x']]) {
      expect(readPolicyFlags({}, raw).chosen, raw.join(' ')).toBe(true);
    }
    expect(readPolicyFlags({}, ['--allow-unsigned'], { notChoosing: ['allow-unsigned'] }).chosen).toBe(false);
  });

  test('the policy is validated whether or not it was chosen, and a workflow alone is exit 2', () => {
    const e = (() => {
      try {
        readPolicyFlags({ 'signer-workflow': 'acme/app/.github/workflows/release.yml' }, ['--signer-workflow', 'acme/app/.github/workflows/release.yml']);
      } catch (err) {
        return err as ContainaiError;
      }
      throw new Error('expected a usage error');
    })();
    expect(e.exitCode).toBe(2);
    expect(e.message).toContain('--signer-workflow needs --repo or --owner');
    expect(readPolicyFlags({ repo: 'acme/app' }, ['--repo', 'acme/app']).policy.repo).toBe('acme/app');
  });
});
