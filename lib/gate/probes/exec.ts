/**
 * exec: a program's exit status. argv is run as it is, with no shell and no
 * PATH lookup: argv[0] is absolute, or relative to the release folder (and
 * must stay inside it, links resolved). The environment is fixed and minimal,
 * nothing of the caller's leaks in (no DOCKER_HOST, no token). The program
 * runs in its own process group, so a timeout kills what it started too, and
 * as `user` when one is named (uid, gid and no supplementary groups).
 */
import { lstat, readFile, realpath } from 'node:fs/promises';
import { isAbsolute, normalize, resolve } from 'node:path';
import { z } from 'zod';
import { describeCause } from '../../errors.ts';
import { isUnder } from '../../fs/paths.ts';
import { printableName } from '../../text.ts';
import { COMMON_FIELDS, type ProbeKind } from '../kind.ts';
import type { ExecProbe, FieldProblem, ProbeOutcome } from '../types.ts';

/** What every exec probe sees, and nothing else. */
export const PROBE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

const USER = /^[a-z_][a-z0-9_-]{0,31}$/;
const MESSAGE_BYTES = 2048;

const schema = z.strictObject({
  kind: z.literal('exec'),
  ...COMMON_FIELDS,
  argv: z
    .array(z.string({ error: 'every word must be a string' }).min(1, 'no word may be empty').max(4096, 'a word is at most 4096 characters'), {
      error: (issue) =>
        typeof issue.input === 'string'
          ? 'must be a list of words, not a shell command line (no shell runs it): write ["/usr/bin/curl", "-fsS", "http://…"]'
          : 'must be a list of words (strings)',
    })
    .min(1, 'must name the program to run')
    .max(64, 'at most 64 words'),
  user: z.string({ error: 'must be a user name' }).regex(USER, 'must be a user name such as "nobody"').optional(),
});

/** Where argv[0] runs from, or why it cannot. */
async function resolveProgram(argv0: string, releaseDir: string): Promise<{ program: string; inRelease: boolean } | FieldProblem> {
  const shown = printableName(argv0);
  if (/\s/.test(argv0)) {
    return { field: 'argv[0]', message: `"${shown}" holds spaces: it looks like a shell command line; give each word its own element (no shell runs it)` };
  }
  if (isAbsolute(argv0)) return { program: normalize(argv0), inRelease: false };
  const program = resolve(releaseDir, argv0);
  if (!isUnder(program, releaseDir) || program === releaseDir) {
    return { field: 'argv[0]', message: `"${shown}" leaves the release folder (a relative argv[0] is resolved inside the release; write an absolute path for a program of the host)` };
  }
  const info = await lstat(program).catch(() => undefined);
  if (!info) {
    return { field: 'argv[0]', message: `"${shown}" is not a file in the release (there is no PATH lookup: write /usr/bin/${shown} for a program of the host)` };
  }
  const [real, root] = await Promise.all([realpath(program).catch(() => program), realpath(releaseDir).catch(() => releaseDir)]);
  if (!isUnder(real, root)) return { field: 'argv[0]', message: `"${shown}" resolves through a link to a file outside the release folder` };
  return { program, inRelease: true };
}

/** uid and primary gid of a user, from /etc/passwd (no NSS: a probe must not wait on LDAP). */
async function lookupUser(name: string): Promise<{ uid: number; gid: number } | undefined> {
  const text = await readFile('/etc/passwd', 'utf8').catch(() => '');
  for (const line of text.split('\n')) {
    const [user, , uid, gid] = line.split(':');
    if (user === name && uid !== undefined && gid !== undefined) return { uid: Number(uid), gid: Number(gid) };
  }
  return undefined;
}

/** How long output may still come after the program exited: a grandchild it left behind may hold the pipe open. */
const DRAIN_MS = 100;

