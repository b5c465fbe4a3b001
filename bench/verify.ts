/**
 * `containai-host verify --bundle` over a 200 MB payload against `sha256sum`
 * on the same payload.tar.gz (issue 4: at most 1.2×). The payload is opaque to
 * verification (it is hashed, not read as an archive), so random bytes stand
 * for a compressed payload. Three bundles: a test-CA attestation (the GitHub
 * path), an ECDSA P-256 key signature (cosign's default key type: verified
 * against the digest taken while unpacking, so the target applies), and an
 * Ed25519 key signature (pure EdDSA needs the bytes again: shown, no target).
 *
 *   bun scripts/build.ts && bun bench/verify.ts [--mb 200] [--runs 5] [--bin PATH]
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { sha256File } from '../lib/digest.ts';
import { loadSigningKey } from '../lib/trust/keys.ts';
import { signBlob } from '../lib/trust/sign.ts';
import { makeKeyPair, makeTestCA, writeKeyPair } from '../test/helpers/signing.ts';

// --bin: another build of containai-host, to compare before and after a change.
const { values } = parseArgs({ options: { mb: { type: 'string', default: '200' }, runs: { type: 'string', default: '5' }, bin: { type: 'string' } } });
const MB = Number(values.mb);
const RUNS = Number(values.runs);
const root = join(import.meta.dir, '..');
const hostBin = values.bin ?? join(root, 'dist', 'containai-host');

const work = mkdtempSync(join(tmpdir(), 'cai-bench-verify-'));
try {
  const members = join(work, 'members');
  mkdirSync(members);
  const payload = join(members, 'payload.tar.gz');
  const fd = openSync(payload, 'w');
  for (let i = 0; i < MB; i++) writeSync(fd, randomBytes(1 << 20));
  closeSync(fd);
  const digest = await sha256File(payload);
  writeFileSync(join(members, 'payload.sha256'), `${digest}  payload.tar.gz\n`);

  const ca = makeTestCA();
  const rootFile = join(work, 'root.json');
  writeFileSync(rootFile, JSON.stringify(ca.trustedRoot));
  const trustDir = join(work, 'trust');
  mkdirSync(trustDir);
  const keys = writeKeyPair(work, 'release', makeKeyPair('ecdsa'));
  const signed = await signBlob(payload, await loadSigningKey(keys.key));
  const edKeys = writeKeyPair(work, 'release-ed25519', makeKeyPair('ed25519'));
  const edSigned = await signBlob(payload, await loadSigningKey(edKeys.key));

  function pack(name: string, extra: Record<string, string>): string {
    for (const [m, content] of Object.entries(extra)) writeFileSync(join(members, m), content);
    const out = join(work, `${name}.tar.gz`);
    const files = ['payload.tar.gz', 'payload.sha256', ...Object.keys(extra)];
    // gzip -1 over an incompressible payload, as the bundle writer's default level.
    const r = Bun.spawnSync(['bash', '-c', 'tar --format=ustar --owner=0 --group=0 -cf - -C "$1" "${@:2}" | gzip -1 > "$0"', out, members, ...files]);
    if (r.exitCode !== 0) throw new Error(`tar failed: ${r.stderr}`);
    for (const m of Object.keys(extra)) rmSync(join(members, m));
    return out;
  }
  const attested = pack('attested', { 'attestation.intoto.jsonl': `${JSON.stringify(ca.attest(digest))}\n` });
  const keySigned = pack('keysigned', { 'payload.sigstore.json': JSON.stringify(signed.bundle) });
  const edBundle = pack('keysigned-ed25519', { 'payload.sigstore.json': JSON.stringify(edSigned.bundle) });

  async function time(argv: string[]): Promise<number> {
    const t = performance.now();
    const p = Bun.spawn(argv, { stdout: 'ignore', stderr: 'pipe' });
    const [code, err] = await Promise.all([p.exited, new Response(p.stderr).text()]);
    if (code !== 0) throw new Error(`${argv.join(' ')} failed (${code}): ${err}`);
    return performance.now() - t;
  }
  async function median(argv: string[]): Promise<number> {
    await time(argv); // warm the page cache and the binary
    const xs: number[] = [];
    for (let i = 0; i < RUNS; i++) xs.push(await time(argv));
    xs.sort((a, b) => a - b);
    return xs[Math.floor(xs.length / 2)] as number;
  }

  const common = ['--trusted-root', rootFile, '--trust-dir', trustDir];
  const sha = await median(['sha256sum', payload]);
  const att = await median([hostBin, 'verify', '--bundle', attested, '--repo', 'acme/widgets', ...common]);
  const key = await median([hostBin, 'verify', '--bundle', keySigned, '--key', keys.pub, ...common]);
  const ed = await median([hostBin, 'verify', '--bundle', edBundle, '--key', edKeys.pub, ...common]);
  const row = (label: string, ms: number) => `${label.padEnd(48)}${ms.toFixed(0).padStart(7)} ms  ${(ms / sha).toFixed(2)}×`;
  console.log(`payload ${MB} MB, median of ${RUNS} runs`);
  console.log(row('sha256sum payload.tar.gz', sha));
  console.log(row('containai-host verify --bundle (attestation)', att));
  console.log(row('containai-host verify --bundle (ECDSA P-256 key)', key));
  console.log(row('containai-host verify --bundle (Ed25519 key)', ed));
  console.log(`ratio attestation/sha256sum: ${(att / sha).toFixed(2)} (target ≤ 1.20)`);
  console.log(`ratio ECDSA key/sha256sum: ${(key / sha).toFixed(2)} (target ≤ 1.20)`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
