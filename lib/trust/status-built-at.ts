/**
 * When this binary was built: a Bun macro, run once by `bun build` (and by the
 * transpiler when run from source), so the date is a constant in the binary.
 * It dates the public-good root compiled in: `trust status` shows it, and
 * "the newest verified root" prefers a TUF update made after it.
 * SOURCE_DATE_EPOCH, when set, makes the date (and the build) reproducible.
 *
 * Imported only with `with { type: 'macro' }`; never called at run time.
 */
export function builtAt(): string {
  const epoch = process.env.SOURCE_DATE_EPOCH;
  const ms = epoch && /^\d{1,12}$/.test(epoch) ? Number(epoch) * 1000 : Date.now();
  return new Date(ms).toISOString();
}
