/**
 * Builders of good and hostile tar.gz archives and bundles, byte by byte: the
 * tar headers are written here (not by a tar tool), so a test can say exactly
 * what a hostile archive holds: a device, a FIFO, a setuid bit, a size it does
 * not carry, a name twice. Nothing here creates a device or link on disk.
 *
 * Unit tests feed them to extractTarGz/unpackBundle; e2e tests write them to
 * files and hand them to the compiled `containai-host install`.
 */
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';

export type EntryType = 'file' | 'dir' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo' | 'contiguous' | 'sparse';

export interface TarSpec {
  name: string;
  type?: EntryType;
  /** File content (default empty). */
  body?: Uint8Array | string;
  /** The size written in the header, when it should differ from the body's (a lie). */
  declaredSize?: number;
  mode?: number;
  /** Symlink or hardlink target. */
  linkname?: string;
  /** Extra pax records, emitted as an 'x' header before this entry. */
  pax?: Record<string, string>;
}

const TYPEFLAGS: Record<EntryType, string> = {
  file: '0',
  hardlink: '1',
  symlink: '2',
  char: '3',
  block: '4',
  dir: '5',
  fifo: '6',
  contiguous: '7',
  sparse: 'S',
};

function octal(value: number, width: number): string {
  return `${value.toString(8).padStart(width - 1, '0')}\0`;
}

/** One 512-byte ustar header with a correct checksum. Sizes over 8 GiB use GNU base-256. */
export function tarHeader(fields: { name: string; typeflag: string; size: number; mode: number; linkname?: string; gnu?: boolean }): Buffer {
  const block = Buffer.alloc(512);
  const name = Buffer.from(fields.name);
  if (name.length > 100) throw new Error(`tarHeader: name over 100 bytes (use a pax record): ${fields.name}`);
  name.copy(block, 0);
  block.write(octal(fields.mode, 8), 100, 'latin1');
  block.write(octal(0, 8), 108, 'latin1');
  block.write(octal(0, 8), 116, 'latin1');
  if (fields.size < 8 ** 11) {
    block.write(octal(fields.size, 12), 124, 'latin1');
  } else {
    block[124] = 0x80;
    let v = BigInt(fields.size);
    for (let i = 135; i > 124; i--) {
      block[i] = Number(v & 0xffn);
      v >>= 8n;
    }
  }
  block.write(octal(0, 12), 136, 'latin1');
  block.write(fields.typeflag, 156, 'latin1');
  if (fields.linkname) Buffer.from(fields.linkname).copy(block, 157);
  block.write(fields.gnu ? 'ustar  \u0000' : 'ustar\u000000', 257, 'latin1');
  block.write('root', 265, 'latin1');
  block.write('root', 297, 'latin1');
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return block;
}

function pad(length: number): Buffer {
  return Buffer.alloc((512 - (length % 512)) % 512);
}

export function paxBody(records: Record<string, string>): Buffer {
  const lines = Object.entries(records).map(([key, value]) => {
    const text = ` ${key}=${value}\n`;
    let len = Buffer.byteLength(text);
    len += String(len).length;
    if (String(len).length !== String(len - String(len).length).length) len += 1;
    return `${len}${text}`;
  });
  return Buffer.from(lines.join(''));
}

/** The bytes of one entry: an optional pax header, the header, the body, padding. */
export function tarEntry(spec: TarSpec): Buffer {
  const type = spec.type ?? 'file';
  const body = spec.body === undefined ? Buffer.alloc(0) : Buffer.from(spec.body);
  const parts: Buffer[] = [];
  const pax: Record<string, string> = { ...spec.pax };
  let name = spec.name;
  if (Buffer.byteLength(name) > 100) {
    pax.path = name;
    name = name.slice(0, 90).replace(/[^\x20-\x7e]/g, '_');
  }
  let linkname = spec.linkname;
  if (linkname && Buffer.byteLength(linkname) > 100) {
    pax.linkpath = linkname;
    linkname = 'long-link';
  }
  if (Object.keys(pax).length > 0) {
    const data = paxBody(pax);
    parts.push(tarHeader({ name: 'PaxHeader', typeflag: 'x', size: data.length, mode: 0o644 }), data, pad(data.length));
  }
  const defaultMode = type === 'dir' ? 0o755 : type === 'symlink' ? 0o777 : 0o644;
  const declared = spec.declaredSize ?? body.length;
  parts.push(tarHeader({ name, typeflag: TYPEFLAGS[type], size: declared, mode: spec.mode ?? defaultMode, linkname }));
  parts.push(body, pad(body.length));
  return Buffer.concat(parts);
}

