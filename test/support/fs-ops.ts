import fc from 'fast-check';
import { FsError, NotFoundError, StrataError } from '../../shared/errors.js';
import type { Engine } from '../../shared/engine.js';
import type { TreeTarget } from '../../shared/domain/files.js';

/** One file operation, as both Strata and the kernel oracle apply it. Data is bytes as latin1. */
export type FsOp =
  | { op: 'write'; path: string; data: string }
  | { op: 'pwrite'; path: string; offset: number; data: string }
  | { op: 'append'; path: string; data: string }
  | { op: 'truncate'; path: string; size: number }
  | { op: 'remove'; path: string; recursive: boolean }
  | { op: 'mkdir'; path: string }
  | { op: 'rename'; from: string; to: string }
  | { op: 'symlink'; path: string; target: string }
  | { op: 'link'; existing: string; path: string }
  | { op: 'chmod'; path: string; mode: number }
  | { op: 'chown'; path: string; uid: number; gid: number }
  | { op: 'utimes'; path: string; mtime: number }
  | { op: 'read'; path: string }
  | { op: 'stat'; path: string };

export type OpResult = { ok: unknown } | { errno: string };

/** One path of a merged tree, as both sides report it. */
export interface TreeEntry {
  path: string;
  type: 'file' | 'dir' | 'symlink';
  mode: number;
  uid: number;
  gid: number;
  mtimeMs: number;
  size?: number;
  content?: string;
  target?: string;
  /** Files: the number of names, and an identity the names share (each side's own). */
  nlink?: number;
  inode?: string;
}

export interface Change {
  path: string;
  kind: 'A' | 'C' | 'D';
}

/** The vocabulary of a sequence: directories of the image and new ones, names old and new. */
export interface Vocabulary {
  readonly dirs: readonly string[];
  readonly names: readonly string[];
  readonly targets: readonly string[];
}

/**
 * Where an operation points before the run: a fixed path, one of the paths known to exist at
 * that moment (`known`), or a name below one (`under`). Resolved while the sequence runs, so
 * most operations meet real files and directories instead of failing with ENOENT.
 */
export type PathSpec = string | { known: number } | { under: number; name: string };
type Abstract<T> = T extends { path: string }
  ? Omit<T, 'path' | 'from' | 'to' | 'existing'> & { path: PathSpec } & (T extends { from: string } ? { from: PathSpec; to: PathSpec } : object) &
      (T extends { existing: string } ? { existing: PathSpec } : object)
  : never;
export type AbstractOp = Abstract<FsOp> | { op: 'rename'; from: PathSpec; to: PathSpec };

export function opArbitrary(words: Vocabulary): fc.Arbitrary<AbstractOp> {
  const fixed = fc.tuple(fc.constantFrom(...words.dirs), fc.constantFrom(...words.names)).map(([dir, name]) => (dir === '/' ? `/${name}` : `${dir}/${name}`));
  const path: fc.Arbitrary<PathSpec> = fc.oneof(
    { weight: 5, arbitrary: fc.record({ known: fc.nat() }) },
    { weight: 3, arbitrary: fc.record({ under: fc.nat(), name: fc.constantFrom(...words.names) }) },
    { weight: 2, arbitrary: fixed },
  );
  const data = fc.uint8Array({ maxLength: 40 }).map((bytes) => Buffer.from(bytes).toString('latin1'));
  const weighted = (weight: number, arbitrary: fc.Arbitrary<AbstractOp>) => ({ weight, arbitrary });
  return fc.oneof(
    weighted(4, fc.record({ op: fc.constant('write' as const), path, data })),
    weighted(2, fc.record({ op: fc.constant('pwrite' as const), path, offset: fc.nat(60), data })),
    weighted(2, fc.record({ op: fc.constant('append' as const), path, data })),
    weighted(1, fc.record({ op: fc.constant('truncate' as const), path, size: fc.nat(80) })),
    weighted(3, fc.record({ op: fc.constant('remove' as const), path, recursive: fc.boolean() })),
    weighted(3, fc.record({ op: fc.constant('mkdir' as const), path })),
    weighted(4, fc.record({ op: fc.constant('rename' as const), from: path, to: path })),
    weighted(1, fc.record({ op: fc.constant('symlink' as const), path, target: fc.constantFrom(...words.targets) })),
    weighted(2, fc.record({ op: fc.constant('link' as const), existing: path, path })),
    weighted(1, fc.record({ op: fc.constant('chmod' as const), path, mode: fc.constantFrom(0o644, 0o600, 0o755, 0o700, 0o444, 0o777, 0o1777, 0o4755, 0o2755, 0o2745, 0o6711) })),
    weighted(1, fc.record({ op: fc.constant('chown' as const), path, uid: fc.constantFrom(0, 1000, 65534), gid: fc.constantFrom(0, 1000, 65534) })),
    weighted(1, fc.record({ op: fc.constant('utimes' as const), path, mtime: fc.integer({ min: 1_000_000_000_000, max: 2_000_000_000_000 }) })),
    weighted(1, fc.record({ op: fc.constant('read' as const), path })),
    weighted(1, fc.record({ op: fc.constant('stat' as const), path })),
  );
}

