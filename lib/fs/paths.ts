/** Path containment, by name (callers resolve links first where that matters). */
import { sep } from 'node:path';

/** Whether path is parent or lies under it: /opt/containai2 is not under /opt/containai. */
export function isUnder(path: string, parent: string): boolean {
  return path === parent || path.startsWith(parent.endsWith(sep) ? parent : parent + sep);
}
