import { defineCommand } from 'citty';
import { ContainaiError } from '../../lib/errors.ts';

// Placeholder until issue 2 lands.
export default defineCommand({
  meta: { name: 'repack', description: "Add the attestation, cosign and trusted root to an existing bundle; payload.tar.gz's bytes never change." },
  run() {
    throw new ContainaiError('INTERNAL', 'repack is not implemented yet');
  },
});
