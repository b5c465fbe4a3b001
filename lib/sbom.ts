/**
 * The payload's SBOM (CycloneDX JSON), from one of three places: a file made
 * elsewhere (--sbom FILE, embedded byte for byte once checked), syft run on the
 * staged payload, or, for development only (--skip-sbom), a minimal document
 * that says in so many words that no components were catalogued.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { z } from 'zod';
import { sha256Bytes } from './digest.ts';
import { ContainaiError, describeCause } from './errors.ts';

export const SYFT_MISSING = 'syft not available: install syft or rerun with --skip-sbom (dev only)';

const cycloneDx = z.looseObject({
  bomFormat: z.literal('CycloneDX', { error: 'must be "CycloneDX"' }),
  specVersion: z.string({ error: 'must be a string such as "1.5"' }),
  components: z.array(z.looseObject({})).optional(),
  metadata: z.looseObject({}).optional(),
});
type CycloneDx = z.infer<typeof cycloneDx>;

/** Parses and checks a CycloneDX JSON document; every problem is named as path: message. */
export function parseSbom(text: string, source: string): CycloneDx {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ContainaiError('INPUT', `${source} is not JSON (${describeCause(err)})`, {
      hint: 'pass a CycloneDX JSON SBOM, e.g. from "syft scan dir:. -o cyclonedx-json"',
    });
  }
  const parsed = cycloneDx.safeParse(json);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || 'document'}: ${i.message}`);
    throw new ContainaiError('INPUT', `${source} is not a CycloneDX SBOM: ${problems.join('; ')}`, {
      hint: 'pass a CycloneDX JSON SBOM (bomFormat "CycloneDX"), e.g. from "syft scan dir:. -o cyclonedx-json"',
    });
  }
  return parsed.data;
}

/** Checks a pre-generated SBOM and copies it, unchanged, to `out`. */
export async function embedSbom(source: string, out: string): Promise<void> {
  const text = await readFile(source, 'utf8').catch((err: unknown) => {
    throw new ContainaiError('NOT_FOUND', `cannot read --sbom ${source} (${describeCause(err)})`, { cause: err });
  });
  parseSbom(text, source);
  await writeFile(out, text, { mode: 0o644 });
}

/**
 * What --skip-sbom ships: valid CycloneDX with an empty component list and a
 * property saying the SBOM was skipped, so no reader mistakes it for "nothing
 * inside". No serial number or clock time, so the payload stays reproducible.
 */
export function skippedSbom(version: string, mtime: number): string {
  const doc = {
    bomFormat: 'CycloneDX',
    specVersion: '1.5',
    version: 1,
    metadata: {
      timestamp: new Date(mtime * 1000).toISOString(),
      component: { type: 'application', name: 'containai-payload', version },
      properties: [{ name: 'containai:sbom', value: 'skipped (--skip-sbom, development only): no components were catalogued' }],
    },
    components: [],
  };
  return `${JSON.stringify(doc, null, 2)}\n`;
}

/** syft on PATH, or the message that tells the user what to do. */
export function findSyft(): string {
  const path = Bun.which('syft');
  if (!path) throw new ContainaiError('TOOL', SYFT_MISSING);
  return path;
}

/**
 * Runs syft on a folder and writes its CycloneDX JSON to `out`. syft stamps a
 * random serial number and the current time; both are pinned (the serial from
 * the document's own hash, the time from the release mtime) so the same tree
 * gives the same SBOM and so the same payload.
 */
export async function runSyft(dir: string, out: string, mtime: number): Promise<void> {
  const syft = findSyft();
  const proc = Bun.spawn([syft, 'scan', `dir:${dir}`, '-o', 'cyclonedx-json', '-q'], {
    stdout: 'pipe',
    stderr: 'pipe',
    stdin: 'ignore',
    env: syftEnv(process.env),
  });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0) {
    const last = stderr.trim().split('\n').at(-1) ?? '';
    throw new ContainaiError('TOOL', `syft failed (exit ${code})${last ? `: ${last}` : ''}`, {
      hint: 'run "syft scan dir:<payload> -o cyclonedx-json" by hand to see why, or pass a pre-generated --sbom FILE',
    });
  }
  const doc = parseSbom(stdout, 'syft output');
  await writeFile(out, pinSbom(doc, mtime), { mode: 0o644 });
}

/**
 * What syft sees of our environment: enough to run and its own settings, nothing else.
 * The release job holds COSIGN_PASSWORD, GITHUB_TOKEN and registry passwords, and a
 * scanner (or its plugins) has no need of them.
 */
export function syftEnv(env: NodeJS.ProcessEnv): Record<string, string> {
  const kept: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    if (value !== undefined && (['PATH', 'HOME', 'TMPDIR', 'LANG'].includes(name) || name.startsWith('SYFT_'))) kept[name] = value;
  }
  // No update check: CI and air-gapped builders must not call home.
  return { ...kept, SYFT_CHECK_FOR_APP_UPDATE: 'false' };
}

function pinSbom(doc: CycloneDx, mtime: number): string {
  const { bomFormat, specVersion, serialNumber: _random, metadata, ...rest } = doc;
  const pinned = { ...rest, metadata: { ...metadata, timestamp: new Date(mtime * 1000).toISOString() } };
  const hex = sha256Bytes(JSON.stringify({ bomFormat, specVersion, ...pinned }));
  // A UUID made from the document's hash (RFC 9562 version 8 layout), in place of syft's random one.
  const variant = ((parseInt(hex[16] as string, 16) & 0x3) | 0x8).toString(16);
  const uuid = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-8${hex.slice(13, 16)}-${variant}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
  return `${JSON.stringify({ bomFormat, specVersion, serialNumber: `urn:uuid:${uuid}`, ...pinned }, null, 2)}\n`;
}
