/** Loaded once before every test file (bunfig.toml): plain output, and services stopped at the end. */
import { afterAll } from 'bun:test';
import { rmSync } from 'node:fs';
import { TEST_STATE_DIR } from './cli.ts';
import { stopAllServices } from './services.ts';

process.env.NO_COLOR = '1';

afterAll(async () => {
  await stopAllServices();
  rmSync(TEST_STATE_DIR, { recursive: true, force: true });
});
