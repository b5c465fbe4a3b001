/**
 * What the binaries say they are, stamped by scripts/build.ts (`--define`):
 * the release version (v1.2.3) and the commit it was built from (abc1234).
 * Run from source they are "dev" and "unknown".
 *
 * `--version` prints one line, `<name> <version> (<commit>)`, e.g.
 * `containai-host v1.2.3 (abc1234)`: self-update parses it, so its shape is
 * part of the contract (a version never holds a space or a parenthesis:
 * scripts/build.ts refuses one that is not a safe version name).
 */
declare const __CONTAINAI_VERSION__: string | undefined;
declare const __CONTAINAI_COMMIT__: string | undefined;

/** The bare release version, e.g. v1.2.3. */
export const VERSION: string = typeof __CONTAINAI_VERSION__ === 'string' ? __CONTAINAI_VERSION__ : 'dev';
/** The short commit hash the binary was built from, or "unknown" (built outside git). */
export const COMMIT: string = typeof __CONTAINAI_COMMIT__ === 'string' ? __CONTAINAI_COMMIT__ : 'unknown';

/** `containai-host v1.2.3 (abc1234)`: what --version prints. */
export function versionLine(name: string): string {
  return `${name} ${VERSION} (${COMMIT})`;
}
