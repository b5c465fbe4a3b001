/**
 * The one place where a command line becomes a run and an error becomes an
 * exit code. citty parses and renders usage; we do the rest ourselves because
 * citty's runMain prints raw errors (in a compiled binary: bundled source and
 * /$bunfs/ frames) and accepts unknown flags silently.
 *
 * Exit codes (SPEC): 0 success, 1 refused or failed, 2 usage error.
 *
 * Global flags, taken anywhere before `--` and by every command: -q/--quiet
 * (only errors and the result) and --verbose (debug lines too).
 */
import { renderUsage, runCommand, type ArgsDef, type CommandDef } from 'citty';
import { ContainaiError, describeCause, isContainaiError, usageError } from '../errors.ts';
import { registerSecretEnv } from '../secrets.ts';
import { didYouMean } from './did-you-mean.ts';
import { colourFor, jsonWasPrinted, paint, printJson, safeText, setVerbosity, verbosity, type Verbosity } from './output.ts';

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
      const known = Object.keys(subCommands);
      const guess = didYouMean(word, known);
      throw usageError(describeCommand(path, known, guess), guess ? `run "${[...path, guess].join(' ')}", or --help to list the commands` : 'run with --help to list the commands');
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
 * the sub-command), and whoever typed it knows it. The commands that exist are, and the one it is
 * closest to (a command's name, which tells nothing about a secret).
 */
function describeCommand(path: string[], known: string[], guess?: string): string {
  return `unknown command${path.length ? ` after "${path.join(' ')}"` : ''} (the word is not shown): ${guess ? `did you mean "${guess}"? ` : ''}expected one of ${known.join(', ')}`;
}

const kebab = (s: string) => s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

interface FlagNames {
  known: Set<string>;
  booleans: Set<string>;
  /** Flags that take a value (string, enum, positional-less). */
  valued: Set<string>;
}

function flagNames(args: ArgsDef): FlagNames {
  const names: FlagNames = { known: new Set(), booleans: new Set(), valued: new Set() };
  for (const [name, def] of Object.entries(args)) {
    if (def.type === 'positional') continue;
    const all = [name, kebab(name), ...((def as { alias?: string | string[] }).alias ? [(def as { alias: string | string[] }).alias].flat() : [])];
    for (const n of all) {
      names.known.add(n);
      (def.type === 'boolean' ? names.booleans : names.valued).add(n);
    }
  }
  return names;
}

/** A negative number ("-1") after a flag that takes a value is that value, not a flag: say it is invalid, not unknown. */
const NEGATIVE_NUMBER = /^-\d+(\.\d+)?$/;

/**
 * The command's arguments with "--flag -1" written as "--flag=-1", so that the parser hands the
 * value to the command, which says what is wrong with it.
 */
function joinNegativeValues(names: FlagNames, argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    const next = argv[i + 1];
    if (arg === '--') return [...out, ...argv.slice(i)];
    if (arg.startsWith('--') && !arg.includes('=') && names.valued.has(arg.slice(2)) && next !== undefined && NEGATIVE_NUMBER.test(next)) {
      out.push(`${arg}=${next}`);
      i++;
      continue;
    }
    out.push(arg);
  }
  return out;
}

/** Refuses flags the command does not declare: a typo must not silently change what runs. */
function assertKnownFlags(names: FlagNames, argv: string[]): void {
  for (const arg of argv) {
    if (arg === '--') break;
    if (!arg.startsWith('-') || arg === '-') continue;
    const name = arg.replace(/^--?/, '').split('=')[0] ?? '';
    if (names.known.has(name)) continue;
    if (name.startsWith('no-') && names.booleans.has(name.slice(3))) continue;
    const guess = FLAG_NAME.test(arg) ? didYouMean(name, [...names.known].filter((n) => n.length > 1)) : undefined;
    throw usageError(`${describeFlag(arg)}${guess ? `; did you mean --${guess}?` : ''}`, 'run with --help to see the flags this command takes');
  }
}

/** A flag name only: `--key "$(cat k.pem)"` makes the PEM itself an "unknown flag", and it must not be printed. */
const FLAG_NAME = /^--?[A-Za-z][\w-]*(=.*)?$/;

