import { defineCommand } from 'citty';
import { ContainaiError } from '../../lib/errors.ts';

// Placeholder until issue 4 lands.
export default defineCommand({
  meta: { name: 'sign', description: 'Sign payload.tar.gz with a key (payload.sigstore.json, payload.sig) and repack the bundle.' },
  run() {
    throw new ContainaiError('INTERNAL', 'sign is not implemented yet');
  },
});
