/**
 * check-health --metrics-file: the report as node_exporter textfile metrics
 * (Prometheus text format 0.0.4), replaced whole: written to a temp file in
 * the same folder, flushed, renamed over the old one (lib/fs/atomic.ts), so
 * the collector reads the last report or this one, never half of one. The
 * temp name does not end in .prom, so the collector never picks it up.
 *
 * Our code, not prom-client: that library is a registry for a long-running
 * exporter (default process metrics, global state, an HTTP handler); here one
 * short-lived run prints about forty lines, and the format's rules (HELP and
 * TYPE once per family, label values escaped, counters named _total) are
 * the few lines of `family` and `label` below. The tests run promtool, the
 * format's reference checker, on the output.
 */
import { constants } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { ContainaiError, describeCause } from '../errors.ts';
import { writeFileAtomic } from '../fs/atomic.ts';
import { GATE_REPORT_STATES, gateReport, type GateReport } from '../gate/report.ts';
import { readReleaseLink } from '../release/activate.ts';
import { CURRENT_LINK, installLayout, type InstallLayout, versionOfDir } from '../release/layout.ts';
import { DECISIONS } from '../rollout/state.ts';
import { readChannelFacts, type ChannelFacts } from './channel.ts';
import type { CheckStatus, HealthReport } from './types.ts';

const STATUSES: readonly CheckStatus[] = ['pass', 'warn', 'fail', 'skip'];
const LAST_VERIFIED = 'containai_release_last_verified_timestamp_seconds';

export interface MetricsFacts {
  report: HealthReport;
  /** The update channels this host follows (lib/health/channel.ts). */
  channels?: ChannelFacts[];
  gate: GateReport;
  release?: { version: string; signer: string };
  rollbacksTotal: number;
  /** Seconds since the epoch; undefined when the release never verified while this file was kept. */
  lastVerified?: number;
  /** Seconds since the epoch: when this report was made. */
  now: number;
}

