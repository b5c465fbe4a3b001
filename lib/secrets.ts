/**
 * Secrets (tokens, passwords, key material) are registered here the moment they
 * are read, so that every message that leaves the process can be scrubbed of
 * them, including messages from libraries and engines that echo what they got.
 */
const registered = new Set<string>();

/** Values shorter than this are too likely to collide with ordinary text. */
const MIN_SECRET_LENGTH = 4;

export function registerSecret(value: string | undefined): void {
  if (!value || value.length < MIN_SECRET_LENGTH) return;
  registered.add(value);
  // Engines and HTTP stacks may echo a secret base64-encoded (basic auth, X-Registry-Auth).
  registered.add(Buffer.from(value).toString('base64'));
}

export function redact(text: string): string {
  let out = text;
  for (const secret of registered) {
    if (out.includes(secret)) out = out.split(secret).join('[REDACTED]');
  }
  return out;
}

/**
 * The environment variables that hold secrets (SPEC "Environment"). The CLI registers them all when it
 * starts, before any flag is read: whatever a command does with them, or with a value that happens to
 * equal one (a token pasted as --version), no message can show them.
 */
export const SECRET_ENV = ['GITHUB_TOKEN', 'GHCR_PAT', 'COSIGN_PASSWORD', 'COSIGN_KEY'] as const;

export function registerSecretEnv(env: NodeJS.ProcessEnv = process.env): void {
  for (const name of SECRET_ENV) registerSecret(env[name]);
}

/** Reads a secret from the environment and registers it; undefined when unset or empty. */
export function secretFromEnv(name: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const value = env[name];
  if (!value) return undefined;
  registerSecret(value);
  return value;
}
