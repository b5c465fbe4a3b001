import { defineCommand } from 'citty';
import { ContainaiError } from '../../lib/errors.ts';

// Placeholder until issue 3 lands.
export default defineCommand({
  meta: { name: 'status', description: 'Show the current, previous and installed releases.' },
  run() {
    throw new ContainaiError('INTERNAL', 'status is not implemented yet');
  },
});
