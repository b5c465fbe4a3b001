/**
 * End dates of trust: until when a Sigstore trusted root can verify a new
 * signature, when a certificate ends, and the rule check-health applies
 * (SPEC "check-health": warn within 60 days of an end date, fail once one has
 * passed).
 *
 * A trusted root lists keys with validity windows. A key whose window has
 * ended is retired, not expired: it still verifies what was signed inside its
 * window, and Sigstore keeps retired keys in its root for that reason (the
 * public-good root carries a CA and a CT log that ended in 2022). What ends a
 * root is the last key of a kind it needs: a CA always; a transparency log
 * when it has any, a CT log when it has any (lib/trust/roots.ts requires one
 * entry of each kind the root lists); a timestamp authority when it has no
 * transparency log to date signatures. A CA's key ends at its validFor.end or
 * when a certificate of its chain does, whichever is first.
 *
 * Plain JSON and node:crypto only: check-health reads this every minute and
 * must not load the Sigstore verifier for it. The fields read are checked by
 * hand rather than with a zod schema: the check has 5 ms, and a schema's
 * first parse cost 7 ms cold here (0.9 ms warm); by hand, under 1 ms cold.
 * A field of the wrong type is a thrown Error naming it.
 */
import { X509Certificate } from 'node:crypto';

export const WARN_WITHIN_DAYS = 60;
const DAY_MS = 86_400_000;

export type EndStatus = 'ok' | 'warn' | 'expired' | 'none';

/** One dated part of a trust source: a CA, a log key, a TUF root, a certificate. */
export interface DatedPart {
  what: string;
  start?: string;
  /** ISO date; absent: no end. */
  end?: string;
  /** Its window ended, but the source has a newer part of the same kind: it only verifies older signatures. */
  retired?: boolean;
}

export interface Ends {
  parts: DatedPart[];
  /** When the source stops verifying new signatures; absent: no end date. */
  end?: string;
  /** What ends then, in words. */
  endReason?: string;
}

type Json = Record<string, unknown>;

function field(obj: Json, key: string, where: string): Json | undefined {
  const v = obj[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'object' || Array.isArray(v)) throw new Error(`${where}.${key} is not an object`);
  return v as Json;
}

function list(obj: Json, key: string): Json[] {
  const v = obj[key];
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || v.some((e) => typeof e !== 'object' || e === null)) throw new Error(`${key} is not a list of objects`);
  return v as Json[];
}

