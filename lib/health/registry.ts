/**
 * The registry the host pulls from answers /v2/ within 3 s (401 is an answer:
 * it asks for credentials). A registry outage does not stop running
 * containers, so it warns; --offline skips it.
 */
import { describeCause } from '../errors.ts';
import type { HealthCheck } from './types.ts';

export const DEFAULT_REGISTRY = 'ghcr.io';
export const REGISTRY_TIMEOUT_MS = 3_000;

/** The host[:port] of a REGISTRY such as ghcr.io/owner. */
export function registryHost(registry: string | undefined): string {
  return registry ? (registry.split('/')[0] ?? DEFAULT_REGISTRY) : DEFAULT_REGISTRY;
}

/** Docker talks plain HTTP to loopback registries only; everything else is HTTPS. */
export function registryUrl(host: string): string {
  const name = host.replace(/:\d+$/, '');
  const loopback = name === 'localhost' || /^127\./.test(name) || name === '[::1]';
  return `${loopback ? 'http' : 'https'}://${host}/v2/`;
}

export const registryCheck: HealthCheck = {
  id: 'registry',
  title: 'registry',
  timeoutMs: REGISTRY_TIMEOUT_MS + 1_000,
  skip: (ctx) => (ctx.offline ? 'skipped (--offline)' : undefined),
  async run(ctx) {
    const registry = await ctx.profile().then((p) => p.REGISTRY, () => undefined);
    const url = registryUrl(registryHost(registry));
    const started = performance.now();
    try {
      const res = await fetch(url, { method: 'GET', redirect: 'manual', signal: AbortSignal.timeout(REGISTRY_TIMEOUT_MS) });
      await res.body?.cancel();
      const ms = Math.round(performance.now() - started);
      if (res.status === 200 || res.status === 401) return { status: 'pass', message: `${url} answers (HTTP ${res.status}, ${ms} ms)` };
      return { status: 'warn', message: `${url} answers HTTP ${res.status}`, fix: 'the registry is unwell or this is not a registry: check REGISTRY in the profile' };
    } catch (err) {
      const timedOut = (err as Error).name === 'TimeoutError';
      return {
        status: 'warn',
        message: timedOut ? `${url} did not answer within ${REGISTRY_TIMEOUT_MS / 1000} s` : `${url} is unreachable: ${describeCause(err)}`,
        fix: 'check DNS, the firewall and any HTTPS proxy towards the registry (or run with --offline on air-gapped hosts)',
      };
    }
  },
};
