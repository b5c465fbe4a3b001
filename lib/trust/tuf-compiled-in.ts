/**
 * Facts about the public-good root compiled into this binary, worked out once
 * by `bun build` (Bun macros: run at bundle time, and by the transpiler when
 * run from source), so the binary carries them as constants:
 *
 *  - when it was built (SOURCE_DATE_EPOCH when set: reproducible builds);
 *  - the TUF root.json version and expiry of @sigstore/tuf's seed;
 *  - the dated keys of the seed's trusted_root.json (lib/trust/expiry.ts).
 *
 * check-health's trust check has 5 ms; decoding the seed and parsing its
 * certificates at run time cost about 1.5 ms of them (measured, compiled,
 * cold), for facts that cannot change after the build.
 *
 * Imported only with `with { type: 'macro' }`; never called at run time.
 */
import seeds from '@sigstore/tuf/seeds.json' with { type: 'json' };
import { trustedRootKinds, type KeyKind } from './expiry.ts';

const PUBLIC_GOOD_TUF_URL = 'https://tuf-repo-cdn.sigstore.dev';

export function builtAt(): string {
  const epoch = process.env.SOURCE_DATE_EPOCH;
  const ms = epoch && /^\d{1,12}$/.test(epoch) ? Number(epoch) * 1000 : Date.now();
  return new Date(ms).toISOString();
}

export interface CompiledInFacts {
  tufVersion: number;
  tufExpires: string;
  kinds: KeyKind[];
}

export function compiledInFacts(): CompiledInFacts {
  const entry = (seeds as Record<string, { 'root.json': string; targets: Record<string, string> }>)[PUBLIC_GOOD_TUF_URL];
  if (!entry?.['root.json'] || !entry.targets['trusted_root.json']) throw new Error('@sigstore/tuf has no seed for the public-good instance');
  const { signed } = JSON.parse(Buffer.from(entry['root.json'], 'base64').toString('utf8')) as { signed: { version: number; expires: string } };
  if (!Number.isInteger(signed.version) || typeof signed.expires !== 'string') throw new Error('the seed root.json has no version or expiry');
  const trustedRoot = JSON.parse(Buffer.from(entry.targets['trusted_root.json'], 'base64').toString('utf8'));
  return { tufVersion: signed.version, tufExpires: signed.expires, kinds: trustedRootKinds(trustedRoot) };
}