/** An entry as GNU tar writes a long name: an 'L' record holding the name, then the header (GNU magic). */
export function gnuLongNameEntry(name: string, body: string | Uint8Array = ''): Buffer {
  const data = Buffer.from(`${name}\0`);
  const content = Buffer.from(body);
  return Buffer.concat([
    tarHeader({ name: '././@LongLink', typeflag: 'L', size: data.length, mode: 0o644, gnu: true }),
    data,
    pad(data.length),
    tarHeader({ name: name.slice(0, 99), typeflag: '0', size: content.length, mode: 0o644, gnu: true }),
    content,
    pad(content.length),
  ]);
}

export const END_OF_ARCHIVE = Buffer.alloc(1024);

/** A whole tar stream (with the end-of-archive marker). */
export function buildTar(entries: readonly TarSpec[]): Buffer {
  return Buffer.concat([...entries.map(tarEntry), END_OF_ARCHIVE]);
}

export function buildTarGz(entries: readonly TarSpec[]): Buffer {
  return gzipSync(buildTar(entries), { level: 1 });
}

export function writeTarGz(path: string, entries: readonly TarSpec[]): string {
  writeFileSync(path, buildTarGz(entries));
  return path;
}

// ---------------------------------------------------------------------------
// Payloads: one top folder "payload/" as containai-build makes them.

export const GOOD_FILES = {
  'README.md': '# ContainAI\n',
  'host/utils/run.sh': '#!/bin/sh\necho hello\n',
  'host/profile.env': 'IMAGE_PREFIX=containai\n',
  'tools/containai-host': '\x7fELF fake binary',
} as const;

/** A payload a real build could make: folders, an executable, a plain file, a symlink inside. */
export function goodPayloadEntries(top = 'payload'): TarSpec[] {
  return [
    { name: `${top}/`, type: 'dir' },
    { name: `${top}/README.md`, body: GOOD_FILES['README.md'] },
    { name: `${top}/host/`, type: 'dir' },
    { name: `${top}/host/profile.env`, body: GOOD_FILES['host/profile.env'], mode: 0o600 },
    { name: `${top}/host/utils/`, type: 'dir' },
    { name: `${top}/host/utils/run.sh`, body: GOOD_FILES['host/utils/run.sh'], mode: 0o755 },
    { name: `${top}/host/utils/latest`, type: 'symlink', linkname: 'run.sh' },
    { name: `${top}/host/readme-link`, type: 'symlink', linkname: '../README.md' },
    { name: `${top}/tools/`, type: 'dir' },
    { name: `${top}/tools/containai-host`, body: GOOD_FILES['tools/containai-host'], mode: 0o755 },
  ];
}

/**
 * Hostile payloads, each under "payload/" unless the point is to leave it.
 * `outside` is a folder outside the destination that a test watches: links and
 * names aim there, so a broken extractor would visibly write into it.
 * Each returns the entries; pass them to buildTarGz/writeTarGz.
 */
