/**
 * A TEST build of containai-host whose systemd probe runs a stub instead of
 * /usr/bin/systemctl: the stub's absolute path is compiled in with
 * --define=__CONTAINAI_TEST_SYSTEMCTL__ (lib/gate/systemctl.ts). Nothing at
 * run time can point a build at another program; scripts/build.ts never sets
 * the define, and this build lives in the test's temp folder only.
 *
 * The stub logs its arguments to systemctl.calls and prints systemctl.answer,
 * which the test writes as `systemctl show` would print it.
 */
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from './cli.ts';

export interface StubbedHost {
  binary: string;
  /** The stub's path, as compiled into the binary. */
  systemctl: string;
  /** Write what `systemctl show` answers here. */
  answer: string;
  /** One line per call: the arguments the probe gave. */
  calls: string;
}

export async function buildWithStubSystemctl(dir: string): Promise<StubbedHost> {
  const systemctl = join(dir, 'systemctl');
  const answer = join(dir, 'systemctl.answer');
  const calls = join(dir, 'systemctl.calls');
  writeFileSync(systemctl, `#!/bin/sh\necho "$*" >> '${calls}'\ncat '${answer}'\n`);
  chmodSync(systemctl, 0o755);
  writeFileSync(answer, '');
  const binary = join(dir, 'containai-host-test-build');
  const proc = Bun.spawn(
    [
      process.execPath,
      'build',
      '--compile',
      '--minify',
      '--external=cpu-features',
      '--no-compile-autoload-dotenv',
      '--no-compile-autoload-bunfig',
      '--no-compile-autoload-tsconfig',
      '--no-compile-autoload-package-json',
      `--define=__CONTAINAI_TEST_SYSTEMCTL__=${JSON.stringify(systemctl)}`,
      '--define=__CONTAINAI_VERSION__="test-build"',
      join(REPO_ROOT, 'cmd', 'containai-host.ts'),
      '--outfile',
      binary,
    ],
    { cwd: REPO_ROOT, stdout: 'pipe', stderr: 'pipe' },
  );
  const [code, out, err] = await Promise.all([proc.exited, new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  if (code !== 0) throw new Error(`the test build failed:\n${out}${err}`);
  return { binary, systemctl, answer, calls };
}
