import { defineCommand } from 'citty';
import { ContainaiError } from '../../lib/errors.ts';

// Placeholder until issue 3 lands.
export default defineCommand({
  meta: { name: 'prune', description: 'Remove old releases, never current or previous.' },
  run() {
    throw new ContainaiError('INTERNAL', 'prune is not implemented yet');
  },
});
