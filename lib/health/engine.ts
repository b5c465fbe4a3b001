/** The container engine: Docker answers, and it is not Podman however Podman shows. */
import { PODMAN_HINT } from '../engine/identify.ts';
import type { HealthCheck } from './types.ts';

export const engineCheck: HealthCheck = {
  id: 'engine',
  title: 'container engine',
  timeoutMs: 8_000,
  async run(ctx) {
    const { identity, endpoint } = await ctx.engine();
    const details = { engine: identity.kind, version: identity.version, apiVersion: identity.apiVersion, endpoint: endpoint.label };
    if (identity.kind === 'podman') {
      return { status: 'fail', message: `Podman, not Docker: ${identity.evidence.join('; ')}`, fix: PODMAN_HINT, details: { ...details, evidence: identity.evidence } };
    }
    const what = `Docker ${identity.version ?? '(unknown version)'} (API ${identity.apiVersion ?? '?'}) answers at ${endpoint.label}`;
    if (identity.podmanBeside) {
      return {
        status: 'warn',
        message: `${what}, but Podman is installed beside it (${identity.podmanBeside})`,
        fix: 'remove podman (apt-get remove podman podman-docker) so no one runs containers outside Docker',
        details: { ...details, podman: identity.podmanBeside },
      };
    }
    return { status: 'pass', message: what, details };
  },
};
