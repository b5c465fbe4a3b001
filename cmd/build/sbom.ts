import { defineCommand } from 'citty';
import { ContainaiError } from '../../lib/errors.ts';

// Placeholder until issue 2 lands.
export default defineCommand({
  meta: { name: 'sbom', description: 'Generate the CycloneDX SBOM of the payload tree with syft.' },
  run() {
    throw new ContainaiError('INTERNAL', 'sbom is not implemented yet');
  },
});
