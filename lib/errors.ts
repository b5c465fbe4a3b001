/**
 * One error type for everything a user can be told. It carries a typed code,
 * a message that says what went wrong, a hint that says what to do, the
 * underlying cause (never printed raw), and the exit code it maps to.
 * The top-level handler in lib/cli/main.ts is the only place that turns
 * these into process exit codes.
 */
export type ErrorCode =
  | 'USAGE' // bad flags or arguments (exit 2)
  | 'INPUT' // a file or value from outside is invalid
  | 'NOT_FOUND' // a file, release or asset is missing
  | 'VERIFY' // a hash, signature, attestation or policy check failed
  | 'ARCHIVE' // an archive breaks the extraction policy or is damaged
  | 'NETWORK' // a download or registry call failed
  | 'ENGINE' // the container engine refused or is not Docker
  | 'LOCKED' // another install/rollback/prune holds the lock
  | 'PERMISSION' // root, ownership or home-directory rules
  | 'TOOL' // an external program (syft, systemctl) is missing or failed
  | 'STATE' // the install root is not in a state the command can work on
  | 'UNHEALTHY' // check-health found a failing check
  | 'INTERNAL'; // a bug: should never reach a user

export interface ErrorOptions {
  hint?: string;
  cause?: unknown;
  /** Structured details for --json output. */
  details?: Record<string, unknown>;
}

export class ContainaiError extends Error {
  readonly code: ErrorCode;
  readonly hint?: string;
  readonly details?: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, options: ErrorOptions = {}) {
    super(message, { cause: options.cause });
    this.name = 'ContainaiError';
    this.code = code;
    this.hint = options.hint;
    this.details = options.details;
  }

  get exitCode(): 1 | 2 {
    return this.code === 'USAGE' ? 2 : 1;
  }
}

export function usageError(message: string, hint?: string): ContainaiError {
  return new ContainaiError('USAGE', message, { hint });
}

export function isContainaiError(err: unknown): err is ContainaiError {
  return err instanceof ContainaiError;
}

/** A short, single-line description of an unknown thrown value, for wrapping. */
export function describeCause(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    const first = err.message.split('\n')[0] ?? '';
    return code && !first.includes(code) ? `${code}: ${first}` : first;
  }
  return String(err);
}
