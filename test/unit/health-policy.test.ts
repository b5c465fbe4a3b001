/** lib/release/record-policy.ts policyFromRecord: what install.json (writable by whoever can write the install root) may decide. */
import { afterAll, describe, expect, test } from 'bun:test';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_RECORD_POLICY, policyFromRecord } from '../../lib/release/record-policy.ts';
import type { InstallRecord } from '../../lib/release/record.ts';

const work = mkdtempSync(join(tmpdir(), 'cai-health-policy-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function trustDir(files: Record<string, string>): string {
  const dir = mkdtempSync(join(work, 'trust-'));
  mkdirSync(dir, { recursive: true });
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

const record = (signer: InstallRecord['signer']): InstallRecord => ({
  version: 'v1.0.0',
  source: '/tmp/containai-v1.0.0.tar.gz',
  bundle: 'containai-v1.0.0.tar.gz',
  bundleSha256: 'a'.repeat(64),
  payloadSha256: 'b'.repeat(64),
  signer,
  installedAt: '2026-01-01T00:00:00Z',
  installedBy: 'test',
});

describe('policyFromRecord', () => {
  test('an UNSIGNED record allows unsigned only when the trust dir pins nothing', () => {
    for (const dir of [join(work, 'absent'), trustDir({}), trustDir({ 'notes.txt': 'not a key' })]) {
      expect(policyFromRecord(record('UNSIGNED'), { ...DEFAULT_RECORD_POLICY, trustDir: dir }).allowUnsigned).toBe(true);
    }
  });

  test.each([['release.pub'], ['ca.json']])('an UNSIGNED record is refused when the trust dir pins %s', (name) => {
    const dir = trustDir({ [name]: 'pinned' });
    expect(() => policyFromRecord(record('UNSIGNED'), { ...DEFAULT_RECORD_POLICY, trustDir: dir })).toThrow(/installed UNSIGNED, but the trust dir .* pins 1/);
  });

  test('a signed record never allows unsigned', () => {
    const policy = policyFromRecord(record({ kind: 'attestation', workflow: 'https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main' }), DEFAULT_RECORD_POLICY);
    expect(policy).toMatchObject({ allowUnsigned: false, signerWorkflow: 'https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main' });
  });

  test('a recorded workflow comes with the recorded repository: a workflow alone is never the policy', () => {
    const wf = 'https://github.com/org/shared/.github/workflows/release.yml@refs/heads/main';
    expect(policyFromRecord(record({ kind: 'attestation', sourceRepository: 'acme/app', workflow: wf }), DEFAULT_RECORD_POLICY)).toMatchObject({ repo: 'acme/app', signerWorkflow: wf });
  });
});