/** The paths a sequence believes exist, kept up to date from each successful operation. */
export class KnownPaths {
  private readonly paths: string[];

  constructor(initial: Iterable<string>) {
    this.paths = [...new Set(initial)].sort();
  }

  concrete(op: AbstractOp): FsOp {
    const at = (spec: PathSpec): string => {
      if (typeof spec === 'string') return spec;
      if (this.paths.length === 0) return '/';
      if ('known' in spec) return this.paths[spec.known % this.paths.length];
      return `${this.paths[spec.under % this.paths.length]}/${spec.name}`;
    };
    if (op.op === 'rename') return { ...op, from: at(op.from), to: at(op.to) } as FsOp;
    if (op.op === 'link') return { ...op, existing: at(op.existing), path: at(op.path) } as FsOp;
    return { ...op, path: at(op.path) } as FsOp;
  }

  /** Follows a successful operation (paths through symlinks are only approximated, which is fine for a bias). */
  record(op: FsOp): void {
    switch (op.op) {
      case 'write':
      case 'mkdir':
      case 'symlink':
        this.add(op.path);
        return;
      case 'link':
        this.add(op.path);
        return;
      case 'remove':
        this.drop(op.path);
        return;
      case 'rename': {
        const moved = this.paths.filter((p) => p === op.from || p.startsWith(`${op.from}/`));
        this.drop(op.from);
        for (const p of moved) this.add(op.to + p.slice(op.from.length));
        return;
      }
    }
  }

  private add(path: string) {
    if (!this.paths.includes(path)) {
      this.paths.push(path);
      this.paths.sort();
    }
  }

  private drop(path: string) {
    for (let i = this.paths.length - 1; i >= 0; i--) if (this.paths[i] === path || this.paths[i].startsWith(`${path}/`)) this.paths.splice(i, 1);
  }
}

/**
 * Where Strata decides differently from overlayfs, on purpose (the README's semantics section
 * lists each): the root directory keeps its attributes (chmod, chown and utimes of `/`, also
 * through a symlink, are refused with 400, where the kernel changes them). A symlink linked is
 * a copy of itself: the oracle applies such a link as a new symlink with the same target.
 */
function decidedDifference(expected: OpResult, actual: OpResult): boolean {
  return 'ok' in expected && 'errno' in actual && actual.errno === 'invalid_input: the root directory keeps its attributes';
}

const rootAsStrataKeepsIt: FsOp[] = [
  { op: 'chmod', path: '/', mode: 0o755 },
  { op: 'chown', path: '/', uid: 0, gid: 0 },
];

/**
 * Applies `ops` in turn to an oracle and to a Strata tree, each at a path `known` to exist at that
 * moment, and throws at the first result that differs (a decided difference aside: the oracle's
 * root is put back, so later reads agree). Returns the concrete operations; `onOutcome` sees each.
 */
