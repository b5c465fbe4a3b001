import { defineCommand } from 'citty';
import { log, printJson, printResult } from '../../lib/cli/output.ts';
import { printableName } from '../../lib/text.ts';
import type { TrustSource, TrustStatus } from '../../lib/trust/status.ts';
import { jsonArgs, trustDirArgs } from '../_shared.ts';

const STATUS_WORD: Record<TrustSource['status'], string> = { ok: 'ok', none: 'no end date', warn: 'ENDS SOON', expired: 'EXPIRED', invalid: 'INVALID' };

function formatStatus(status: TrustStatus): string {
  const lines: string[] = [];
  for (const s of status.sources) {
    const facts = [
      s.tufVersion !== undefined ? `TUF root v${s.tufVersion}` : undefined,
      s.builtAt ? `built in ${s.builtAt.slice(0, 10)}` : undefined,
      s.verifiedAt ? `verified ${s.verifiedAt.slice(0, 16).replace('T', ' ')} from ${s.mirror}` : undefined,
      s.keyId ? `${s.algorithm} key sha256:${s.keyId.slice(0, 16)}…` : undefined,
      s.problem ?? (s.end ? `ends ${s.end.slice(0, 10)} (${s.endReason})` : 'no end date'),
    ].filter(Boolean);
    lines.push(`${s.inUse ? '*' : ' '} ${printableName(s.name)}: ${facts.join('; ')} [${STATUS_WORD[s.status]}]`);
    for (const p of s.parts) lines.push(`    ${p.what}${p.end ? `: ends ${p.end.slice(0, 10)}` : ': no end'}${p.retired ? ' (retired: verifies older signatures only)' : ''}`);
  }
  lines.push(`* in use. Public-good: ${status.publicGood.used ? status.publicGood.reason : 'not used (--no-public-good)'}.`);
  if (status.publicGood.storedProblem) lines.push(`Not used: ${status.publicGood.storedProblem}`);
  return lines.join('\n');
}

const status = defineCommand({
  meta: { name: 'status', description: 'List every trust source (public-good root compiled in or TUF-updated, pinned roots and keys) with its end date.' },
  args: { ...trustDirArgs, ...jsonArgs },
  async run({ args }) {
    const { collectTrustStatus } = await import('../../lib/trust/status.ts');
    const result = collectTrustStatus({ trustDir: args['trust-dir'] });
    if (args.json) printJson({ ok: true, ...result });
    else printResult(formatStatus(result));
  },
});

const update = defineCommand({
  meta: {
    name: 'update',
    description:
      'Refresh the public-good Sigstore trusted root through TUF, verified from the root compiled in, and keep it in the state folder for offline verification. Never needed to install; offline, it keeps what it has.',
  },
  args: { ...jsonArgs },
  async run({ args }) {
    const { updateTrustedRoot } = await import('../../lib/trust/tuf.ts');
    const { tufSettings } = await import('../../lib/trust/tuf-store.ts');
    log().start(`refreshing the public-good trusted root from ${tufSettings().mirror}`);
    const result = await updateTrustedRoot();
    const u = result.update;
    const inUse =
      result.after.inUse === 'tuf-updated'
        ? 'offline verification uses it from now on'
        : `offline verification keeps the compiled-in root (${result.after.reason})`;
    const what =
      result.outcome === 'updated'
        ? `updated: TUF root v${result.before.tufVersion} → v${u.root.version}, trusted_root.json sha256:${u.trustedRootSha256.slice(0, 16)}…`
        : `unchanged: TUF root v${u.root.version} is the newest, re-verified now`;
    printResult(`${what}; kept in ${result.path}; ${inUse}`, { json: args.json });
    if (args.json) {
      printJson({
        ok: true,
        outcome: result.outcome,
        mirror: result.mirror,
        path: result.path,
        inUse: result.after.inUse,
        verifiedAt: u.verifiedAt,
        root: u.root,
        timestamp: u.timestamp,
        snapshot: u.snapshot,
        targets: u.targets,
        trustedRootSha256: u.trustedRootSha256,
      });
    }
  },
});

export default defineCommand({
  meta: { name: 'trust', description: 'What this host trusts and until when (status), and refreshing the public-good root through TUF (update).' },
  subCommands: { status, update },
});
