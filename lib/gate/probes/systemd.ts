/**
 * systemd: a unit is active and its NRestarts does not grow during the trial
 * (systemd restarting a crashing service is exactly what the gate is for).
 * The unit is read through lib/gate/systemctl.ts, the one seam tests feed.
 */
import { z } from 'zod';
import { printableName } from '../../text.ts';
import { COMMON_FIELDS, type ProbeKind } from '../kind.ts';
import { parseShow } from '../systemctl.ts';
import type { SystemdProbe } from '../types.ts';

/** A unit name as systemd allows it, with its type: never an option ("-…") or a path. */
const UNIT = /^[A-Za-z0-9_:.\\@-]{1,200}\.(service|socket|target|timer|mount|path|scope|slice)$/;

const schema = z.strictObject({
  kind: z.literal('systemd'),
  ...COMMON_FIELDS,
  unit: z
    .string({ error: 'must be a unit name such as "containai-proxy.service"' })
    .regex(UNIT, 'must be a unit name with its type, such as "containai-proxy.service"')
    .refine((v) => !v.startsWith('-'), 'must not start with "-"'),
});

export const systemdProbe: ProbeKind<SystemdProbe> = {
  kind: 'systemd',
  schema,
  async prepare(fields, common) {
    return { ...common, kind: 'systemd', unit: (fields as z.infer<typeof schema>).unit };
  },
  async run(probe, ctx) {
    const props = parseShow(await ctx.systemctl(probe.unit, probe.timeoutMs));
    const load = printableName(props.get('LoadState') ?? '');
    const active = printableName(props.get('ActiveState') ?? '');
    const sub = printableName(props.get('SubState') ?? '');
    const restarts = Number(props.get('NRestarts') ?? 'NaN');
    const observed = Number.isInteger(restarts) && restarts >= 0 ? { NRestarts: restarts } : undefined;
    if (load !== 'loaded') return { ok: false, message: `${probe.unit} is not loaded (LoadState=${load || 'unknown'})`, observed };
    if (active !== 'active') return { ok: false, message: `${probe.unit} is ${active || 'in an unknown state'} (${sub || '?'})`, observed };
    const base = ctx.baseline?.NRestarts;
    if (observed && base !== undefined && observed.NRestarts > base) {
      return { ok: false, message: `${probe.unit} restarted ${observed.NRestarts - base} time${observed.NRestarts - base === 1 ? '' : 's'} during the trial (NRestarts ${base} → ${observed.NRestarts})`, observed };
    }
    return { ok: true, message: `${probe.unit} active (${sub})${observed ? `, NRestarts ${observed.NRestarts}` : ''}`, observed };
  },
  describe: (probe) => probe.unit,
};