/** Reads at most MESSAGE_BYTES of a stream, until it ends or DRAIN_MS after the program exited. */
async function readSome(stream: ReadableStream<Uint8Array>, exited: Promise<unknown>): Promise<string> {
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  const stopped = exited.then(() => Bun.sleep(DRAIN_MS)).then(() => ({ done: true as const, value: undefined }));
  try {
    for (;;) {
      const next = await Promise.race([reader.read(), stopped]);
      if (next.done) break;
      if (size < MESSAGE_BYTES) chunks.push(next.value.subarray(0, MESSAGE_BYTES - size));
      size += next.value.length;
    }
  } finally {
    reader.cancel().catch(() => undefined);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** The last non-empty line a program printed: what a person wants to see of a failure. */
function lastLine(text: string): string {
  const lines = text.split('\n').map((l) => l.trim()).filter(Boolean);
  const line = lines.at(-1) ?? '';
  return printableName(line.length > 200 ? `${line.slice(0, 200)}…` : line);
}

async function run(probe: ExecProbe, ctx: { releaseDir: string }): Promise<ProbeOutcome> {
  if (probe.inRelease) {
    // Checked again before every run: the load was rounds ago.
    const [real, root] = await Promise.all([realpath(probe.program).catch(() => undefined), realpath(ctx.releaseDir).catch(() => ctx.releaseDir)]);
    if (!real || !isUnder(real, root)) return { ok: false, message: `${probe.argv[0]} is missing from the release or now leaves it` };
  }
  let ids: { uid: number; gid: number } | undefined;
  if (probe.user) {
    ids = await lookupUser(probe.user);
    if (!ids) return { ok: false, message: `there is no user "${probe.user}" on this host (/etc/passwd)` };
    const me = process.getuid?.();
    if (me !== 0 && me !== ids.uid) return { ok: false, message: `cannot run as "${probe.user}": the gate does not run as root` };
  }
  let proc;
  try {
    proc = Bun.spawn([probe.program, ...probe.argv.slice(1)], {
      cwd: ctx.releaseDir,
      env: { PATH: PROBE_PATH, LANG: 'C.UTF-8', HOME: '/', CONTAINAI_RELEASE_DIR: ctx.releaseDir, CONTAINAI_PROBE: probe.name },
      stdin: 'ignore',
      stdout: 'pipe',
      stderr: 'pipe',
      detached: true,
      ...(ids && ids.uid !== process.getuid?.() ? { uid: ids.uid, gid: ids.gid } : {}),
    });
  } catch (err) {
    return { ok: false, message: `cannot run ${printableName(probe.program)}: ${describeCause(err)}` };
  }
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    // The whole group: a shell script's children die with it.
    try {
      process.kill(-proc.pid, 'SIGKILL');
    } catch {
      proc.kill('SIGKILL');
    }
  }, probe.timeoutMs);
  const exited = proc.exited;
  const [stdout, stderr, code] = await Promise.all([readSome(proc.stdout, exited), readSome(proc.stderr, exited), exited]).finally(() => clearTimeout(timer));
  if (timedOut) return { ok: false, message: `did not finish within ${probe.timeoutMs / 1000} s (killed)` };
  if (code === 0) return { ok: true, message: 'exit 0' };
  const said = lastLine(stderr) || lastLine(stdout);
  const how = proc.signalCode ? `killed by ${proc.signalCode}` : `exit ${code}`;
  return { ok: false, message: said ? `${how}: ${said}` : how };
}

export const execProbe: ProbeKind<ExecProbe> = {
  kind: 'exec',
  schema,
  async prepare(fields, common, place) {
    const f = fields as z.infer<typeof schema>;
    const resolved = await resolveProgram(f.argv[0] as string, place.releaseDir);
    if ('field' in resolved) return [resolved];
    return { ...common, kind: 'exec', argv: f.argv, user: f.user, ...resolved };
  },
  run,
  describe: (probe) => `${probe.argv.map(printableName).join(' ')}${probe.user ? ` (as ${probe.user})` : ''}`,
};
