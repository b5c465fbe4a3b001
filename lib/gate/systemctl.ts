/**
 * The one seam between the gate and systemd: `systemctl show` of a unit, as
 * text. The product runs /usr/bin/systemctl by absolute path with a minimal
 * environment; tests (and hosts without systemd, such as the CI container)
 * feed the text instead. parseShow reads it either way, so what the probe
 * judges is always the real format.
 *
 * In-process tests pass their own SystemctlShow (RoundDeps.systemctl). The
 * compiled binary cannot take one, so the program's path is fixed when it is
 * built: /usr/bin/systemctl in every build of scripts/build.ts, and a stub's
 * absolute path only in a TEST build (test/helpers/gate-build.ts compiles one
 * with --define=__CONTAINAI_TEST_SYSTEMCTL__=…). No environment variable,
 * flag or file chooses what root runs here.
 */
import { describeCause, ContainaiError } from '../errors.ts';
import { printableName } from '../text.ts';

declare const __CONTAINAI_TEST_SYSTEMCTL__: string | undefined;

/** /usr/bin/systemctl, unless this binary is a test build (see above). */
export const SYSTEMCTL: string = typeof __CONTAINAI_TEST_SYSTEMCTL__ === 'string' ? __CONTAINAI_TEST_SYSTEMCTL__ : '/usr/bin/systemctl';
export const SHOW_PROPERTIES = ['LoadState', 'ActiveState', 'SubState', 'NRestarts'] as const;

/** The output of `systemctl show --property=LoadState,ActiveState,SubState,NRestarts -- UNIT`. */
export type SystemctlShow = (unit: string, timeoutMs: number) => Promise<string>;

export const systemctlShow: SystemctlShow = async (unit, timeoutMs) => {
  let proc;
  try {
    proc = Bun.spawn([SYSTEMCTL, 'show', `--property=${SHOW_PROPERTIES.join(',')}`, '--', unit], {
      env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8', SYSTEMD_PAGER: '', SYSTEMD_COLORS: '0' },
      stdin: 'ignore',
      stdout: 'pipe',
      stderr: 'pipe',
      timeout: timeoutMs,
      killSignal: 'SIGKILL',
    });
  } catch (err) {
    throw new ContainaiError('TOOL', `cannot run ${SYSTEMCTL}: ${describeCause(err)}`, { cause: err, hint: 'a systemd probe needs systemd on the host' });
  }
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0) {
    const why = printableName(err.trim().split('\n')[0] ?? '') || `exit ${code}`;
    throw new ContainaiError('TOOL', `${SYSTEMCTL} show ${unit} failed: ${why}`, { hint: 'is systemd running on this host (systemctl is-system-running)?' });
  }
  return out;
};

/** KEY=VALUE lines into a map; anything else is ignored. */
export function parseShow(text: string): Map<string, string> {
  const props = new Map<string, string>();
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) props.set(line.slice(0, eq).trim(), line.slice(eq + 1).trim());
  }
  return props;
}
