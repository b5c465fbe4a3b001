import { defineCommand } from 'citty';
import { ContainaiError } from '../../lib/errors.ts';

// Placeholder until issue 5 lands.
export default defineCommand({
  meta: { name: 'check-health', description: 'Check the engine (Docker, not Podman), the installed release, the profile, disk and registry.' },
  run() {
    throw new ContainaiError('INTERNAL', 'check-health is not implemented yet');
  },
});
