/**
 * Time spans of the gate (--gate 10min, a probe's "timeout": "5s"), read as
 * systemd reads them (lib/systemd/units.ts), so an operator writes the same
 * words in a unit file and here. Whole milliseconds.
 */
import { usageError } from '../errors.ts';
import { parseTimeSpan } from '../systemd/units.ts';

export const DEFAULT_GATE = '10min';
/** The longest trial a host may ask for: past a day a rollback is no longer "the release just broke the host". */
export const MAX_GATE_MS = 24 * 60 * 60 * 1000;

/** Milliseconds of a systemd time span ("5s", "2min", "1h 30min", "500ms"), or undefined. */
export function parseSpanMs(text: string): number | undefined {
  const seconds = parseTimeSpan(text);
  return seconds === undefined ? undefined : Math.round(seconds * 1000);
}

/** 90000 → "1min 30s", 500 → "500ms": short, and parseSpanMs reads it back. */
export function formatSpan(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))}ms`;
  const total = Math.round(ms / 1000);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  return [h ? `${h}h` : '', m ? `${m}min` : '', s || (!h && !m) ? `${s}s` : ''].filter(Boolean).join(' ');
}

/** --gate SPAN as install takes it (default 10min): milliseconds, or a usage error (exit 2). */
export function gateSpanMs(value: string | undefined): number {
  const ms = parseSpanMs(value ?? DEFAULT_GATE);
  if (ms === undefined || ms < 1000 || ms > MAX_GATE_MS) {
    throw usageError(`--gate "${value}" must be a time span from 1s to 24h, such as 10min`, 'or --no-gate to activate without a trial');
  }
  return ms;
}