export const hostilePayloads = {
  traversal: (outside: string) => [
    { name: 'payload/', type: 'dir' },
    { name: `payload/../../../../../../../..${outside}/traversal.txt`, body: 'pwned' },
  ],
  traversalDotDotOnly: () => [{ name: 'payload/', type: 'dir' }, { name: 'payload/a/../../evil', body: 'pwned' }],
  absolute: (outside: string) => [{ name: `${outside}/absolute.txt`, body: 'pwned' }],
  /** `link -> <outside>` then `link/written-through.txt`. */
  symlinkThenWrite: (outside: string) => [
    { name: 'payload/', type: 'dir' },
    { name: 'payload/link', type: 'symlink', linkname: outside },
    { name: 'payload/link/written-through.txt', body: 'pwned' },
  ],
  /** `up -> ../..` then `up/<...>`: relative escape, then a write through it. */
  symlinkDotDotThenWrite: () => [
    { name: 'payload/', type: 'dir' },
    { name: 'payload/up', type: 'symlink', linkname: '../..' },
    { name: 'payload/up/written-through.txt', body: 'pwned' },
  ],
  /** A link that leaves the release, with nothing written through it. */
  symlinkOutside: () => [
    { name: 'payload/', type: 'dir' },
    { name: 'payload/passwd', type: 'symlink', linkname: '../../../../../../etc/passwd' },
  ],
  symlinkAbsolute: () => [
    { name: 'payload/', type: 'dir' },
    { name: 'payload/passwd', type: 'symlink', linkname: '/etc/passwd' },
  ],
  /** Each link alone looks inside; together `a` leads out (`d/up` -> `..` is the release root). */
  symlinkChainEscape: () => [
    { name: 'payload/', type: 'dir' },
    { name: 'payload/d/', type: 'dir' },
    { name: 'payload/d/up', type: 'symlink', linkname: '..' },
    { name: 'payload/a', type: 'symlink', linkname: 'd/up/../x' },
  ],
  hardlinkOutside: (outside: string) => [
    { name: 'payload/', type: 'dir' },
    { name: 'payload/shadow', type: 'hardlink', linkname: `${outside}/target.txt` },
  ],
  hardlinkInside: () => [
    { name: 'payload/', type: 'dir' },
    { name: 'payload/a', body: 'x' },
    { name: 'payload/b', type: 'hardlink', linkname: 'payload/a' },
  ],
  charDevice: () => [{ name: 'payload/', type: 'dir' }, { name: 'payload/null', type: 'char' }],
  blockDevice: () => [{ name: 'payload/', type: 'dir' }, { name: 'payload/sda', type: 'block' }],
  fifo: () => [{ name: 'payload/', type: 'dir' }, { name: 'payload/pipe', type: 'fifo' }],
  unknownType: () => [{ name: 'payload/', type: 'dir' }, { name: 'payload/sparse', type: 'sparse' }],
  setuid: () => [{ name: 'payload/', type: 'dir' }, { name: 'payload/su', body: '#!/bin/sh\n', mode: 0o4755 }],
  setgid: () => [{ name: 'payload/', type: 'dir' }, { name: 'payload/sg', body: '#!/bin/sh\n', mode: 0o2755 }],
  setgidDir: () => [{ name: 'payload/', type: 'dir' }, { name: 'payload/shared/', type: 'dir', mode: 0o2775 }],
  sticky: () => [{ name: 'payload/', type: 'dir' }, { name: 'payload/tmp/', type: 'dir', mode: 0o1777 }],
  /** Declares 1 TiB and carries nothing: must be refused on the header. */
  hugeDeclaredSize: () => [{ name: 'payload/', type: 'dir' }, { name: 'payload/huge.bin', declaredSize: 2 ** 40 }],
  /** `depth` folders deep with one-letter names (a pax path when it exceeds 100 bytes). */
  deepPath: (depth = 2000) => [{ name: 'payload/', type: 'dir' }, { name: `payload/${'d/'.repeat(depth)}deep.txt`, body: 'x' }],
  longName: (bytes = 2000) => [{ name: 'payload/', type: 'dir' }, { name: `payload/${'n'.repeat(bytes)}`, body: 'x' }],
  /** `count` files each `depth` folders deep in folders of their own: few entries, many implied folders. */
  manyImpliedFolders: (count = 1000, depth = 60) =>
    Array.from({ length: count }, (_, i) => ({ name: `payload/${Array.from({ length: depth }, (_, j) => `${i}-${j}`).join('/')}/f`, body: 'x' })),
  duplicateFile: () => [
    { name: 'payload/', type: 'dir' },
    { name: 'payload/a.txt', body: 'first' },
    { name: 'payload/a.txt', body: 'second' },
  ],
  dirThenFileSameName: () => [
    { name: 'payload/', type: 'dir' },
    { name: 'payload/x/', type: 'dir' },
    { name: 'payload/x', body: 'file' },
  ],
  fileThenDirTrailingSlash: () => [
    { name: 'payload/', type: 'dir' },
    { name: 'payload/x', body: 'file' },
    { name: 'payload/x/', type: 'dir' },
  ],
  dotSlashDuplicate: () => [
    { name: 'payload/', type: 'dir' },
    { name: 'payload/a.txt', body: 'first' },
    { name: './payload/a.txt', body: 'second' },
  ],
  /** A symlink over a name that earlier entries made a folder. */
  symlinkOverImplicitDir: (outside: string) => [
    { name: 'payload/', type: 'dir' },
    { name: 'payload/etc/passwd', body: 'x' },
    { name: 'payload/etc', type: 'symlink', linkname: outside },
  ],
  outsideTopFolder: () => [
    { name: 'payload/', type: 'dir' },
    { name: 'payload/ok.txt', body: 'ok' },
    { name: 'other/evil.txt', body: 'pwned' },
  ],
  twoTopFolders: () => [{ name: 'payload/', type: 'dir' }, { name: 'payload2/', type: 'dir' }],
} satisfies Record<string, (...args: never[]) => TarSpec[]>;

