/**
 * The one place where a command line becomes a run and an error becomes an
 * exit code. citty parses and renders usage; we do the rest ourselves because
 * citty's runMain prints raw errors (in a compiled binary: bundled source and
 * /$bunfs/ frames) and accepts unknown flags silently.
 *
 * Exit codes (SPEC): 0 success, 1 refused or failed, 2 usage error.
 */
import { renderUsage, runCommand, type ArgsDef, type CommandDef } from 'citty';
import { ContainaiError, describeCause, isContainaiError, usageError } from '../errors.ts';
import { redact } from '../secrets.ts';
import { jsonWasPrinted, printJson } from './output.ts';

// citty's CommandDef is generic over its args; the runner handles any of them.
type AnyCommand = CommandDef<any>;

interface Resolved {
  command: AnyCommand;
  parent?: AnyCommand;
  /** The arguments that belong to the resolved command. */
  rest: string[];
  /** The command words as typed, for messages: "images push". */
  path: string[];
}

async function resolve<T>(value: T | (() => T | Promise<T>) | Promise<T>): Promise<T> {
  return typeof value === 'function' ? await (value as () => T | Promise<T>)() : await value;
}

/** Walks the sub-command words at the start of argv down to the command that will run. */
async function resolveCommand(root: AnyCommand, argv: string[]): Promise<Resolved> {
  let command = root;
  let parent: AnyCommand | undefined;
  let rest = argv;
  const path: string[] = [];
  for (;;) {
    const subCommands = await resolve(command.subCommands);
    if (!subCommands) break;
    const word = rest.find((a) => !a.startsWith('-'));
    if (word === undefined) break;
    const next = (subCommands as Record<string, unknown>)[word];
    if (!next) {
      throw usageError(describeCommand(path, Object.keys(subCommands)), `run with --help to list the commands`);
    }
    parent = command;
    command = await resolve(next as AnyCommand);
    rest = rest.slice(rest.indexOf(word) + 1);
    path.push(word);
  }
  return { command, parent, rest, path };
}

/**
 * The word itself is never printed: it may be a flag's value taken for a command (a password before
 * the sub-command), and whoever typed it knows it. The commands that exist are.
 */
function describeCommand(path: string[], known: string[]): string {
  return `unknown command${path.length ? ` after "${path.join(' ')}"` : ''} (the word is not shown): expected one of ${known.join(', ')}`;
}

const kebab = (s: string) => s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/** Refuses flags the command does not declare: a typo must not silently change what runs. */
function assertKnownFlags(args: ArgsDef, argv: string[]): void {
  const known = new Set<string>();
  const booleans = new Set<string>();
  for (const [name, def] of Object.entries(args)) {
    const names = [name, kebab(name), ...((def as { alias?: string | string[] }).alias ? [(def as { alias: string | string[] }).alias].flat() : [])];
    for (const n of names) {
      known.add(n);
      if (def.type === 'boolean') booleans.add(n);
    }
  }
  for (const arg of argv) {
    if (arg === '--') break;
    if (!arg.startsWith('-') || arg === '-') continue;
    const name = arg.replace(/^--?/, '').split('=')[0] ?? '';
    if (known.has(name)) continue;
    if (name.startsWith('no-') && booleans.has(name.slice(3))) continue;
    throw usageError(describeFlag(arg), 'run with --help to see the flags this command takes');
  }
}

/** A flag name only: `--key "$(cat k.pem)"` makes the PEM itself an "unknown flag", and it must not be printed. */
const FLAG_NAME = /^--?[A-Za-z][\w-]*(=.*)?$/;

function describeFlag(arg: string): string {
  return FLAG_NAME.test(arg) ? `unknown flag ${arg.split('=')[0]}` : 'an unknown flag (not shown)';
}

export interface CliInfo {
  version: string;
}

/** Runs a citty command tree as a CLI and exits the process with the right code. */
export async function runCli(root: AnyCommand, info: CliInfo, argv = process.argv.slice(2)): Promise<never> {
  const wantsJson = argv.includes('--json');
  try {
    if (argv.length === 1 && (argv[0] === '--version' || argv[0] === '-v')) {
      process.stdout.write(`${info.version}\n`);
      process.exit(0);
    }
    const resolved = await resolveCommand(root, argv);
    if (argv.includes('--help') || argv.includes('-h')) {
      process.stdout.write(await usageText(resolved, process.stdout.isTTY === true));
      process.exit(0);
    }
    const subCommands = await resolve(resolved.command.subCommands);
    if (!resolved.command.run && subCommands) {
      process.stderr.write(await usageText(resolved, process.stderr.isTTY === true));
      throw usageError(`missing command${resolved.path.length ? ` after "${resolved.path.join(' ')}"` : ''}`);
    }
    assertKnownFlags(await resolve(resolved.command.args ?? {}), resolved.rest);
    await runCommand(resolved.command, { rawArgs: resolved.rest });
    process.exit(0);
  } catch (err) {
    const error = toContainaiError(err);
    report(error, wantsJson);
    process.exit(error.exitCode);
  }
}

const ANSI = /\u001b\[[0-9;]*m/g;

/** citty's usage text, without colour unless a person reads it on a terminal. */
async function usageText(resolved: Resolved, tty: boolean): Promise<string> {
  const text = await renderUsage(resolved.command, resolved.parent);
  return `${tty && !process.env.NO_COLOR ? text : text.replace(ANSI, '')}\n`;
}

function toContainaiError(err: unknown): ContainaiError {
  if (isContainaiError(err)) return err;
  // citty signals usage problems with CLIError (missing required argument, bad enum value).
  if (err instanceof Error && err.name === 'CLIError') {
    // citty colours its messages; ours are plain.
    return usageError(err.message.replace(ANSI, ''), 'run with --help to see the flags this command takes');
  }
  return new ContainaiError('INTERNAL', `unexpected error: ${describeCause(err)}`, {
    cause: err,
    hint: 'this is a bug in containai; rerun with CONTAINAI_DEBUG=1 for details and report it',
  });
}

function report(error: ContainaiError, wantsJson: boolean): void {
  const lines = [`error: ${error.message}`];
  if (error.hint) lines.push(`hint: ${error.hint}`);
  if (process.env.CONTAINAI_DEBUG && error.cause instanceof Error && error.cause.stack) lines.push(error.cause.stack);
  process.stderr.write(redact(lines.join('\n')) + '\n');
  if (wantsJson && !jsonWasPrinted()) {
    printJson({ ok: false, error: { code: error.code, message: error.message, hint: error.hint, ...error.details } });
  }
}
