/**
 * The health timer's two units, and the update timer's two. Each service is a
 * hardened oneshot: it may read the system and talk to the Docker socket, and
 * write nowhere but the install root. Settings that would cut it off from the
 * socket (PrivateNetwork, RestrictAddressFamilies without AF_UNIX,
 * PrivateUsers, InaccessiblePaths=/run) are left out on purpose: the health
 * report asks the engine, and so do the gate's probes when update advances a
 * trial.
 */
import { z } from 'zod';
import { ContainaiError } from '../errors.ts';

export const SERVICE_NAME = 'containai-health.service';
export const TIMER_NAME = 'containai-health.timer';
export const UPDATE_SERVICE_NAME = 'containai-update.service';
export const UPDATE_TIMER_NAME = 'containai-update.timer';
export const DEFAULT_UPDATE_INTERVAL = '1h';
/** Where the update service finds registry credentials (config.json as `docker login` writes it): ProtectHome= hides root's ~/.docker. */
export const UPDATE_DOCKER_CONFIG = '/etc/containai/docker';
export const DEFAULT_UNIT_DIR = '/etc/systemd/system';
export const DEFAULT_INTERVAL = '15min';

const UNITS: Record<string, number> = {
  us: 1e-6, usec: 1e-6, ms: 1e-3, msec: 1e-3,
  s: 1, sec: 1, second: 1, seconds: 1,
  m: 60, min: 60, minute: 60, minutes: 60,
  h: 3600, hr: 3600, hour: 3600, hours: 3600,
  d: 86400, day: 86400, days: 86400,
  w: 604800, week: 604800, weeks: 604800,
  M: 2629800, month: 2629800, months: 2629800,
  y: 31557600, year: 31557600, years: 31557600,
};

/**
 * Parses a systemd time span ("15min", "1h 30min", "90s", "2m30s"; a bare
 * number is seconds) into seconds, as systemd.time(7) reads it.
 */
