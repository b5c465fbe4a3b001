/** containai-host: runs on servers to install, verify, roll back and health-check releases. */
import { defineCommand } from 'citty';
import { runCli } from '../lib/cli/main.ts';
import { VERSION, versionLine } from '../lib/version.ts';

/** The command tree; its sub-commands load lazily, so importing it (test/unit/reference.test.ts) runs nothing. */
export const main = defineCommand({
  meta: {
    name: 'containai-host',
    version: VERSION,
    description: 'Install, verify, roll back and health-check ContainAI releases on a server.',
  },
  subCommands: {
    install: () => import('./host/install.ts').then((m) => m.default),
    update: () => import('./host/update.ts').then((m) => m.default),
    rollback: () => import('./host/rollback.ts').then((m) => m.default),
    status: () => import('./host/status.ts').then((m) => m.default),
    prune: () => import('./host/prune.ts').then((m) => m.default),
    verify: () => import('./shared/verify.ts').then((m) => m.default),
    'check-health': () => import('./host/check-health.ts').then((m) => m.default),
    gate: () => import('./host/gate.ts').then((m) => m.default),
    systemd: () => import('./host/systemd.ts').then((m) => m.default),
    mirror: () => import('./host/mirror.ts').then((m) => m.default),
    trust: () => import('./host/trust.ts').then((m) => m.default),
    'self-update': () => import('./host/self-update.ts').then((m) => m.default),
  },
});

if (import.meta.main) await runCli(main, { version: versionLine('containai-host') });
