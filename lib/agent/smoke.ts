/**
 * The smoke test: the new agent must start and name its version within 2 s
 * before it replaces the one that works. `containai-host --version` prints
 * `containai-host <version> (<commit>)` on its first line (the build
 * stamps both); agents built before that print the bare version, which is
 * accepted too so that an update from or to one of them still works.
 */
import { ContainaiError } from '../errors.ts';
import { printableName } from '../text.ts';

export const SMOKE_TIMEOUT_MS = 2_000;

export interface AgentIdentity {
  version: string;
  commit?: string;
}

const STAMPED = /^containai-host (\S+) \(([^()\s]*)\)$/;
const BARE = /^v?\d[\w.+-]*$/;

/** The version (and commit) from --version's output; undefined when it is neither form. */
export function parseVersionOutput(stdout: string): AgentIdentity | undefined {
  const first = stdout.split('\n')[0]?.trim() ?? '';
  const stamped = STAMPED.exec(first);
  if (stamped) return { version: stamped[1] as string, commit: stamped[2] || undefined };
  return BARE.test(first) && first.length <= 128 ? { version: first } : undefined;
}

/** Runs `path --version` with a minimal environment; refuses what does not answer, fails, or answers something else. */
export async function smokeTest(path: string, label: string, timeoutMs = SMOKE_TIMEOUT_MS): Promise<AgentIdentity> {
  let proc;
  try {
    proc = Bun.spawn([path, '--version'], {
      env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', NO_COLOR: '1' },
      stdin: 'ignore',
      stdout: 'pipe',
      stderr: 'pipe',
    });
  } catch (err) {
    throw new ContainaiError('VERIFY', `${label} cannot be run (${(err as NodeJS.ErrnoException).code ?? 'error'}): not a program for this host`, {
      hint: 'nothing was replaced; the release may carry a damaged or wrong agent',
      cause: err,
    });
  }
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    proc.kill('SIGKILL');
  }, timeoutMs);
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]).finally(() => clearTimeout(timer));
  if (timedOut) {
    throw new ContainaiError('VERIFY', `${label} did not answer --version within ${timeoutMs / 1000} s`, { hint: 'nothing was replaced; an agent that hangs at start would break every timer' });
  }
  if (code !== 0) {
    const said = printableName((stderr || stdout).trim().split('\n')[0]?.slice(0, 200) ?? '');
    throw new ContainaiError('VERIFY', `${label} --version exited ${code}${said ? `: ${said}` : ''}`, { hint: 'nothing was replaced; the new agent does not start on this host' });
  }
  const identity = parseVersionOutput(stdout);
  if (!identity) {
    throw new ContainaiError('VERIFY', `${label} --version answered "${printableName(stdout.split('\n')[0]?.slice(0, 120) ?? '')}", not "containai-host <version> (<commit>)"`, {
      hint: 'nothing was replaced; this is not a containai-host agent',
    });
  }
  return identity;
}
