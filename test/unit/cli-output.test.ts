/** lib/cli/did-you-mean.ts, lib/text.ts printableJson and lib/health/report.ts: small pieces of what a person reads. */
import { describe, expect, test } from 'bun:test';
import { didYouMean, editDistance } from '../../lib/cli/did-you-mean.ts';
import { formatReport } from '../../lib/health/report.ts';
import type { HealthReport } from '../../lib/health/types.ts';
import { printableJson } from '../../lib/text.ts';

describe('didYouMean', () => {
  test('close words get the candidate; far ones get nothing', () => {
    const commands = ['install', 'rollback', 'status', 'prune', 'verify', 'check-health', 'systemd'];
    expect(didYouMean('instal', commands)).toBe('install');
    expect(didYouMean('instlal', commands)).toBe('install');
    expect(didYouMean('stauts', commands)).toBe('status');
    expect(didYouMean('check', commands)).toBe('check-health');
    expect(didYouMean('Status', commands)).toBe('status');
    expect(didYouMean('deploy', commands)).toBeUndefined();
    expect(didYouMean('x', commands)).toBeUndefined();
    expect(didYouMean('', commands)).toBeUndefined();
  });

  test('versions: 1.0.0 where v1.0.0 exists (for the lead to wire into install)', () => {
    expect(didYouMean('1.0.0', ['v1.0.0', 'v1.1.0', 'v2.0.0'])).toBe('v1.0.0');
    expect(didYouMean('v1.0', ['v1.0.0', 'v2.0.0'])).toBe('v1.0.0');
  });

  test('edit distance counts a swap of neighbours as one edit', () => {
    expect(editDistance('ab', 'ba')).toBe(1);
    expect(editDistance('kitten', 'sitting')).toBe(3);
  });
});

describe('printableJson', () => {
  test('DEL, C1 and the line separators are escaped; the document parses to the same value', () => {
    const value = { name: 'a\u009b31m\u007f\u2028b\u001b', n: 1 };
    const text = printableJson(value, 2);
    expect(text).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029]/);
    expect(text).toContain('\\u009b');
    expect(JSON.parse(text)).toEqual(value);
  });
});

describe('formatReport', () => {
  test("a check's message or fix cannot forge a line or carry a terminal escape", () => {
    const report = {
      ok: false,
      durationMs: 1,
      summary: { pass: 0, warn: 0, fail: 1, skip: 0 },
      checks: [{ id: 'release', status: 'fail', message: 'bad name "x\nok    engine  fine"\u009b2J', fix: 'remove \u001b[31m', durationMs: 1 }],
    } as unknown as HealthReport;
    const text = formatReport(report);
    expect(text.split('\n')).toHaveLength(3);
    expect(text).toContain('x\\x0aok    engine  fine"\\x9b2J');
    expect(text).toContain('fix: remove \\x1b[31m');
  });
});
