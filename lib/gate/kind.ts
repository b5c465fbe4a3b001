/**
 * What every probe kind provides (one file per kind under lib/gate/probes/,
 * listed in probes/index.ts), and the fields every probe file has.
 */
import { z } from 'zod';
import { parseSpanMs } from './span.ts';
import type { FieldProblem, FileProbe, ProbeCommon, ProbeContext, ProbeOutcome } from './types.ts';

/** Names the health checks take as probes; a probe file may not take them. */
export const CHECK_PROBE_PREFIX = 'health:';

const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

const span = z
  .string({ error: 'must be a time span such as "5s" or "2min" (a string)' })
  .refine((v) => (parseSpanMs(v) ?? 0) > 0, 'must be a time span such as "5s" or "2min"');

/** name, timeout, grace: every kind has them. kind itself is each kind's literal. */
export const COMMON_FIELDS = {
  name: z
    .string({ error: 'must be a string naming the probe' })
    .min(1, 'must not be empty')
    .max(80, 'must be at most 80 characters')
    .refine((v) => !CONTROL.test(v), 'must be printable text (no control characters)')
    .refine((v) => !v.startsWith(CHECK_PROBE_PREFIX), `must not start with "${CHECK_PROBE_PREFIX}" (the health checks' probes are named so)`),
  timeout: span.optional(),
  grace: span.optional(),
};

export interface PrepareContext {
  /** The release folder the probe belongs to (or is checked against). */
  releaseDir: string;
  /** The file, as the refusal names it. */
  file: string;
}

export interface ProbeKind<P extends FileProbe = FileProbe> {
  kind: P['kind'];
  /** The whole file for this kind: COMMON_FIELDS, the kind's literal and its own fields; strict. */
  schema: z.ZodObject;
  /** Turns a file that matched the schema into a probe, or names the fields that are wrong. */
  prepare(fields: Record<string, unknown>, common: ProbeCommon, place: PrepareContext): Promise<P | FieldProblem[]>;
  run(probe: P, ctx: ProbeContext): Promise<ProbeOutcome>;
  /** What it looks at, in a few words, for gate status. */
  describe(probe: P): string;
}
