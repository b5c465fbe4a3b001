import { defineCommand } from 'citty';
import { ContainaiError } from '../../lib/errors.ts';

// Placeholder until issue 4 lands.
export default defineCommand({
  meta: { name: 'verify', description: 'Verify a bundle or an artifact offline: hashes, Sigstore attestations, pinned keys.' },
  run() {
    throw new ContainaiError('INTERNAL', 'verify is not implemented yet');
  },
});
