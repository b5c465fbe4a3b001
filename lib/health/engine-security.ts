/**
 * The engine's own hardening, from /info: seccomp and an LSM (AppArmor, or
 * SELinux where that is the distribution's choice), rootless mode, and a gVisor
 * runtime for sandboxing agents. Missing ones warn: the host still works.
 */
import { z } from 'zod';
import type { CheckOutcome, HealthCheck } from './types.ts';

const infoSchema = z
  .object({
    SecurityOptions: z.array(z.string()).nullish(),
    Runtimes: z.record(z.string(), z.unknown()).nullish(),
    DefaultRuntime: z.string().optional(),
  })
  .loose();

export interface SecurityFacts {
  seccomp: boolean;
  apparmor: boolean;
  selinux: boolean;
  rootless: boolean;
  gvisor?: string;
}

/** Reads SecurityOptions ("name=seccomp,profile=default", "name=rootless") and Runtimes. */
export function securityFacts(info: unknown): SecurityFacts {
  const parsed = infoSchema.safeParse(info);
  const options = parsed.success ? (parsed.data.SecurityOptions ?? []) : [];
  const names = new Set(options.map((o) => /(?:^|,)name=([^,]+)/.exec(o)?.[1] ?? o));
  const runtimes = parsed.success ? Object.entries(parsed.data.Runtimes ?? {}) : [];
  const gvisor = runtimes.find(([name, def]) => name === 'runsc' || /runsc/.test(JSON.stringify(def)))?.[0];
  return { seccomp: names.has('seccomp'), apparmor: names.has('apparmor'), selinux: names.has('selinux'), rootless: names.has('rootless'), gvisor };
}

export function judgeSecurity(facts: SecurityFacts): CheckOutcome {
  const parts = [
    facts.seccomp ? 'seccomp on' : 'seccomp OFF',
    facts.apparmor ? 'AppArmor on' : facts.selinux ? 'SELinux on' : 'no AppArmor/SELinux',
    facts.rootless ? 'rootless' : 'rootful',
    facts.gvisor ? `gVisor runtime "${facts.gvisor}"` : 'no gVisor runtime',
  ];
  const fixes: string[] = [];
  if (!facts.seccomp) fixes.push('build Docker with seccomp and do not run dockerd with seccomp disabled');
  if (!facts.apparmor && !facts.selinux) fixes.push('enable AppArmor (apt-get install apparmor, reboot) so Docker applies docker-default');
  if (!facts.gvisor) fixes.push('install gVisor (runsc) and register it in /etc/docker/daemon.json "runtimes"');
  return {
    status: fixes.length > 0 ? 'warn' : 'pass',
    message: parts.join(', '),
    fix: fixes[0],
    details: { ...facts },
  };
}

export const engineSecurityCheck: HealthCheck = {
  id: 'engine-security',
  title: 'engine security',
  timeoutMs: 8_000,
  async run(ctx) {
    let probe;
    try {
      probe = await ctx.engine();
    } catch {
      return { status: 'skip', message: 'no engine to ask (see the engine check)' };
    }
    if (probe.identity.kind !== 'docker') return { status: 'skip', message: 'not a Docker engine (see the engine check)' };
    return judgeSecurity(securityFacts(await probe.info()));
  },
};