export async function applyInTurn(
  oracle: { apply(op: FsOp): Promise<OpResult> },
  oracleName: string,
  strata: { engine: Engine; tenant: string; tree: TreeTarget },
  known: KnownPaths,
  ops: readonly AbstractOp[],
  onOutcome: (op: FsOp, ok: boolean) => void = () => undefined,
): Promise<FsOp[]> {
  const ran: FsOp[] = [];
  for (const [i, abstract] of ops.entries()) {
    const op = known.concrete(abstract);
    ran.push(op);
    const expected = await oracle.apply(op);
    const actual = await applyToStrata(strata.engine, strata.tenant, strata.tree, op);
    const decided = decidedDifference(expected, actual);
    if (decided) for (const undo of rootAsStrataKeepsIt) await oracle.apply(undo);
    if (JSON.stringify(actual) !== JSON.stringify(expected) && !decided) {
      throw new Error(`operation ${i} ${JSON.stringify(op)}: ${oracleName} ${JSON.stringify(expected)}, Strata ${JSON.stringify(actual)}\nafter ${JSON.stringify(ran.slice(0, -1))}`);
    }
    if ('ok' in expected) known.record(op);
    onOutcome(op, 'ok' in expected);
  }
  return ran;
}

/** Applies one operation to a Strata tree, with the kernel's errno names for its refusals. */
export async function applyToStrata(engine: Engine, tenant: string, tree: TreeTarget, op: FsOp): Promise<OpResult> {
  const files = engine.files;
  try {
    switch (op.op) {
      case 'write':
        await files.writeFile(tenant, tree, op.path, Buffer.from(op.data, 'latin1'));
        return { ok: true };
      case 'pwrite':
        await files.writeRange(tenant, tree, op.path, op.offset, Buffer.from(op.data, 'latin1'));
        return { ok: true };
      case 'append':
        await files.writeRange(tenant, tree, op.path, 'end', Buffer.from(op.data, 'latin1'));
        return { ok: true };
      case 'truncate':
        await files.truncate(tenant, tree, op.path, op.size);
        return { ok: true };
      case 'remove':
        await files.remove(tenant, tree, op.path, { recursive: op.recursive });
        return { ok: true };
      case 'mkdir':
        await files.mkdir(tenant, tree, op.path);
        return { ok: true };
      case 'rename':
        await files.rename(tenant, tree, op.from, op.to);
        return { ok: true };
      case 'symlink':
        await files.symlink(tenant, tree, op.path, op.target);
        return { ok: true };
      case 'link':
        await files.link(tenant, tree, op.existing, op.path);
        return { ok: true };
      case 'chmod':
        await files.setAttributes(tenant, tree, op.path, { mode: op.mode });
        return { ok: true };
      case 'chown':
        await files.setAttributes(tenant, tree, op.path, { uid: op.uid, gid: op.gid });
        return { ok: true };
      case 'utimes':
        return { ok: (await files.setAttributes(tenant, tree, op.path, { mtime: op.mtime })).mtime };
      case 'read': {
        const { body } = await files.read(tenant, tree, op.path);
        return { ok: (await bytes(body)).toString('latin1') };
      }
      case 'stat': {
        const s = await files.stat(tenant, tree, op.path);
        return { ok: { type: s.type, mode: s.mode, uid: s.uid, gid: s.gid, size: s.type === 'file' ? s.size : undefined, nlink: s.nlink } };
      }
    }
  } catch (error) {
    if (error instanceof FsError) return { errno: error.code };
    if (error instanceof NotFoundError) return { errno: 'ENOENT' };
    if (error instanceof StrataError) return { errno: `${error.code}: ${error.message}` };
    throw error;
  }
}

