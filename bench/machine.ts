/** What every benchmark prints first: the ratios are the goal, and machines differ in cores and SHA extensions. */
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';

export function machine(): string {
  const sha = readFileSync('/proc/cpuinfo', 'utf8').includes(' sha_ni') ? 'SHA extensions (sha_ni)' : 'no SHA extensions';
  return `${availableParallelism()} cores, ${sha} (node:crypto uses them; coreutils' sha256sum does not)`;
}
