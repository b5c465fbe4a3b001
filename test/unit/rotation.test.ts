/**
 * Key rotation with an overlap (issue 15), in-process with the production
 * verifier: a trust dir pinning the old and the new key verifies a release
 * manifest (SHA256SUMS) signed by either; once the old key is removed, a
 * release signed only by it is refused, and the agent path (self-update)
 * says that the key is not pinned. verifyBlob is what install, rollback and
 * self-update call, so this is the rule they all apply.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { verifyAgentSums } from '../../lib/agent/verify.ts';
import { ContainaiError } from '../../lib/errors.ts';
import { loadSigningKey } from '../../lib/trust/keys.ts';
import { policyFromArgs } from '../../lib/trust/policy.ts';
import { signBlob } from '../../lib/trust/sign.ts';
import { verifyBlob } from '../../lib/trust/verify.ts';
import { makeKeyPair, sha256Hex, writeKeyPair } from '../helpers/signing.ts';
import { refusal } from '../helpers/refusal.ts';

const dir = mkdtempSync(join(tmpdir(), 'cai-rotation-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const keys = join(dir, 'keys');
mkdirSync(keys);
const oldKey = writeKeyPair(keys, 'release-2025', makeKeyPair());
const newKey = writeKeyPair(keys, 'release-2026', makeKeyPair('ed25519'));

/** A trust dir pinning these public keys, as an operator copies them to /etc/containai/trust. */
function trustDir(name: string, pubs: Array<{ pub: string }>): string {
  const d = join(dir, name);
  mkdirSync(d, { mode: 0o755 });
  for (const p of pubs) writeFileSync(join(d, basename(p.pub)), readFileSync(p.pub), { mode: 0o644 });
  return d;
}

const SUMS = Buffer.from(`${sha256Hex('payload')}  host/install.sh\n${sha256Hex('{}')}  release.json\n`);
const AGENT_SUMS = Buffer.from(`${sha256Hex('arm')}  containai-host-linux-arm64\n${sha256Hex('x64')}  containai-host-linux-x64\n`);

async function signed(bytes: Buffer, key: { key: string }, name: string) {
  const path = join(dir, `${name}-${Math.random().toString(16).slice(2)}`);
  writeFileSync(path, bytes);
  const s = await signBlob(path, await loadSigningKey(key.key));
  return { sigstoreBundle: JSON.stringify(s.bundle), sig: s.signatureBase64 };
}

const policy = (trust: string) => policyFromArgs({ 'trust-dir': trust, 'public-good': false });

describe('key rotation', () => {
  const both = trustDir('both', [oldKey, newKey]);
  const newOnly = trustDir('new-only', [newKey]);

  test('during the overlap (old and new pinned) a release signed by either key verifies, each by its own key', async () => {
    const byOld = await verifyBlob(SUMS, await signed(SUMS, oldKey, 'old'), policy(both), { artifact: 'SHA256SUMS' });
    const byNew = await verifyBlob(SUMS, await signed(SUMS, newKey, 'new'), policy(both), { artifact: 'SHA256SUMS' });
    expect(byOld.kind).toBe('key');
    expect(byNew.kind).toBe('key');
    expect(byOld.signer?.keyId).not.toBe(byNew.signer?.keyId);
    // The bare .sig alone (cosign verify-blob --key) also verifies with either.
    const sigOnly = await signed(SUMS, oldKey, 'old-sig');
    expect((await verifyBlob(SUMS, { sig: sigOnly.sig }, policy(both), { artifact: 'SHA256SUMS' })).kind).toBe('key');
  });

  test('after the old key is removed, a release signed only by it is refused under the current policy, and the new one still verifies', async () => {
    expect((await verifyBlob(SUMS, await signed(SUMS, newKey, 'new'), policy(newOnly), { artifact: 'SHA256SUMS' })).kind).toBe('key');
    const err = await refusal(verifyBlob(SUMS, await signed(SUMS, oldKey, 'old'), policy(newOnly), { artifact: 'SHA256SUMS' }));
    expect(err.code).toBe('VERIFY');
    expect(err.message).toContain('does not verify with any pinned key (altered, or signed by another key)');
    const bundleOnly = await signed(SUMS, oldKey, 'old');
    const viaBundle = await refusal(verifyBlob(SUMS, { sigstoreBundle: bundleOnly.sigstoreBundle }, policy(newOnly), { artifact: 'SHA256SUMS' }));
    expect(viaBundle.message).toMatch(/SHA256SUMS|signature bundle/);
    expect(viaBundle.message).toContain('the signature does not verify with any pinned key');
    // The bundle's key hint names the removed key: the reason is said, not only the refusal.
    expect(viaBundle.message).toContain('which this host does not pin (removed in a key rotation, or another signer)');
  });

  test('self-update names the reason: the key that signed is not pinned here any more', async () => {
    const material = await signed(AGENT_SUMS, oldKey, 'agent-old');
    const parts = { sums: AGENT_SUMS, signatures: material, labels: { artifact: 'containai-host.SHA256SUMS', attestation: 'attestation.intoto.jsonl', sigstoreBundle: 'containai-host.SHA256SUMS.sigstore.json', sig: 'containai-host.SHA256SUMS.sig' } };
    expect((await verifyAgentSums(parts, policy(both), 'x64')).sha256).toBe(sha256Hex('x64'));
    const err = await refusal(verifyAgentSums(parts, policy(newOnly), 'x64'));
    expect(err.message).toMatch(/which this host does not pin \(a key removed after a rotation no longer verifies the releases it alone signed\)/);
    expect(err.hint).toContain('signed with the new key');
  });
});