/** `count` empty files under payload/ (100,000 by default), built fast as raw bytes. */
export function manyEntriesTarGz(count = 100_000): Buffer {
  // One template header; per entry only the name and the checksum change (fast for 100,000).
  const template = tarHeader({ name: '', typeflag: '0', size: 0, mode: 0o644 });
  let base = 0;
  for (let i = 0; i < 512; i++) base += i >= 148 && i < 156 ? 0x20 : (template[i] as number);
  const first = tarEntry({ name: 'payload/', type: 'dir' });
  const out = Buffer.alloc(first.length + count * 512 + END_OF_ARCHIVE.length);
  first.copy(out, 0);
  let off = first.length;
  for (let i = 0; i < count; i++) {
    template.copy(out, off);
    const name = `payload/f${i}`;
    let sum = base;
    for (let j = 0; j < name.length; j++) {
      out[off + j] = name.charCodeAt(j);
      sum += name.charCodeAt(j);
    }
    out.write(`${sum.toString(8).padStart(6, '0')}\0 `, off + 148, 'latin1');
    off += 512;
  }
  return gzipSync(out, { level: 1 });
}

/**
 * A gzip bomb: one file entry declaring `declaredBytes` of zeros, as a
 * multi-member gzip of one small compressed block repeated, so it costs a few
 * KB on disk and a few ms to build whatever it expands to (1 GiB by default).
 * `before` are the entries ahead of it (default: the top folder alone; a
 * release's manifest entries to reach the extractor past the manifest checks).
 */
export function gzipBomb(declaredBytes = 2 ** 30, before: readonly TarSpec[] = [{ name: 'payload/', type: 'dir' }]): Buffer {
  const unit = 16 * 2 ** 20;
  const zeros = gzipSync(Buffer.alloc(unit), { level: 9 });
  const head = gzipSync(Buffer.concat([...before.map(tarEntry), tarHeader({ name: 'payload/zeros', typeflag: '0', size: declaredBytes, mode: 0o644 })]));
  const members = [head];
  for (let i = 0; i < Math.ceil(declaredBytes / unit); i++) members.push(zeros);
  members.push(gzipSync(END_OF_ARCHIVE));
  return Buffer.concat(members);
}

/**
 * A bomb with no entry declaring a big size: zeros after the end-of-archive
 * marker, which a reader that stops at the marker would never count but one
 * that checks the gzip trailer must inflate.
 */