function label(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

type Sample = [labels: Record<string, string> | undefined, value: number];

function family(name: string, type: 'gauge' | 'counter', help: string, samples: Sample[]): string {
  const lines = [`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`];
  for (const [labels, value] of samples) {
    const text = labels && Object.keys(labels).length ? `{${Object.entries(labels).map(([k, v]) => `${k}="${label(v)}"`).join(',')}}` : '';
    lines.push(`${name}${text} ${Number.isFinite(value) ? value : 0}`);
  }
  return lines.join('\n');
}

export function formatMetrics(facts: MetricsFacts): string {
  const { report, gate } = facts;
  const families = [
    family('containai_healthy', 'gauge', 'Whether the last check-health found no failing check (1) or not (0).', [[undefined, report.ok ? 1 : 0]]),
    family('containai_health_last_run_timestamp_seconds', 'gauge', 'When check-health made this report.', [[undefined, facts.now]]),
    family(
      'containai_health_check_status',
      'gauge',
      'Each health check, 1 for the status it has now and 0 for the others.',
      report.checks.flatMap((c) => STATUSES.map((s): Sample => [{ check: c.id, status: s }, c.status === s ? 1 : 0])),
    ),
    family('containai_health_check_duration_seconds', 'gauge', 'How long each health check took.', report.checks.map((c): Sample => [{ check: c.id }, c.durationMs / 1000])),
    family('containai_release_info', 'gauge', 'The current release: its version and who signed it.', facts.release ? [[{ version: facts.release.version, signer: facts.release.signer }, 1]] : []),
    family(LAST_VERIFIED, 'gauge', 'The last time the current release verified (its signature, files, modes and links).', facts.lastVerified !== undefined ? [[undefined, facts.lastVerified]] : []),
    family('containai_gate_state', 'gauge', 'The health gate, 1 for the state it is in and 0 for the others.', GATE_REPORT_STATES.map((s): Sample => [{ state: s }, gate.state === s ? 1 : 0])),
    family('containai_gate_deadline_timestamp_seconds', 'gauge', 'When the trial of the release on trial ends, at the earliest.', gate.state === 'on-trial' && gate.deadline ? [[{ version: gate.version ?? '' }, Date.parse(gate.deadline) / 1000]] : []),
    family(
      'containai_gate_probe_failing',
      'gauge',
      'Each probe of the release on trial: 1 when its last round failed.',
      gate.state === 'on-trial' ? gate.probes.map((p): Sample => [{ probe: p.name }, p.status === 'fail' ? 1 : 0]) : [],
    ),
    family('containai_rollbacks_total', 'counter', 'Rollbacks on this host, by hand and by the health gate (from state/events.jsonl).', [[undefined, facts.rollbacksTotal]]),
    family('containai_bad_versions', 'gauge', 'How many versions failed their health gate (refused by install and update until --force).', [[undefined, gate.bad.length]]),
    family('containai_bad_version_info', 'gauge', 'Each version that failed its health gate.', gate.bad.map((b): Sample => [{ version: b.version }, 1])),
    ...channelFamilies(facts.channels ?? []),
  ];
  return `${families.join('\n')}\n`;
}

const seconds = (iso: string | undefined): number | undefined => (iso === undefined ? undefined : Date.parse(iso) / 1000);

/**
 * The update channels: one set of samples per channel followed, so a fleet's metrics answer "how many
 * hosts took v2", "how many wait", "which hosts see a stale channel" with a sum by label.
 */
function channelFamilies(channels: readonly ChannelFacts[]): string[] {
  const per = (value: (c: ChannelFacts) => number | undefined): Sample[] => channels.flatMap((c): Sample[] => (value(c) === undefined ? [] : [[{ channel: c.channel }, value(c) as number]]));
  return [
    family(
      'containai_update_decision',
      'gauge',
      'Each update channel, 1 for the decision its last update took and 0 for the others.',
      channels.flatMap((c) => DECISIONS.map((d): Sample => [{ channel: c.channel, decision: d }, c.decision === d ? 1 : 0])),
    ),
    family('containai_update_statement_info', 'gauge', "Each update channel's last verified rollout statement: the version it rolls out.", channels.flatMap((c): Sample[] => (c.version ? [[{ channel: c.channel, version: c.version }, 1]] : []))),
    family('containai_update_statement_sequence', 'gauge', "The sequence of each channel's last verified statement.", per((c) => c.sequence)),
    family('containai_update_ramp_share', 'gauge', "The share of hosts (0 to 1) each channel's ramp has reached now.", per((c) => c.share)),
    family('containai_update_halted', 'gauge', "Whether each channel's statement halts its rollout (1) or not (0).", per((c) => (c.version ? Number(c.halted) : undefined))),
    family('containai_update_stale', 'gauge', "Whether each channel's statement has expired (1): nothing new is installed from it.", per((c) => (c.version ? Number(c.stale) : undefined))),
    family('containai_update_statement_expires_timestamp_seconds', 'gauge', "When each channel's statement expires.", per((c) => seconds(c.expires))),
    family('containai_update_last_poll_timestamp_seconds', 'gauge', 'When update last asked the registry, per channel.', per((c) => seconds(c.lastPoll))),
    family('containai_update_last_success_timestamp_seconds', 'gauge', 'When update last read a verified statement (or found the channel unmoved), per channel.', per((c) => seconds(c.lastSuccess))),
  ];
}

/** Rollbacks the event log records: `rollback` that went through, and gate failures that rolled back. Streamed. */
export async function countRollbacks(layout: InstallLayout): Promise<number> {
  let handle;
  try {
    handle = await open(layout.events, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch {
    return 0;
  }
  let total = 0;
  try {
    for await (const line of createInterface({ input: handle.createReadStream({ encoding: 'utf8', autoClose: false }), crlfDelay: Infinity })) {
      if (!line.includes('"rollback"') && !line.includes('"gate"')) continue;
      try {
        const e = JSON.parse(line) as { action?: string; outcome?: string; decision?: string; rolledBackTo?: string };
        if ((e.action === 'rollback' && e.outcome === 'ok') || (e.action === 'gate' && e.decision === 'fail' && e.rolledBackTo)) total += 1;
      } catch {
        // A damaged line counts for nothing.
      }
    }
  } finally {
    await handle.close();
  }
  return total;
}

/** The value the file held before, so a failing verification does not erase when the last good one was. */
async function previousLastVerified(path: string): Promise<number | undefined> {
  const text = await readFile(path, 'utf8').catch(() => '');
  const match = new RegExp(`^${LAST_VERIFIED} ([0-9.e+]+)$`, 'm').exec(text);
  return match ? Number(match[1]) : undefined;
}

async function releaseOf(report: HealthReport, layout: InstallLayout): Promise<MetricsFacts['release']> {
  const details = report.checks.find((c) => c.id === 'release')?.details;
  if (typeof details?.version === 'string') return { version: details.version, signer: typeof details.signer === 'string' ? details.signer : 'unknown' };
  const current = await readReleaseLink(layout, CURRENT_LINK);
  return current.kind === 'release' ? { version: versionOfDir(current.dirName), signer: 'unknown' } : undefined;
}

/** Gathers the facts beside the report and replaces the metrics file atomically. */
export async function writeHealthMetrics(path: string, report: HealthReport, now = Date.now()): Promise<void> {
  const layout = installLayout(report.installRoot);
  const release = report.checks.find((c) => c.id === 'release');
  const verifiedNow = release !== undefined && (release.status === 'pass' || release.status === 'warn');
  const [gate, rollbacksTotal, before, info, channels] = await Promise.all([
    gateReport(layout, now),
    countRollbacks(layout),
    verifiedNow ? undefined : previousLastVerified(path),
    releaseOf(report, layout),
    readChannelFacts(report.installRoot, now),
  ]);
  const text = formatMetrics({ report, gate, release: info, rollbacksTotal, lastVerified: verifiedNow ? now / 1000 : before, now: now / 1000, channels });
  try {
    await writeFileAtomic(path, text, 0o644);
  } catch (err) {
    throw new ContainaiError('STATE', `cannot write the metrics file ${path}: ${describeCause(err)}`, {
      hint: "its folder must exist and be writable (node_exporter's --collector.textfile.directory)",
      cause: err,
    });
  }
}
