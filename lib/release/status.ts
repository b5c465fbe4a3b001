/** status: what is installed, with sizes, for people and machines. */
import { inspectInstalledRelease } from './installed.ts';
import { describeSigner, type Signer } from './record.ts';
import { walkTree } from './tree.ts';

export interface ReleaseSummary {
  version: string;
  dir: string;
  installedAt?: string;
  bytes: number;
  signer: Signer | 'UNKNOWN';
  signerText: string;
  current: boolean;
  previous: boolean;
  /** 2: the signed manifest; 1: the first format (signature over the payload, bundle kept). */
  format?: 1 | 2;
  problem?: string;
}

export interface InstallStatus {
  installRoot: string;
  current?: string;
  previous?: string;
  releases: ReleaseSummary[];
  problems: string[];
}

export async function readStatus(installRoot: string): Promise<InstallStatus> {
  const state = await inspectInstalledRelease(installRoot);
  const releases = await Promise.all(
    state.releases.map(async (r): Promise<ReleaseSummary> => {
      const tree = await walkTree(r.dir).catch(() => []);
      const signer = r.record?.signer ?? 'UNKNOWN';
      return {
        version: r.version,
        dir: `releases/${r.dirName}`,
        installedAt: r.record?.installedAt,
        bytes: tree.reduce((n, e) => n + e.size, 0),
        signer,
        signerText: signer === 'UNKNOWN' ? 'UNKNOWN' : describeSigner(signer),
        current: r === state.current,
        previous: r === state.previous,
        format: r.format,
        problem: r.recordProblem,
      };
    }),
  );
  releases.sort((a, b) => (a.installedAt ?? '').localeCompare(b.installedAt ?? '') || a.dir.localeCompare(b.dir));
  return { installRoot, current: state.current?.version, previous: state.previous?.version, releases, problems: state.problems };
}
