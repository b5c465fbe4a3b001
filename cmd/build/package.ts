import { defineCommand } from 'citty';
import { ContainaiError } from '../../lib/errors.ts';

// Placeholder until issue 2 lands.
export default defineCommand({
  meta: { name: 'package', description: 'Build dist/<version>/: the reproducible payload, its hash, the SBOM and the bundle.' },
  run() {
    throw new ContainaiError('INTERNAL', 'package is not implemented yet');
  },
});
