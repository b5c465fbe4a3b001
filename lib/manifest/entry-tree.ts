/**
 * The entries of a release as a tree, and where each symlink leads.
 *
 * A link is resolved the way the kernel will resolve it once the release is on
 * disk, but with one rule the kernel does not have: a target may not pass
 * through another link. `x -> d/../README.md` with `d -> host/launchers` would
 * be read by name as the release's README.md, while the kernel goes up from
 * host/launchers instead; refusing a target whose inner components are links
 * makes the name and the kernel agree, so what install checked is what
 * `sha256sum -c` and every later verification see. A link may name another
 * link as its last component (a chain), a file or a folder of the release;
 * one that names nothing (dangling), leaves the release or loops is refused.
 *
 * Linear in the targets' length: each step is one Map lookup from the node the
 * walk stands on (no path strings are rebuilt), and a chain's end is computed
 * once per link. 49,000 links with 511-part targets are judged in well under
 * a second.
 */

export type NodeKind = 'file' | 'dir' | 'symlink';

export interface EntryNode {
  kind: NodeKind;
  /** Relative path, "/"-separated; "" for the release folder itself. */
  path: string;
  parent: EntryNode | undefined;
  children?: Map<string, EntryNode>;
  /** A symlink's target, as written. */
  target?: string;
  /** Resolution state of a symlink: undefined (not yet), 'walking' (in progress: a loop), or the end node. */
  end?: EntryNode | 'walking';
}

/** A problem with a path, or undefined when it is a proper relative entry name. */
export function pathProblem(path: string, limits: { maxPathBytes: number; maxDepth: number } = { maxPathBytes: 1024, maxDepth: 64 }): string | undefined {
  if (path.length === 0) return 'an empty name';
  if (Buffer.byteLength(path) > limits.maxPathBytes) return `a name longer than ${limits.maxPathBytes} bytes`;
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f\\]/.test(path)) return 'a control character or backslash in its name';
  if (path.startsWith('/')) return 'an absolute path';
  const parts = path.split('/');
  if (parts.length > limits.maxDepth) return `${parts.length} folders deep (limit ${limits.maxDepth})`;
  for (const part of parts) {
    if (part === '..') return 'a ".." component';
    if (part === '' || part === '.') return 'an empty or "." component';
  }
  return undefined;
}

/** How many folders deep a relative path is ("a" 0, "a/b" 1), without splitting it. */
export function pathDepth(path: string): number {
  let n = 0;
  for (let i = 0; i < path.length; i++) if (path.charCodeAt(i) === 47) n++;
  return n;
}

/**
 * Items ordered so that every folder comes before what it holds (by depth, shallowest first; the
 * order within a depth kept), in one pass of buckets: a sort whose comparator split each path
 * allocated two arrays per comparison, millions on a 50,000-entry tree.
 */
export function parentsFirst<T>(items: Iterable<T>, pathOf: (item: T) => string): T[] {
  const buckets: T[][] = [];
  for (const item of items) (buckets[pathDepth(pathOf(item))] ??= []).push(item);
  return buckets.flatMap((bucket) => bucket ?? []);
}

export class EntryTree {
  readonly root: EntryNode = { kind: 'dir', path: '', parent: undefined, children: new Map() };
  private readonly nodes = new Map<string, EntryNode>([['', this.root]]);

  get(path: string): EntryNode | undefined {
    return this.nodes.get(path);
  }

  /**
   * Adds an entry whose parent folder is already in the tree. Returns a problem instead of adding
   * when the name is taken or the parent is missing or not a folder.
   */
  add(path: string, kind: NodeKind, target?: string): string | undefined {
    if (this.nodes.has(path)) return 'listed twice';
    const slash = path.lastIndexOf('/');
    const parent = this.nodes.get(slash === -1 ? '' : path.slice(0, slash));
    if (!parent) return 'its folder is not an entry';
    if (parent.kind !== 'dir') return `its folder is a ${parent.kind}`;
    const node: EntryNode = { kind, path, parent, target, ...(kind === 'dir' ? { children: new Map() } : {}) };
    parent.children!.set(slash === -1 ? path : path.slice(slash + 1), node);
    this.nodes.set(path, node);
    return undefined;
  }

  /** Every symlink node, in the order added. */
  *links(): Iterable<EntryNode> {
    for (const node of this.nodes.values()) if (node.kind === 'symlink') yield node;
  }

  /** Why the link does not lead to a file or folder of the release, or undefined when it does. */
  linkProblem(link: EntryNode): string | undefined {
    const end = this.resolve(link, 0);
    return typeof end === 'string' ? end : undefined;
  }

  /** The first link that does not resolve, with why; undefined when every link does. */
  firstBadLink(): { link: EntryNode; problem: string } | undefined {
    for (const link of this.links()) {
      const problem = this.linkProblem(link);
      if (problem) return { link, problem };
    }
    return undefined;
  }

  private resolve(link: EntryNode, depth: number): EntryNode | string {
    if (link.end === 'walking') return 'is a symlink loop';
    if (link.end) return link.end;
    if (depth > MAX_CHAIN) return `is a chain of more than ${MAX_CHAIN} links`;
    link.end = 'walking';
    const outcome = this.walk(link, depth);
    if (typeof outcome === 'string') {
      link.end = undefined;
      return outcome;
    }
    link.end = outcome;
    return outcome;
  }

  private walk(link: EntryNode, depth: number): EntryNode | string {
    const target = link.target ?? '';
    if (target === '') return 'has an empty target';
    if (target.startsWith('/')) return 'points to an absolute path';
    let at = link.parent as EntryNode;
    let start = 0;
    while (start <= target.length) {
      let end = target.indexOf('/', start);
      if (end === -1) end = target.length;
      const part = target.slice(start, end);
      const last = end === target.length;
      start = end + 1;
      if (part === '' || part === '.') continue;
      if (at.kind !== 'dir') return `passes through the file ${at.path}`;
      if (part === '..') {
        if (!at.parent) return 'resolves outside the release';
        at = at.parent;
        continue;
      }
      const next = at.children!.get(part);
      if (!next) return 'names nothing in the release';
      if (next.kind === 'symlink') {
        if (!last) return `passes through the link ${next.path} (a target may not go through a link)`;
        const end = this.resolve(next, depth + 1);
        return typeof end === 'string' ? `names the link ${next.path}, which ${end}` : end;
      }
      at = next;
    }
    return at;
  }
}

/** As Linux's MAXSYMLINKS. */
const MAX_CHAIN = 40;
