/** The operator's trust dir (default /etc/containai/trust): what it pins, read without loading the verifier. */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ContainaiError } from '../errors.ts';

/**
 * Files pinned in the trust dir, by extension. A missing dir pins nothing. When
 * running as root, a file someone else could have written is refused: it would
 * let that user decide what root installs.
 */
export function trustDirFiles(dir: string | undefined, ext: '.json' | '.pub'): string[] {
  if (!dir || !existsSync(dir)) return [];
  const asRoot = process.getuid?.() === 0;
  const files = readdirSync(dir)
    .filter((name) => name.endsWith(ext) && !name.startsWith('.'))
    .sort()
    .map((name) => join(dir, name));
  if (asRoot) {
    for (const path of [dir, ...files]) {
      const st = statSync(path);
      if (st.uid !== 0 || (st.mode & 0o022) !== 0) {
        throw new ContainaiError('PERMISSION', `${path} is not owned by root or is writable by others; refusing to trust it`, {
          hint: `chown root:root ${path} && chmod go-w ${path}`,
        });
      }
    }
  }
  return files;
}
