/**
 * Where output goes: human text and logs to stderr (through consola), exactly
 * one JSON document on stdout when --json is given. Everything printed passes
 * through redact() so a registered secret can never be shown.
 */
import { createConsola, type ConsolaInstance, type LogObject } from 'consola';
import { redact } from '../secrets.ts';

const PREFIX: Record<string, string> = {
  error: 'error: ',
  fatal: 'error: ',
  warn: 'warning: ',
  success: '✓ ',
  start: '→ ',
  fail: '✗ ',
};

function toText(arg: unknown): string {
  return typeof arg === 'string' ? arg : Bun.inspect(arg);
}

const stderrReporter = {
  log(logObj: LogObject) {
    const text = logObj.args.map(toText).join(' ');
    process.stderr.write(redact(`${PREFIX[logObj.type] ?? ''}${text}`) + '\n');
  },
};

let instance: ConsolaInstance | undefined;

/** The process-wide logger: consola with one reporter that writes redacted lines to stderr. */
export function log(): ConsolaInstance {
  instance ??= createConsola({ reporters: [stderrReporter], level: 3 });
  return instance;
}

let printedJson = false;

/** Prints the command's one JSON document on stdout. */
export function printJson(doc: unknown): void {
  printedJson = true;
  process.stdout.write(redact(JSON.stringify(doc, null, 2)) + '\n');
}

/** Whether the one JSON document has been printed (the error handler must not print a second). */
export function jsonWasPrinted(): boolean {
  return printedJson;
}

/**
 * The result a person asked for (a status, a verdict, an install's summary): stdout, as gh and
 * systemctl print theirs, so it pipes into grep. Progress and logs stay on stderr (log()).
 * With --json the one JSON document is the result, and this prints nothing.
 */
export function printResult(text: string, options: { json?: boolean } = {}): void {
  if (options.json) {
    process.stderr.write(redact(text) + '\n');
    return;
  }
  process.stdout.write(redact(text) + '\n');
}