export function trailingZerosBomb(bytes = 2 ** 30): Buffer {
  const unit = 16 * 2 ** 20;
  const zeros = gzipSync(Buffer.alloc(unit), { level: 9 });
  const members = [buildTarGz(goodPayloadEntries())];
  for (let i = 0; i < Math.ceil(bytes / unit); i++) members.push(zeros);
  return Buffer.concat(members);
}

/** A global pax header ('g') that tries to rename every later entry. */
export function globalPaxPathTarGz(): Buffer {
  const data = paxBody({ path: 'payload/../../evil' });
  return gzipSync(
    Buffer.concat([
      tarHeader({ name: 'GlobalHead', typeflag: 'g', size: data.length, mode: 0o644 }),
      data,
      pad(data.length),
      buildTar(goodPayloadEntries()),
    ]),
  );
}

export function truncate(bytes: Buffer, keep = Math.floor(bytes.length / 2)): Buffer {
  return bytes.subarray(0, keep);
}

export function garbage(length = 64 * 1024): Buffer {
  const out = Buffer.alloc(length);
  for (let i = 0; i < length; i++) out[i] = (i * 2654435761) >>> 24;
  return out;
}

/** A valid gzip whose content is not a tar archive. */
export function gzippedGarbage(length = 64 * 1024): Buffer {
  return gzipSync(garbage(length));
}

// ---------------------------------------------------------------------------
// Bundles: flat tar.gz of payload.tar.gz, payload.sha256 and optional members.

