import { defineCommand } from 'citty';
import { ContainaiError } from '../../lib/errors.ts';

// Placeholder until issue 3 lands.
export default defineCommand({
  meta: { name: 'install', description: 'Install a release bundle (GitHub Releases, a folder or a file), verified, and make it current.' },
  run() {
    throw new ContainaiError('INTERNAL', 'install is not implemented yet');
  },
});
