/**
 * The commonest slip with a version is its "v": `--version 1.0.0` where the
 * release is v1.0.0 (or the other way round). Said as a did-you-mean, never
 * guessed silently: a version decides what runs as root.
 */

/** The candidate that differs from `given` only by a leading "v", if one does. */
export function versionSlip(given: string, candidates: Iterable<string>): string | undefined {
  const other = given.startsWith('v') ? given.slice(1) : `v${given}`;
  for (const candidate of candidates) if (candidate === other) return candidate;
  return undefined;
}

/** " (did you mean vX?)", or "" when no candidate is a slip of the given version. */
export function didYouMeanVersion(given: string, candidates: Iterable<string>): string {
  const slip = versionSlip(given, candidates);
  return slip ? ` (did you mean ${slip}?)` : '';
}
