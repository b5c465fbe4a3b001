/** Loaded once before every test file (bunfig.toml): plain output, and services stopped at the end. */
import { afterAll } from 'bun:test';
import { stopAllServices } from './services.ts';

process.env.NO_COLOR = '1';

afterAll(async () => {
  await stopAllServices();
});
