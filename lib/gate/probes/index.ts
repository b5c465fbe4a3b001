/** Every kind a probe file may name, as lib/health/checks.ts lists the checks. A new kind is one file and one line. */
import type { ProbeKind } from '../kind.ts';
import type { FileProbe } from '../types.ts';
import { containersProbe } from './containers.ts';
import { execProbe } from './exec.ts';
import { httpProbe } from './http.ts';
import { systemdProbe } from './systemd.ts';

export const PROBE_KINDS: readonly ProbeKind<any>[] = [execProbe, httpProbe, systemdProbe, containersProbe];

export function probeKind(kind: string): ProbeKind<FileProbe> | undefined {
  return PROBE_KINDS.find((k) => k.kind === kind);
}