/** Strata's merged tree in the oracle's shape: parents first, names in byte order. */
export async function strataTree(engine: Engine, tenant: string, tree: TreeTarget): Promise<TreeEntry[]> {
  const out: TreeEntry[] = [];
  const walk = async (dir: string) => {
    const entries = [];
    let cursor: string | undefined;
    do {
      const page = await engine.files.list(tenant, tree, dir, { cursor });
      entries.push(...page.entries);
      cursor = page.cursor;
    } while (cursor);
    entries.sort((a, b) => Buffer.compare(Buffer.from(a.name), Buffer.from(b.name)));
    for (const e of entries) {
      const path = dir === '/' ? `/${e.name}` : `${dir}/${e.name}`;
      const entry: TreeEntry = { path, type: e.type, mode: e.mode, uid: e.uid, gid: e.gid, mtimeMs: e.mtime };
      if (e.type === 'file') {
        entry.size = e.size;
        entry.content = (await bytes((await engine.files.read(tenant, tree, path)).body)).toString('latin1');
      }
      if (e.type === 'symlink') entry.target = e.target;
      if (e.type === 'file') {
        entry.nlink = e.nlink;
        entry.inode = e.inode ?? path;
      }
      out.push(entry);
      if (e.type === 'dir') await walk(path);
    }
  };
  await walk('/');
  return out;
}

/**
 * What `docker diff` reports between two trees (moby's ChangesDirs, the naive diff Docker uses
 * on overlay with redirect_dir): a path differs when its type, mode, owner or, for non-directories,
 * size or mtime differ; a directory with a change below it is changed; a deleted directory is one
 * entry; below a path that became a directory, everything is added.
 */
export function dockerChanges(before: readonly TreeEntry[], after: readonly TreeEntry[]): Change[] {
  const children = (entries: readonly TreeEntry[]) => {
    const map = new Map<string, TreeEntry[]>();
    for (const e of entries) {
      const parent = e.path.slice(0, e.path.lastIndexOf('/')) || '/';
      map.set(parent, [...(map.get(parent) ?? []), e]);
    }
    return map;
  };
  const oldChildren = children(before);
  const newChildren = children(after);
  const out: Change[] = [];
  const differs = (a: TreeEntry, b: TreeEntry) =>
    a.type !== b.type || a.mode !== b.mode || a.uid !== b.uid || a.gid !== b.gid || (b.type !== 'dir' && (a.mtimeMs !== b.mtimeMs || sizeOf(a) !== sizeOf(b)));
  const visit = (dir: string, oldDir: TreeEntry | 'root' | undefined, added: boolean) => {
    const start = out.length;
    const old = new Map((oldDir ? (oldChildren.get(dir) ?? []) : []).map((e) => [e.path, e]));
    for (const child of newChildren.get(dir) ?? []) {
      const previous = old.get(child.path);
      let childAdded = false;
      if (!previous) {
        out.push({ path: child.path, kind: 'A' });
        childAdded = true;
      } else if (differs(previous, child)) {
        out.push({ path: child.path, kind: 'C' });
        childAdded = true;
      }
      old.delete(child.path);
      if (child.type === 'dir') visit(child.path, previous?.type === 'dir' ? previous : undefined, childAdded);
    }
    for (const gone of old.values()) out.push({ path: gone.path, kind: 'D' });
    if (out.length > start && !added && dir !== '/') out.splice(start, 0, { path: dir, kind: 'C' });
  };
  visit('/', 'root', false);
  return out.sort((a, b) => Buffer.compare(Buffer.from(a.path), Buffer.from(b.path)));
}

const sizeOf = (e: TreeEntry) => (e.type === 'symlink' ? Buffer.byteLength(e.target ?? '') : (e.size ?? 0));

/**
 * The fields both sides must agree on (mtimes are each side's own clock); a hard-linked file's
 * identity as the first of the names that share it.
 */
export function comparable(entries: readonly TreeEntry[]): object[] {
  const first = new Map<string, string>();
  for (const e of entries) if (e.inode !== undefined && !first.has(e.inode)) first.set(e.inode, e.path);
  return entries.map(({ path, type, mode, uid, gid, size, content, target, nlink, inode }) => ({
    path,
    type,
    mode,
    uid,
    gid,
    size,
    content,
    target,
    nlink,
    linkedTo: inode === undefined || first.get(inode) === path ? undefined : first.get(inode),
  }));
}

async function bytes(stream: AsyncIterable<Buffer | Uint8Array>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.from(c));
  return Buffer.concat(chunks);
}
