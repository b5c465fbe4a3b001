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
  subCommands: {},
});

await runCli(main, { version: VERSION });
