/**
 * Small programs the OCI tests run in a process of their own:
 *
 *   bun test/helpers/registry-child.ts download REF DIR FRACTION
 *     opens a registry release (credentials from DOCKER_CONFIG, as a host
 *     finds them), streams its payload into DIR, and once FRACTION of the
 *     blob went by prints "STOPPED <bytes>" and waits to be killed;
 *   bun test/helpers/registry-child.ts read-layout DIR TAG [ADDRESS]
 *     reads a release from an OCI image layout and prints what it read as
 *     JSON; with ADDRESS (host:port) it first shows that it cannot reach it
 *     (run inside `unshare -n`: no network at all).
 */
import { parseRegistryReference } from '../../lib/oci/reference.ts';
import { layoutReleaseSource, registryReleaseSource } from '../../lib/oci/release-source.ts';

const [command, ...args] = process.argv.slice(2);

if (command === 'download') {
  const [ref, dir, fraction] = args as [string, string, string];
  const source = registryReleaseSource(parseRegistryReference(ref), { downloadDir: dir });
  await source.open();
  const total = source.artifact?.layers.get('payload.tar.gz')?.size ?? 0;
  let seen = 0;
  for await (const chunk of source.payload()) {
    seen += chunk.byteLength;
    if (seen >= total * Number(fraction)) {
      process.stdout.write(`STOPPED ${seen}\n`);
      await new Promise(() => undefined);
    }
  }
  process.stdout.write('FINISHED\n');
} else if (command === 'read-layout') {
  const [dir, tag, address] = args as [string, string, string | undefined];
  let network = 'not tried';
  if (address) {
    network = await fetch(`http://${address}/v2/`, { signal: AbortSignal.timeout(5000) }).then(
      (r) => `reached (${r.status})`,
      () => 'unreachable',
    );
  }
  const source = layoutReleaseSource(dir, { tag });
  const parts = await source.open();
  const hasher = new Bun.CryptoHasher('sha256');
  let bytes = 0;
  for await (const chunk of source.payload()) {
    hasher.update(chunk);
    bytes += chunk.byteLength;
  }
  await source.close();
  process.stdout.write(
    `${JSON.stringify({
      network,
      location: source.location,
      sums: new TextDecoder().decode(parts.sums),
      releaseJson: parts.releaseJson ? new TextDecoder().decode(parts.releaseJson) : null,
      signatures: Object.keys(parts.signatures).filter((k) => parts.signatures[k as keyof typeof parts.signatures]),
      payloadSha256: hasher.digest('hex'),
      payloadBytes: bytes,
    })}\n`,
  );
} else {
  process.stderr.write('usage: registry-child.ts download REF DIR FRACTION | read-layout DIR TAG [ADDRESS]\n');
  process.exit(2);
}
