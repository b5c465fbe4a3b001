/**
 * http: a URL answers with the expected status (default 200) within the
 * timeout. Redirects are not followed: a 302 to a login page is not the
 * service answering, and it is compared with `status` as it is. The body is
 * never read. A URL with credentials is refused at load: a probe file is not
 * where a secret belongs, and the URL is printed in reports.
 */
import { z } from 'zod';
import { describeCause } from '../../errors.ts';
import { printableName } from '../../text.ts';
import { COMMON_FIELDS, type ProbeKind } from '../kind.ts';
import type { HttpProbe } from '../types.ts';

function parseUrl(value: string): URL | undefined {
  try {
    return new URL(value);
  } catch {
    return undefined;
  }
}

const schema = z.strictObject({
  kind: z.literal('http'),
  ...COMMON_FIELDS,
  url: z
    .string({ error: 'must be an http:// or https:// URL (a string)' })
    .max(2048, 'must be at most 2048 characters')
    .refine((v) => ['http:', 'https:'].includes(parseUrl(v)?.protocol ?? ''), 'must be an http:// or https:// URL')
    .refine((v) => !parseUrl(v)?.username && !parseUrl(v)?.password, 'must not hold credentials (user:password@): a probe file is no place for a secret'),
  status: z.number({ error: 'must be an HTTP status number such as 200' }).int('must be a whole number').min(100, 'must be 100 to 599').max(599, 'must be 100 to 599').optional(),
});

export const httpProbe: ProbeKind<HttpProbe> = {
  kind: 'http',
  schema,
  async prepare(fields, common) {
    const f = fields as z.infer<typeof schema>;
    return { ...common, kind: 'http', url: f.url, status: f.status ?? 200 };
  },
  async run(probe) {
    try {
      const res = await fetch(probe.url, {
        redirect: 'manual',
        signal: AbortSignal.timeout(probe.timeoutMs),
        headers: { 'user-agent': 'containai-host health gate' },
      });
      await res.body?.cancel().catch(() => undefined);
      if (res.status === probe.status) return { ok: true, message: `HTTP ${res.status}` };
      return { ok: false, message: `HTTP ${res.status}, expected ${probe.status}` };
    } catch (err) {
      const name = (err as Error).name;
      if (name === 'TimeoutError' || name === 'AbortError') return { ok: false, message: `no answer within ${probe.timeoutMs / 1000} s` };
      return { ok: false, message: `no answer: ${printableName(describeCause(err))}` };
    }
  },
  describe: (probe) => `GET ${printableName(probe.url)} → ${probe.status}`,
};
