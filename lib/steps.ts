/**
 * Long operations are ordered steps over one context object (package: stage →
 * sbom → sums → archive → bundle; install: fetch → check hash → verify → …).
 * This runner is the one place that logs, times and records them, so every
 * command gets the same progress lines and the same --json step report.
 */
import { log } from './cli/output.ts';

export interface Step<C> {
  /** Stable id, used in --json output. */
  name: string;
  /** What a person watching reads. */
  title: string;
  /** Returns a reason to skip this step, or nothing to run it. */
  skip?: (ctx: C) => string | false | undefined;
  run: (ctx: C) => Promise<void> | void;
}

export interface StepRecord {
  name: string;
  status: 'done' | 'skipped' | 'failed';
  ms: number;
  note?: string;
}

export async function runSteps<C>(steps: readonly Step<C>[], ctx: C): Promise<StepRecord[]> {
  const records: StepRecord[] = [];
  for (const step of steps) {
    const reason = step.skip?.(ctx);
    if (reason) {
      log().info(`- ${step.title}: skipped (${reason})`);
      records.push({ name: step.name, status: 'skipped', ms: 0, note: reason });
      continue;
    }
    const started = performance.now();
    log().start(step.title);
    try {
      await step.run(ctx);
    } catch (err) {
      records.push({ name: step.name, status: 'failed', ms: Math.round(performance.now() - started) });
      log().fail(step.title);
      throw err;
    }
    const ms = Math.round(performance.now() - started);
    log().debug(`${step.name}: done in ${ms} ms`);
    records.push({ name: step.name, status: 'done', ms });
  }
  return records;
}
