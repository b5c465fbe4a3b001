/**
 * Writing and removing the health timer (and the update timer, when asked). Units are written atomically; when
 * systemd runs (/run/systemd/system exists) systemctl is called with argument
 * arrays, otherwise the commands are returned for the operator to run.
 */
import { existsSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ContainaiError, describeCause } from '../errors.ts';
import { writeFileAtomic } from '../fs/atomic.ts';
import { SERVICE_NAME, serviceUnit, TIMER_NAME, timerUnit, UPDATE_SERVICE_NAME, UPDATE_TIMER_NAME, updateServiceUnit, updateTimerUnit, type UnitOptions, type UpdateUnitOptions } from './units.ts';

export const SYSTEMD_RUNNING_MARKER = '/run/systemd/system';

export interface SystemdOptions {
  unitDir: string;
  /** Whether to call systemctl; default: when systemd is PID 1. */
  runSystemctl?: boolean;
}

export interface SystemdResult {
  unitDir: string;
  /** The unit files written or removed (none: there was nothing to remove). */
  files: string[];
  /** The systemctl commands, run or to run. */
  commands: string[][];
  ran: boolean;
}

export function systemdIsRunning(): boolean {
  return existsSync(SYSTEMD_RUNNING_MARKER);
}

async function systemctl(args: string[]): Promise<void> {
  let proc;
  try {
    proc = Bun.spawn(['systemctl', ...args], { stdout: 'pipe', stderr: 'pipe', stdin: 'ignore' });
  } catch (err) {
    throw new ContainaiError('TOOL', `cannot run systemctl: ${describeCause(err)}`, { cause: err, hint: 'install systemd, or run the printed commands by hand' });
  }
  const [, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0) {
    throw new ContainaiError('TOOL', `systemctl ${args.join(' ')} failed (exit ${code}): ${err.trim().split('\n')[0] ?? ''}`, {
      hint: 'see journalctl -xe; the unit files are written, so fix the cause and rerun',
    });
  }
}

async function runAll(commands: string[][], run: boolean): Promise<boolean> {
  if (!run) return false;
  for (const args of commands) await systemctl(args);
  return true;
}

export async function installHealthTimer(units: UnitOptions, options: SystemdOptions, update?: UpdateUnitOptions): Promise<SystemdResult> {
  const files: Array<[string, string]> = [
    [join(options.unitDir, SERVICE_NAME), serviceUnit(units)],
    [join(options.unitDir, TIMER_NAME), timerUnit(units)],
    ...(update
      ? ([
          [join(options.unitDir, UPDATE_SERVICE_NAME), updateServiceUnit(update)],
          [join(options.unitDir, UPDATE_TIMER_NAME), updateTimerUnit(update)],
        ] as Array<[string, string]>)
      : []),
  ];
  try {
    await mkdir(options.unitDir, { recursive: true });
    for (const [path, text] of files) await writeFileAtomic(path, text, 0o644);
  } catch (err) {
    throw new ContainaiError('PERMISSION', `cannot write the units into ${options.unitDir}: ${describeCause(err)}`, {
      cause: err,
      hint: 'run as root, or pass --unit-dir',
    });
  }
  const commands = [['daemon-reload'], ['enable', '--now', TIMER_NAME, ...(update ? [UPDATE_TIMER_NAME] : [])]];
  const ran = await runAll(commands, options.runSystemctl ?? systemdIsRunning());
  return { unitDir: options.unitDir, files: files.map(([path]) => path), commands, ran };
}

/**
 * Disables the timers and removes their units (the health timer's, and the update timer's when
 * written). With none present there is nothing to do: no
 * systemctl call, and an empty list of files, which the command reports as "nothing to uninstall"
 * (exit 0: the wanted state, no timer, holds; the line says so, in case --unit-dir was mistyped).
 */
export async function uninstallHealthTimer(options: SystemdOptions): Promise<SystemdResult> {
  const timers = [TIMER_NAME, UPDATE_TIMER_NAME].filter((t) => existsSync(join(options.unitDir, t)));
  const present = [TIMER_NAME, SERVICE_NAME, UPDATE_TIMER_NAME, UPDATE_SERVICE_NAME].map((u) => join(options.unitDir, u)).filter((f) => existsSync(f));
  if (present.length === 0) return { unitDir: options.unitDir, files: [], commands: [], ran: false };
  const run = options.runSystemctl ?? systemdIsRunning();
  const disable = ['disable', '--now', ...(timers.length ? timers : [TIMER_NAME])];
  // Disable before removing, while systemd still knows the unit.
  if (run) await systemctl(disable).catch(() => undefined);
  for (const file of present) await rm(file, { force: true });
  const ran = await runAll([['daemon-reload']], run);
  return { unitDir: options.unitDir, files: present, commands: [disable, ['daemon-reload']], ran };
}
