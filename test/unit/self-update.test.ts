/** lib/agent in-process: reading --version, the downgrade rule, ELF architectures, and the replace/rollback renames on small files. */
import { afterAll, describe, expect, test } from 'bun:test';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { agentEventLog } from '../../lib/agent/events.ts';
import { placeAgent, removeLeftovers, resolveTarget, swapWithPrevious, tempName } from '../../lib/agent/replace.ts';
import { downgradeRefusal } from '../../lib/agent/self-update.ts';
import { parseVersionOutput } from '../../lib/agent/smoke.ts';
import { elfArch, hostArch } from '../../lib/agent/verify.ts';
import { ContainaiError } from '../../lib/errors.ts';

const dir = mkdtempSync(join(tmpdir(), 'cai-agent-unit-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('--version output', () => {
  test('the stamped form gives version and commit; the bare form (older agents) the version; anything else nothing', () => {
    expect(parseVersionOutput('containai-host v1.2.3 (abc1234)\n')).toEqual({ version: 'v1.2.3', commit: 'abc1234' });
    expect(parseVersionOutput('containai-host v1.2.3-rc.1 ()\nmore\n')).toEqual({ version: 'v1.2.3-rc.1', commit: undefined });
    expect(parseVersionOutput('v1.2.3\n')).toEqual({ version: 'v1.2.3' });
    expect(parseVersionOutput('bash 5.2\n')).toBeUndefined();
    expect(parseVersionOutput('')).toBeUndefined();
    expect(parseVersionOutput('containai-build v1.2.3 (abc)\n')).toBeUndefined();
  });
});

describe('the downgrade rule', () => {
  test('semver orders; equal or higher passes; unordered versions need --allow-downgrade; an unknown current one does not block', () => {
    expect(downgradeRefusal('v1.2.0', 'v1.1.9')).toBe('v1.1.9 is older than v1.2.0, the agent here');
    expect(downgradeRefusal('v1.2.0', 'v1.2.0')).toBeUndefined();
    expect(downgradeRefusal('v1.2.0', 'v1.10.0')).toBeUndefined();
    expect(downgradeRefusal('v1.2.0', 'v1.2.0-rc.1')).toContain('older');
    expect(downgradeRefusal('4a39b06-dirty', 'v1.2.0')).toContain('cannot be ordered');
    expect(downgradeRefusal(undefined, 'v0.0.1')).toBeUndefined();
  });
});

describe('architecture', () => {
  test('the ELF header names x64 or arm64; other files are not programs', async () => {
    expect(hostArch('x64')).toBe('x64');
    expect(() => hostArch('ia32')).toThrow(ContainaiError);
    expect(await elfArch(process.execPath)).toBe(hostArch());
    const arm = '/usr/aarch64-linux-gnu/lib/libc.so.6';
    if (existsSync(arm)) expect(await elfArch(arm)).toBe('arm64');
    const text = join(dir, 'script');
    writeFileSync(text, '#!/bin/sh\necho v9.9.9\n');
    expect(await elfArch(text)).toBe('not an ELF program');
  });
});

describe('replacing and rolling back', () => {
  test('place keeps the old file as .previous and puts the new one at the path; swap exchanges them; leftovers go', async () => {
    const binDir = join(dir, 'bin');
    mkdirSync(binDir, { mode: 0o755 });
    const bin = join(binDir, 'agent');
    writeFileSync(bin, 'old', { mode: 0o755 });
    const target = await resolveTarget(bin);
    const fresh = tempName(target, 'new');
    writeFileSync(fresh, 'new', { mode: 0o755 });
    writeFileSync(tempName(target, 'new'), 'left by a killed run');
    await placeAgent(target, fresh);
    expect(readFileSync(bin, 'utf8')).toBe('new');
    expect(readFileSync(`${bin}.previous`, 'utf8')).toBe('old');
    expect(await removeLeftovers(target)).toHaveLength(1);
    expect(readdirSync(binDir).sort()).toEqual(['agent', 'agent.previous']);
    await swapWithPrevious(target);
    expect(readFileSync(bin, 'utf8')).toBe('old');
    expect(readFileSync(`${bin}.previous`, 'utf8')).toBe('new');
  });

  test('no .previous: the swap refuses and changes nothing; a missing binary is named', async () => {
    const binDir = join(dir, 'bin2');
    mkdirSync(binDir, { mode: 0o755 });
    writeFileSync(join(binDir, 'agent'), 'only', { mode: 0o755 });
    const target = await resolveTarget(join(binDir, 'agent'));
    await expect(swapWithPrevious(target)).rejects.toThrow('there is no');
    expect(readdirSync(binDir)).toEqual(['agent']);
    await expect(resolveTarget(join(binDir, 'missing'))).rejects.toThrow('does not exist');
  });

  test('events go to the install root when one is named, else to the state folder', () => {
    expect(agentEventLog('/opt/containai', { CONTAINAI_STATE_DIR: '/x' })).toBe('/opt/containai/state/events.jsonl');
    expect(agentEventLog(undefined, { CONTAINAI_STATE_DIR: '/x' })).toBe('/x/events.jsonl');
    expect(agentEventLog(undefined, {})).toBe('/var/lib/containai/events.jsonl');
    expect(agentEventLog(undefined, { CONTAINAI_STATE_DIR: 'relative' })).toBeUndefined();
  });
});
