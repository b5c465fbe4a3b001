import { defineCommand } from 'citty';
import { ContainaiError } from '../../lib/errors.ts';

// Placeholder until issue 6 lands.
export default defineCommand({
  meta: { name: 'images', description: 'Build the agent and proxy images (dev) or push them to the registry (CI).' },
  run() {
    throw new ContainaiError('INTERNAL', 'images is not implemented yet');
  },
});