function describeFlag(arg: string): string {
  return FLAG_NAME.test(arg) ? `unknown flag ${arg.split('=')[0]}` : 'an unknown flag (not shown)';
}

/** The global flags every command takes; removed from argv before the command sees it. */
export const GLOBAL_FLAGS = {
  quiet: { alias: 'q', description: 'print only errors and the result' },
  verbose: { description: 'print debug lines too' },
} as const;

function takeGlobalFlags(argv: string[]): { argv: string[]; verbosity: Verbosity } {
  const end = argv.indexOf('--');
  const head = end === -1 ? argv : argv.slice(0, end);
  const tail = end === -1 ? [] : argv.slice(end);
  const quiet = head.some((a) => a === '-q' || a === '--quiet');
  const verbose = head.includes('--verbose');
  if (quiet && verbose) throw usageError('give --quiet or --verbose, not both');
  const rest = head.filter((a) => a !== '-q' && a !== '--quiet' && a !== '--verbose');
  return { argv: [...rest, ...tail], verbosity: quiet ? 'quiet' : verbose ? 'verbose' : 'normal' };
}

export interface CliInfo {
  version: string;
}

/** Runs a citty command tree as a CLI and exits the process with the right code. */
export async function runCli(root: AnyCommand, info: CliInfo, rawArgv = process.argv.slice(2)): Promise<never> {
  const wantsJson = rawArgv.includes('--json');
  // The last redaction layer: secrets in the environment are known before any word of argv is looked at.
  registerSecretEnv();
  try {
    const global = takeGlobalFlags(rawArgv);
    setVerbosity(global.verbosity);
    const argv = global.argv;
    if (argv.length === 1 && (argv[0] === '--version' || argv[0] === '-v')) {
      process.stdout.write(`${info.version}\n`);
      process.exit(0);
    }
    const resolved = await resolveCommand(root, argv);
    if (argv.includes('--help') || argv.includes('-h')) {
      process.stdout.write(await usageText(resolved, colourFor(process.stdout)));
      process.exit(0);
    }
    const subCommands = await resolve(resolved.command.subCommands);
    if (!resolved.command.run && subCommands) {
      process.stderr.write(await usageText(resolved, colourFor(process.stderr)));
      throw usageError(`missing command${resolved.path.length ? ` after "${resolved.path.join(' ')}"` : ''}`);
    }
    const names = flagNames(await resolve(resolved.command.args ?? {}));
    const rest = joinNegativeValues(names, resolved.rest);
    assertKnownFlags(names, rest);
    await runCommand(resolved.command, { rawArgs: rest });
    process.exit(0);
  } catch (err) {
    const error = toContainaiError(err);
    report(error, wantsJson);
    process.exit(error.exitCode);
  }
}

const ANSI = /\u001b\[[0-9;]*m/g;

/** citty's usage text and the global flags, without colour unless a person reads it on a terminal. */
async function usageText(resolved: Resolved, tty: boolean): Promise<string> {
  const text = `${await renderUsage(resolved.command, resolved.parent)}\n\nGLOBAL OPTIONS\n\n  -q, --quiet    ${GLOBAL_FLAGS.quiet.description}\n  --verbose      ${GLOBAL_FLAGS.verbose.description}\n`;
  return tty && !process.env.NO_COLOR ? text : text.replace(ANSI, '');
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
  const lines = [`${paint('error:', 'red')} ${safeText(error.message)}`];
  if (error.hint) lines.push(`${paint('hint:', 'dim')} ${safeText(error.hint)}`);
  if (error.cause !== undefined && verbosity() === 'verbose') lines.push(`${paint('debug:', 'dim')} cause: ${safeText(describeCause(error.cause))}`);
  if (process.env.CONTAINAI_DEBUG && error.cause instanceof Error && error.cause.stack) lines.push(safeText(error.cause.stack));
  process.stderr.write(lines.join('\n') + '\n');
  if (wantsJson && !jsonWasPrinted()) {
    printJson({ ok: false, error: { code: error.code, message: error.message, hint: error.hint, ...error.details } });
  }
}
