/** containai-build: used in CI and by developers to make, sign and publish a release. */
import { defineCommand } from 'citty';
import { runCli } from '../lib/cli/main.ts';
import { VERSION, versionLine } from '../lib/version.ts';

/** The command tree; its sub-commands load lazily, so importing it (test/unit/reference.test.ts) runs nothing. */
export const main = defineCommand({
  meta: {
    name: 'containai-build',
    version: VERSION,
    description: 'Build, sign and publish a ContainAI release (profile, payload, bundle, SBOM, images).',
  },
  subCommands: {
    profile: () => import('./build/profile.ts').then((m) => m.default),
    package: () => import('./build/package.ts').then((m) => m.default),
    sbom: () => import('./build/sbom.ts').then((m) => m.default),
    sign: () => import('./build/sign.ts').then((m) => m.default),
    repack: () => import('./build/repack.ts').then((m) => m.default),
    verify: () => import('./shared/verify.ts').then((m) => m.default),
    images: () => import('./build/images.ts').then((m) => m.default),
    publish: () => import('./build/publish.ts').then((m) => m.default),
    rollout: () => import('./build/rollout.ts').then((m) => m.default),
  },
});

if (import.meta.main) await runCli(main, { version: versionLine('containai-build') });
