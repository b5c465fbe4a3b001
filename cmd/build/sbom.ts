import { defineCommand } from 'citty';
import { mkdir, rename, rm } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { archiveMtime } from '../../lib/archive/write.ts';
import { PAYLOAD_TOP } from '../../lib/bundle/layout.ts';
import { log, printJson } from '../../lib/cli/output.ts';
import { fsyncDir, tempSibling } from '../../lib/fs/atomic.ts';
import { stagePayload } from '../../lib/payload/stage.ts';
import { findSyft, runSyft } from '../../lib/sbom.ts';
import { jsonArgs, payloadSourceArgs, payloadSources } from '../_shared.ts';

export default defineCommand({
  meta: {
    name: 'sbom',
    description: 'Run syft on the payload tree (host/, README.md, LICENSE) and write its CycloneDX JSON, as package does.',
  },
  args: {
    out: { type: 'string', description: 'where to write the SBOM', default: 'sbom.json', valueHint: 'FILE' },
    ...payloadSourceArgs,
    ...jsonArgs,
  },
  async run({ args }) {
    findSyft();
    const mtime = archiveMtime();
    const out = resolve(args.out);
    // Staged beside the output so files can be hard-linked, and the SBOM renamed into place whole.
    const work = tempSibling(out, 'tmp');
    try {
      const payloadDir = join(work, PAYLOAD_TOP);
      await mkdir(payloadDir, { recursive: true });
      await stagePayload(payloadSources(args), payloadDir);
      const generated = join(work, 'sbom.json');
      await runSyft(payloadDir, generated, mtime);
      await rename(generated, out);
      await fsyncDir(dirname(out));
    } finally {
      await rm(work, { recursive: true, force: true });
    }
    log().success(`wrote ${args.out}`);
    if (args.json) printJson({ ok: true, sbom: out });
  },
});
