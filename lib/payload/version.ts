/** The release version when --version is not given: what `git describe --tags --always --dirty` says. */
import { ContainaiError } from '../errors.ts';

export async function defaultVersion(cwd = process.cwd()): Promise<string> {
  let proc;
  try {
    proc = Bun.spawn(['git', 'describe', '--tags', '--always', '--dirty'], { cwd, stdout: 'pipe', stderr: 'pipe', stdin: 'ignore' });
  } catch (err) {
    throw new ContainaiError('INPUT', 'no --version given, and git is not available to describe the checkout', { cause: err, hint: 'pass --version V, e.g. --version v1.2.3' });
  }
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  const version = stdout.trim();
  if (code !== 0 || !version) {
    const why = stderr.trim().split('\n')[0] ?? '';
    throw new ContainaiError('INPUT', `no --version given, and git describe failed${why ? `: ${why}` : ''}`, {
      hint: 'pass --version V, e.g. --version v1.2.3, or run inside the git checkout',
    });
  }
  return version;
}
