/** containai-host: runs on servers to install, verify, roll back and health-check releases. */
import { defineCommand } from 'citty';
import { runCli } from '../lib/cli/main.ts';
import { VERSION } from '../lib/version.ts';

const main = defineCommand({
  meta: {
    name: 'containai-host',
    version: VERSION,
    description: 'Install, verify, roll back and health-check ContainAI releases on a server.',
  },
  subCommands: {
    install: () => import('./host/install.ts').then((m) => m.default),
    rollback: () => import('./host/rollback.ts').then((m) => m.default),
    status: () => import('./host/status.ts').then((m) => m.default),
    prune: () => import('./host/prune.ts').then((m) => m.default),
    verify: () => import('./shared/verify.ts').then((m) => m.default),
    'check-health': () => import('./host/check-health.ts').then((m) => m.default),
    systemd: () => import('./host/systemd.ts').then((m) => m.default),
    mirror: () => import('./host/mirror.ts').then((m) => m.default),
  },
});

await runCli(main, { version: VERSION });
