/**
 * docs/reference.md against the commands themselves: every command of both binaries (loaded from the
 * lazy registries in cmd/containai-*.ts, however many there are) has a section, every flag it
 * declares is in that section, and every flag the section names exists. A new command needs only its
 * section: "### containai-host NAME [SUB]" with a table whose rows start with the flag (| `--flag` |),
 * and, for the shared sets, a link to the set ("[policy flags](#policy-flags)").
 */
import { describe, expect, test } from 'bun:test';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ArgsDef, CommandDef } from 'citty';
import { REPO_ROOT } from '../helpers/cli.ts';

type AnyCommand = CommandDef<any>;
type Lazy<T> = T | Promise<T> | (() => T | Promise<T>);

async function load<T>(value: Lazy<T>): Promise<T> {
  return typeof value === 'function' ? await (value as () => T | Promise<T>)() : await value;
}

const kebab = (s: string) => s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/** "containai-host systemd install" → its flags (as typed: --kebab-name), for every command that runs. */
async function commandFlags(binary: string, root: AnyCommand): Promise<Map<string, Set<string>>> {
  const out = new Map<string, Set<string>>();
  const walk = async (command: AnyCommand, path: string[]) => {
    const subCommands = (await load(command.subCommands ?? {})) as Record<string, Lazy<AnyCommand>>;
    for (const [name, sub] of Object.entries(subCommands)) await walk(await load(sub), [...path, name]);
    if (!command.run) return;
    const args = (await load(command.args ?? {})) as ArgsDef;
    const flags = Object.entries(args)
      .filter(([, def]) => def.type !== 'positional')
      .map(([name]) => `--${kebab(name)}`);
    out.set([binary, ...path].join(' '), new Set(flags));
  };
  await walk(root, []);
  return out;
}

interface Reference {
  /** Command path → flags its section names (sets expanded). */
  commands: Map<string, Set<string>>;
  /** Flag set anchor → its flags. */
  sets: Map<string, Set<string>>;
}

const slug = (heading: string) => heading.toLowerCase().replace(/[^a-z0-9 -]/g, '').trim().replace(/ +/g, '-');
/** A table row that documents a flag: its first cell starts with `--name` (or `-x, --name`, or `--[no-]name`). */
const FLAG_ROW = /^\|\s*`(?:-[A-Za-z], )?--(?:\[no-\])?([a-z0-9][a-z0-9-]*)/;

function parseReference(text: string): Reference {
  const sections: Array<{ heading: string; lines: string[] }> = [];
  for (const line of text.split('\n')) {
    const h = /^(#{2,3}) (.+)$/.exec(line);
    if (h) sections.push({ heading: (h[2] as string).trim(), lines: [] });
    else sections.at(-1)?.lines.push(line);
  }
  const flagsOf = (lines: string[]) => new Set(lines.flatMap((l) => (FLAG_ROW.exec(l) ? [`--${FLAG_ROW.exec(l)![1]}`] : [])));
  const sets = new Map<string, Set<string>>();
  for (const s of sections) if (/ flags$/i.test(s.heading)) sets.set(slug(s.heading), flagsOf(s.lines));
  const commands = new Map<string, Set<string>>();
  for (const s of sections) {
    if (!/^containai-(build|host)( [a-z][a-z-]*)+$/.test(s.heading)) continue;
    const flags = flagsOf(s.lines);
    for (const m of s.lines.join('\n').matchAll(/\]\(#([a-z0-9-]+)\)/g)) {
      const set = sets.get(m[1] as string);
      if (set) for (const f of set) flags.add(f);
    }
    if (commands.has(s.heading)) throw new Error(`docs/reference.md has two sections for ${s.heading}`);
    commands.set(s.heading, flags);
  }
  return { commands, sets };
}

const reference = parseReference(readFileSync(join(REPO_ROOT, 'docs', 'reference.md'), 'utf8'));
const code = new Map<string, Set<string>>();
for (const binary of ['containai-build', 'containai-host']) {
  const { main } = (await import(join(REPO_ROOT, 'cmd', `${binary}.ts`))) as { main: AnyCommand };
  for (const [path, flags] of await commandFlags(binary, main)) code.set(path, flags);
}

describe('docs/reference.md and the commands agree', () => {
  test('the registries were loaded (both binaries, every command)', () => {
    expect(code.size).toBeGreaterThan(10);
    expect([...code.keys()]).toContain('containai-host install');
    expect([...code.keys()]).toContain('containai-build images push');
    expect(reference.sets.get('policy-flags')?.has('--repo')).toBe(true);
  });

  test('every command has a section, and every section is a command', () => {
    const missing = [...code.keys()].filter((c) => !reference.commands.has(c));
    const stale = [...reference.commands.keys()].filter((c) => !code.has(c));
    expect({ missing, stale }).toEqual({ missing: [], stale: [] });
  });

  test.each([...code.keys()].sort())('%s: the flags it declares and the flags documented are the same', (path) => {
    const declared = code.get(path) as Set<string>;
    const documented = reference.commands.get(path) ?? new Set<string>();
    const undocumented = [...declared].filter((f) => !documented.has(f)).sort();
    const unknown = [...documented].filter((f) => !declared.has(f)).sort();
    expect({ undocumented, unknown }).toEqual({ undocumented: [], unknown: [] });
  });

  test('the check is live: a flag left out, or one that does not exist, is caught', () => {
    const doc = parseReference('## Flag sets\n### Policy flags\n| `--repo` | |\n### containai-host status\n| `--json` | |\n| `--bogus` | |\nTakes the [policy flags](#policy-flags).\n');
    expect([...(doc.commands.get('containai-host status') ?? [])].sort()).toEqual(['--bogus', '--json', '--repo']);
  });
});