export function parseTimeSpan(text: string): number | undefined {
  const trimmed = text.trim();
  if (!trimmed || trimmed.length > 64) return undefined;
  const parts = [...trimmed.matchAll(/(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*/gy)];
  if (parts.map((m) => m[0]).join('') !== trimmed) return undefined;
  let seconds = 0;
  for (const [, num, unit] of parts) {
    const factor = unit === '' ? 1 : UNITS[unit as string];
    if (factor === undefined) return undefined;
    seconds += Number(num) * factor;
  }
  return seconds;
}

/** Validates --interval at the edge: a systemd time span of at least a minute (the report is cheap, but not free). */
export const intervalSchema = z.string().refine((v) => {
  const s = parseTimeSpan(v);
  return s !== undefined && s >= 60 && s <= 31557600;
}, 'must be a systemd time span between 1min and 1y, e.g. 15min, 1h, 1h 30min');

export function parseInterval(value: string, flag = '--interval'): string {
  const parsed = intervalSchema.safeParse(value);
  if (!parsed.success) {
    throw new ContainaiError('INPUT', `${flag} "${value}" ${parsed.error.issues[0]?.message ?? 'is invalid'}`, {
      hint: `see systemd.time(7); for example ${flag} 15min`,
    });
  }
  return parsed.data.trim();
}

/** systemd splits ExecStart on spaces and expands %: refuse paths that would need quoting rather than quote them. */
const UNIT_SAFE_PATH = /^\/[A-Za-z0-9._+\-/@]*$/;

export function assertUnitSafePath(path: string, flag: string): string {
  if (!UNIT_SAFE_PATH.test(path) || path.split('/').includes('..')) {
    throw new ContainaiError('INPUT', `${flag} "${path}" cannot be written into a systemd unit`, {
      hint: 'use an absolute path of letters, digits and . _ + - @ / only',
    });
  }
  return path.replace(/\/+$/, '') || '/';
}

export interface UnitOptions {
  installRoot: string;
  interval: string;
  /** The containai-host to run, outside the install root (lib/systemd/binary.ts). */
  binary: string;
  /** check-health's policy flags, already safe to write into a unit line. */
  policyArgs: string[];
}

/**
 * The sandbox both services share: what a run of containai-host may see and do, beyond writing its
 * install root and state directory (each unit says those). Settings that would cut it off from the
 * Docker socket or the registry are left out on purpose (see the module comment).
 */
const SANDBOX = `PrivateTmp=yes
ProtectHome=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
# No MemoryDenyWriteExecute: the Bun runtime's JIT needs writable+executable pages.
SystemCallArchitectures=native
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
CapabilityBoundingSet=
`;

export function serviceUnit({ installRoot, binary, policyArgs }: UnitOptions): string {
  return `# Written by containai-host systemd install. Runs the health report once; the timer repeats it.
[Unit]
Description=ContainAI host health check
Wants=network-online.target
After=network-online.target docker.service

[Service]
Type=oneshot
# The binary lives outside the install root and the policy is spelled out: whoever can write under the
# root must not choose what runs here as root, nor which signer its check trusts.
ExecStart=${[binary, 'check-health', '--json', '--install-root', installRoot, ...policyArgs].join(' ')}
# Hardening. The report reads the system, talks to the Docker socket and needs no privilege beyond that.
NoNewPrivileges=yes
ProtectSystem=strict
ReadWritePaths=-${installRoot}
# The verification stamp (lib/release/stamp.ts) lives here, outside the install root.
StateDirectory=containai
StateDirectoryMode=0700
${SANDBOX}UMask=0077
TimeoutStartSec=2min
`;
}

/** Up to a quarter of the interval, at most 5 minutes: enough to spread a fleet, short of skipping a run. */
export function randomizedDelaySeconds(interval: string): number {
  return Math.max(1, Math.min(300, Math.floor((parseTimeSpan(interval) ?? 60) / 4)));
}

export function timerUnit({ interval }: UnitOptions): string {
  return `# Written by containai-host systemd install.
[Unit]
Description=Run the ContainAI host health check every ${interval}

[Timer]
OnBootSec=2min
OnUnitActiveSec=${interval}
# Spread a fleet so hosts do not all ask the registry in the same second.
RandomizedDelaySec=${randomizedDelaySeconds(interval)}s
# No Persistent=: it only catches up OnCalendar= runs missed while the host was off, and does
# nothing for OnUnitActiveSec=. A missed health check is not worth catching up; OnBootSec= runs
# one two minutes after every boot instead.

[Install]
WantedBy=timers.target
`;
}

export interface UpdateUnitOptions {
  installRoot: string;
  /** How often to poll the channel. */
  interval: string;
  binary: string;
  /** oci://REGISTRY/REPO, checked and safe in a unit line. */
  from: string;
  channel: string;
  /** update's policy flags (the health check's, plus --rollout-signer-workflow), already safe. */
  policyArgs: string[];
}

/** The update service: the health service's sandbox, plus the network to the registry and a long enough run for a download. */
export function updateServiceUnit({ installRoot, binary, from, channel, policyArgs }: UpdateUnitOptions): string {
  return `# Written by containai-host systemd install --update-from. Polls the channel once; the timer repeats it.
[Unit]
Description=ContainAI update from ${channel}
Wants=network-online.target
After=network-online.target docker.service

[Service]
Type=oneshot
# As for the health check: the binary lives outside the install root and the policy is spelled out,
# so whoever can write under the root chooses neither what runs here as root nor whom it trusts.
ExecStart=${[binary, 'update', '--json', '--from', from, '--channel', channel, '--install-root', installRoot, ...policyArgs].join(' ')}
# Registry credentials, as \`docker login\` writes them (root-only); ProtectHome= hides /root/.docker.
Environment=DOCKER_CONFIG=${UPDATE_DOCKER_CONFIG}
NoNewPrivileges=yes
ProtectSystem=strict
ReadWritePaths=-${installRoot}
StateDirectory=containai
StateDirectoryMode=0700
${SANDBOX}# Not 0077 as for the health check: an install creates the release's folders, whose modes (0755) the
# signed manifest names and the verifier checks.
UMask=0022
# A payload download on a slow link, and the install lock held by another run.
TimeoutStartSec=30min
`;
}

/**
 * Up to half the interval, at most 30 minutes: a fleet's polls spread over the registry. FixedRandomDelay=
 * keeps each host's delay the same from run to run (systemd derives it from the machine id), so the
 * polls stay spread instead of bunching up by chance.
 */
export function updateDelaySeconds(interval: string): number {
  return Math.max(1, Math.min(1800, Math.floor((parseTimeSpan(interval) ?? 3600) / 2)));
}

export function updateTimerUnit({ interval, channel }: UpdateUnitOptions): string {
  return `# Written by containai-host systemd install --update-from.
[Unit]
Description=Poll the ContainAI channel ${channel} every ${interval}

[Timer]
OnBootSec=5min
OnUnitActiveSec=${interval}
# Spread a fleet so hosts do not all ask the registry in the same second.
RandomizedDelaySec=${updateDelaySeconds(interval)}s
FixedRandomDelay=yes

[Install]
WantedBy=timers.target
`;
}
