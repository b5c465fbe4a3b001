import { defineCommand } from 'citty';
import { ContainaiError } from '../../lib/errors.ts';

// Placeholder until issue 3 lands.
export default defineCommand({
  meta: { name: 'rollback', description: 'Make the previous release current again.' },
  run() {
    throw new ContainaiError('INTERNAL', 'rollback is not implemented yet');
  },
});
