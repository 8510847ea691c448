/**
 * The module tree implied by tensor names, and its repeated blocks: a "block list" is a module whose
 * children are numbered (`model.layers.0`, `model.layers.1`...). The outermost numbered segment of a
 * name decides its block; numbers deeper down (experts, T5's sub-layers) stay inside that block.
 */
import { genericName } from './match.js';

export interface ModuleNode {
  readonly name: string;
  readonly children: Map<string, ModuleNode>;
  /** Full names of the tensors stored directly on this module. */
  readonly tensors: string[];
}

export interface BlockList {
  /** e.g. `model.layers` */
  readonly path: string;
  readonly count: number;
  readonly indices: readonly number[];
  /** Distinct child structures: 1 when every block holds the same tensors. */
  readonly variants: number;
}

export interface BlockRef {
  readonly list: string;
  readonly index: number;
  /** The name relative to the block, e.g. `self_attn.q_proj.weight`. */
  readonly relative: string;
}

export function buildModuleTree(names: readonly string[]): ModuleNode {
  const root: ModuleNode = { name: '', children: new Map(), tensors: [] };
  for (const name of names) {
    const parts = name.split('.');
    let node = root;
    for (let i = 0; i < parts.length - 1; i++) {
      const part = parts[i]!;
      let child = node.children.get(part);
      if (child === undefined) {
        child = { name: parts.slice(0, i + 1).join('.'), children: new Map(), tensors: [] };
        node.children.set(part, child);
      }
      node = child;
    }
    node.tensors.push(name);
  }
  return root;
}

/** Where a name sits: in which block list, which block, and its name inside the block. */
export function blockOf(name: string): BlockRef | undefined {
  const parts = name.split('.');
  // The last segment is the parameter itself; a number there (reformer's `weights.0`) is not a block.
  for (let i = 0; i < parts.length - 1; i++) {
    if (/^\d+$/.test(parts[i]!)) {
      if (i === 0) return undefined;
      return { list: parts.slice(0, i).join('.'), index: Number(parts[i]), relative: parts.slice(i + 1).join('.') };
    }
  }
  return undefined;
}

export function findBlockLists(names: readonly string[]): BlockList[] {
  const lists = new Map<string, Map<number, string[]>>();
  for (const name of names) {
    const ref = blockOf(name);
    if (ref === undefined) continue;
    let blocks = lists.get(ref.list);
    if (blocks === undefined) lists.set(ref.list, (blocks = new Map()));
    let members = blocks.get(ref.index);
    if (members === undefined) blocks.set(ref.index, (members = []));
    members.push(genericName(ref.relative));
  }
  return [...lists.entries()]
    .map(([path, blocks]) => {
      const indices = [...blocks.keys()].sort((a, b) => a - b);
      const structures = new Set([...blocks.values()].map((m) => [...new Set(m)].sort().join('|')));
      return { path, count: indices.length, indices, variants: structures.size };
    })
    .sort((a, b) => b.count - a.count || a.path.localeCompare(b.path));
}
