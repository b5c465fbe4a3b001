import { defineCommand } from 'citty';
import { ContainaiError } from '../../lib/errors.ts';

// Placeholder until issue 5 lands.
export default defineCommand({
  meta: { name: 'systemd', description: 'Install or remove the systemd timer that runs check-health.' },
  run() {
    throw new ContainaiError('INTERNAL', 'systemd is not implemented yet');
  },
});