export function sha256Hex(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

export function payloadSha256Line(payload: Uint8Array): string {
  return `${sha256Hex(payload)}  payload.tar.gz\n`;
}

/** Bundle entries for a payload: payload.tar.gz, its payload.sha256, and any extra members. */
export function bundleEntries(payload: Uint8Array, extra: Record<string, string | Uint8Array> = {}): TarSpec[] {
  return [
    { name: 'payload.tar.gz', body: payload },
    { name: 'payload.sha256', body: payloadSha256Line(payload) },
    ...Object.entries(extra).map(([name, body]) => ({ name, body })),
  ];
}

export function goodBundle(payload: Uint8Array = buildTarGz(goodPayloadEntries()), extra: Record<string, string | Uint8Array> = {}): Buffer {
  return buildTarGz(bundleEntries(payload, extra));
}

/** A well-formed bundle around a hostile payload: it passes the hash check, so install reaches extraction. */
export function bundleAround(payloadEntries: readonly TarSpec[] | Buffer): Buffer {
  const payload = Buffer.isBuffer(payloadEntries) ? payloadEntries : buildTarGz(payloadEntries);
  return goodBundle(payload);
}

export const hostileBundles = {
  unknownMember: () => buildTarGz([...bundleEntries(buildTarGz(goodPayloadEntries())), { name: 'install.sh', body: '#!/bin/sh\n' }]),
  nestedPath: () => buildTarGz([...bundleEntries(buildTarGz(goodPayloadEntries())), { name: 'extra/cosign', body: 'x' }]),
  missingSha256: () => buildTarGz([{ name: 'payload.tar.gz', body: buildTarGz(goodPayloadEntries()) }]),
  missingPayload: () => buildTarGz([{ name: 'payload.sha256', body: `${'0'.repeat(64)}  payload.tar.gz\n` }]),
  duplicateMember: () => {
    const payload = buildTarGz(goodPayloadEntries());
    return buildTarGz([...bundleEntries(payload), { name: 'payload.tar.gz', body: payload }]);
  },
  symlinkMember: () => buildTarGz([
    { name: 'payload.tar.gz', type: 'symlink', linkname: '/etc/passwd' },
    { name: 'payload.sha256', body: `${'0'.repeat(64)}  payload.tar.gz\n` },
  ]),
  dirMember: () => buildTarGz([{ name: 'cosign/', type: 'dir' }, ...bundleEntries(buildTarGz(goodPayloadEntries()))]),
  traversalMember: () => buildTarGz([...bundleEntries(buildTarGz(goodPayloadEntries())), { name: '../payload.sig', body: 'x' }]),
  shaMismatch: () => {
    const payload = buildTarGz(goodPayloadEntries());
    return buildTarGz([
      { name: 'payload.tar.gz', body: payload },
      { name: 'payload.sha256', body: `${sha256Hex(Buffer.from('something else'))}  payload.tar.gz\n` },
    ]);
  },
  truncated: () => truncate(goodBundle()),
  garbage: () => garbage(),
} satisfies Record<string, () => Buffer>;

// ---------------------------------------------------------------------------
// One table of every hostile payload that the real limits refuse quickly, with
// what the refusal must say (test/unit/extract.test.ts runs it through the
// extractor; test/e2e/install.test.ts puts such entries after a release's
// manifest and expects exit 1 and no release left behind).

export interface HostileCase {
  name: string;
  /** payload.tar.gz bytes. */
  archive: Buffer;
  /** What the one-line refusal names. */
  message: RegExp;
}

export function hostilePayloadCases(outside: string): HostileCase[] {
  const t = (name: string, entries: TarSpec[], message: RegExp): HostileCase => ({ name, archive: buildTarGz(entries), message });
  return [
    t('path traversal', hostilePayloads.traversal(outside), /"\.\." component/),
    t('absolute path', hostilePayloads.absolute(outside), /absolute path|outside the top folder/),
    t('symlink leaving the release, then a file through it', hostilePayloads.symlinkThenWrite(outside), /points to an absolute path|written through the symlink/),
    t('symlink ../.. then a file through it', hostilePayloads.symlinkDotDotThenWrite(), /written through the symlink/),
    t('relative symlink resolving outside', hostilePayloads.symlinkOutside(), /resolves outside the release/),
    t('symlinks escaping together', hostilePayloads.symlinkChainEscape(), /passes through the link d\/up/),
    t('hardlink to a file outside', hostilePayloads.hardlinkOutside(outside), /is a hardlink/),
    t('character device', hostilePayloads.charDevice(), /is a character device/),
    t('block device', hostilePayloads.blockDevice(), /is a block device/),
    t('FIFO', hostilePayloads.fifo(), /is a FIFO/),
    t('setuid bit', hostilePayloads.setuid(), /setuid bit/),
    t('setgid bit', hostilePayloads.setgid(), /setgid bit/),
    t('entry declaring a huge size', hostilePayloads.hugeDeclaredSize(), /declares 1099511627776 bytes/),
    t('path 2,000 folders deep', hostilePayloads.deepPath(2000), /longer than 1024 bytes/),
    t('path 65 folders deep', hostilePayloads.deepPath(65), /folders deep/),
    t('same name twice', hostilePayloads.duplicateFile(), /appears twice/),
    t('folder and file with one name', hostilePayloads.dirThenFileSameName(), /appears twice/),
    t('entry outside payload/', hostilePayloads.outsideTopFolder(), /outside the top folder/),
    { name: '100,000 tiny entries', archive: manyEntriesTarGz(100_001), message: /more than 100000 entries/ },
    // 17 GiB of zeros as a few MB: refused on the header, before any of it is inflated.
    { name: 'gzip bomb (17 GiB declared)', archive: gzipBomb(17 * 2 ** 30), message: /declares 18253611008 bytes/ },
    { name: 'truncated archive', archive: truncate(buildTarGz(goodPayloadEntries())), message: /truncated/ },
    { name: 'garbage bytes', archive: garbage(), message: /not valid gzip/ },
  ];
}

/** Issue 11 item 5: 49,000 dangling symlinks with 511-part targets (refused in 242 s of CPU before the fix). */
export const HOSTILE_LINKS = 49_000;
export const HOSTILE_LINK_TARGET = Array.from({ length: 511 }, () => 'a').join('/');

export function hostileLinkEntries(): TarSpec[] {
  const entries: TarSpec[] = [{ name: 'payload/', type: 'dir' }];
  for (let i = 0; i < HOSTILE_LINKS; i++) entries.push({ name: `payload/l${i}`, type: 'symlink', linkname: HOSTILE_LINK_TARGET });
  return entries;
}
