/**
 * Where output goes: human text and logs to stderr (through consola), the
 * result a person asked for to stdout (printResult), exactly one JSON document
 * on stdout when --json is given. Everything printed passes through redact()
 * so a registered secret can never be shown, and through printableText /
 * printableJson so a control character from outside (a C1 U+009B in a name
 * opens a terminal escape as ESC does) is shown escaped, never acted on.
 * Colour only for a person at a terminal: never with NO_COLOR, never into a
 * pipe or a file, and added after escaping (ours are the only escapes printed).
 */
import { createConsola, type ConsolaInstance, type LogObject } from 'consola';
import { redact } from '../secrets.ts';
import { printableJson, printableText } from '../text.ts';

/** How much the process says (global -q/--quiet and --verbose, lib/cli/main.ts). */
export type Verbosity = 'quiet' | 'normal' | 'verbose';

/** consola levels: 0 errors, 1 warnings, 3 info/success, 4 debug. Quiet keeps errors and the result. */
const LEVELS: Record<Verbosity, number> = { quiet: 0, normal: 3, verbose: 4 };

let current: Verbosity = 'normal';

export function setVerbosity(value: Verbosity): void {
  current = value;
  if (instance) instance.level = LEVELS[value];
}

export function verbosity(): Verbosity {
  return current;
}

/** Whether a stream is a terminal a person reads with colour: not with NO_COLOR (any non-empty value), not a pipe. */
export function colourFor(stream: { isTTY?: boolean }): boolean {
  return stream.isTTY === true && !process.env.NO_COLOR;
}

const SGR = { red: 31, green: 32, yellow: 33, dim: 2, bold: 1 } as const;
export type Colour = keyof typeof SGR;

/** text in colour when the stream takes it; plain otherwise. */
export function paint(text: string, colour: Colour, stream: { isTTY?: boolean } = process.stderr): string {
  return colourFor(stream) ? `\u001b[${SGR[colour]}m${text}\u001b[0m` : text;
}

const PREFIX: Record<string, [string, Colour | undefined]> = {
  error: ['error: ', 'red'],
  fatal: ['error: ', 'red'],
  warn: ['warning: ', 'yellow'],
  success: ['✓ ', 'green'],
  start: ['→ ', undefined],
  fail: ['✗ ', 'red'],
  debug: ['debug: ', 'dim'],
  trace: ['debug: ', 'dim'],
};

function toText(arg: unknown): string {
  return typeof arg === 'string' ? arg : Bun.inspect(arg, { colors: false });
}

/** A message from anywhere made safe to print: secrets out, controls escaped (newlines and tabs kept). */
export function safeText(text: string): string {
  return printableText(redact(text));
}

const stderrReporter = {
  log(logObj: LogObject) {
    const text = safeText(logObj.args.map(toText).join(' '));
    const [prefix, colour] = PREFIX[logObj.type] ?? ['', undefined];
    process.stderr.write(`${prefix && colour ? paint(prefix, colour) : prefix}${text}\n`);
  },
};

let instance: ConsolaInstance | undefined;

/** The process-wide logger: consola with one reporter that writes redacted, escaped lines to stderr. */
export function log(): ConsolaInstance {
  instance ??= createConsola({ reporters: [stderrReporter], level: LEVELS[current] });
  return instance;
}

let printedJson = false;

/** Prints the command's one JSON document on stdout. */
export function printJson(doc: unknown): void {
  printedJson = true;
  process.stdout.write(redact(printableJson(doc, 2)) + '\n');
}

/** Whether the one JSON document has been printed (the error handler must not print a second). */
export function jsonWasPrinted(): boolean {
  return printedJson;
}

/**
 * The result a person asked for (a status, a verdict, an install's summary): stdout, as gh and
 * systemctl print theirs, so it pipes into grep; printed with --quiet too. Progress and logs stay
 * on stderr (log()). With --json the one JSON document is the result, and this text goes to stderr.
 */
export function printResult(text: string, options: { json?: boolean } = {}): void {
  const stream = options.json ? process.stderr : process.stdout;
  if (options.json && current === 'quiet') return;
  stream.write(safeText(text) + '\n');
}