function text(obj: Json | undefined, key: string, where: string): string | undefined {
  const v = obj?.[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw new Error(`${where}.${key} is not a string`);
  return v;
}

function window(obj: Json | undefined, where: string): { start?: string; end?: string } {
  const w = obj ? field(obj, 'validFor', where) : undefined;
  return { start: text(w, 'start', `${where}.validFor`), end: text(w, 'end', `${where}.validFor`) };
}

function certificates(obj: Json, where: string): string[] {
  const chain = field(obj, 'certChain', where);
  return chain ? list(chain, 'certificates').map((c, i) => text(c, 'rawBytes', `${where}.certChain.certificates[${i}]`) ?? '') : [];
}

const iso = (ms: number) => new Date(ms).toISOString();

function dateMs(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? undefined : ms;
}

function minEnd(...values: Array<number | undefined>): number | undefined {
  const known = values.filter((v): v is number => v !== undefined);
  return known.length ? Math.min(...known) : undefined;
}

/** notAfter of every certificate in a chain, the earliest first; a certificate that does not parse has always ended (it verifies nothing). */
function chainEnd(chain: string[]): number | undefined {
  let end: number | undefined;
  for (const rawBytes of chain) {
    let ms: number;
    try {
      ms = Date.parse(new X509Certificate(Buffer.from(rawBytes, 'base64')).validTo);
    } catch {
      ms = 0;
    }
    end = minEnd(end, ms);
  }
  return end;
}

/** The keys of one kind a trusted root lists, with their windows (absolute dates): what the ends follow from. */
export interface KeyKind {
  label: string;
  /** Whether verification needs a key of this kind (see the header). */
  needed: boolean;
  entries: Array<{ what: string; start?: string; end?: number }>;
}

/**
 * The dated keys of a trusted_root.json (parsed JSON); throws on a shape that is no trusted root.
 * Independent of the time it is read, so the compiled-in root's are worked out at build time.
 */
export function trustedRootKinds(json: unknown): KeyKind[] {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Error('a trusted root is a JSON object');
  const root = json as Json;
  const logs = (key: string, label: string) =>
    list(root, key).map((l, i) => {
      const where = `${key}[${i}]`;
      const w = window(field(l, 'publicKey', where), `${where}.publicKey`);
      return { what: `${label} ${text(l, 'baseUrl', where) ?? '?'}`, start: w.start, end: dateMs(w.end) };
    });
  const authorities = (key: string, label: string) =>
    list(root, key).map((a, i) => {
      const where = `${key}[${i}]`;
      const w = window(a, where);
      return { what: `${label} ${text(a, 'uri', where) ?? '?'}`, start: w.start, end: minEnd(dateMs(w.end), chainEnd(certificates(a, where))) };
    });
  const tlogs = logs('tlogs', 'transparency log');
  const ctlogs = logs('ctlogs', 'CT log');
  const tsas = authorities('timestampAuthorities', 'timestamp authority');
  return [
    { label: 'CA', needed: true, entries: authorities('certificateAuthorities', 'CA') },
    { label: 'transparency log', needed: tlogs.length > 0, entries: tlogs },
    { label: 'CT log', needed: ctlogs.length > 0, entries: ctlogs },
    { label: 'timestamp authority', needed: tlogs.length === 0 && tsas.length > 0, entries: tsas },
  ];
}

/** When the keys stop verifying new signatures, judged at now; which ones are retired. */
export function endsOfKinds(kinds: KeyKind[], now = Date.now()): Ends {
  const parts: DatedPart[] = [];
  let end: number | undefined;
  let endReason: string | undefined;
  for (const kind of kinds) {
    // The kind lasts as long as its last entry; an entry with no end keeps it open.
    const open = kind.entries.some((e) => e.end === undefined);
    const last = open || kind.entries.length === 0 ? undefined : Math.max(...kind.entries.map((e) => e.end as number));
    for (const e of kind.entries) {
      parts.push({ what: e.what, start: e.start, end: e.end === undefined ? undefined : iso(e.end), retired: e.end !== undefined && e.end <= now && (open || (last !== undefined && e.end < last)) });
    }
    if (!kind.needed) continue;
    const kindEnd = kind.entries.length === 0 ? now : last;
    if (kindEnd !== undefined && (end === undefined || kindEnd < end)) {
      end = kindEnd;
      endReason = kind.entries.length === 0 ? `it has no ${kind.label}` : `its last ${kind.label} key ends`;
    }
  }
  return { parts, end: end === undefined ? undefined : iso(end), endReason };
}

/** The end dates of a trusted_root.json (parsed JSON) at now. */
export function trustedRootEnds(json: unknown, now = Date.now()): Ends {
  return endsOfKinds(trustedRootKinds(json), now);
}

/** The earliest of several ends; the reason goes with it. */
export function earliest(...ends: Array<{ end?: string; endReason?: string }>): { end?: string; endReason?: string } {
  let best: { end?: string; endReason?: string } = {};
  for (const e of ends) {
    if (e.end !== undefined && (best.end === undefined || Date.parse(e.end) < Date.parse(best.end))) best = { end: e.end, endReason: e.endReason };
  }
  return best;
}

/** SPEC: warn within 60 days of an end date, fail (expired) once it has passed. */
export function endStatus(end: string | undefined, now = Date.now()): EndStatus {
  if (end === undefined) return 'none';
  const ms = Date.parse(end);
  if (ms <= now) return 'expired';
  return ms - now <= WARN_WITHIN_DAYS * DAY_MS ? 'warn' : 'ok';
}

/** Whole days from now to end (negative once passed). */
export function daysLeft(end: string, now = Date.now()): number {
  return Math.floor((Date.parse(end) - now) / DAY_MS);
}

export function certificateEnd(pem: string): { end?: string; problem?: string } {
  try {
    return { end: new Date(Date.parse(new X509Certificate(pem).validTo)).toISOString() };
  } catch {
    return { problem: 'its certificate cannot be parsed' };
  }
}
