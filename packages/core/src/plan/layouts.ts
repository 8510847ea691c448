/**
 * Fused layouts as index maps: given a rank's heads, the rows of the fused tensor it gathers, in the
 * order its local tensor is assembled. Each map keeps the local tensor in the same layout as the
 * whole one (with fewer heads), so the engine runs the unsharded code on it. families.md §2 gives the
 * layouts; fused_shard_fixtures.json pins the expected ranges.
 */
import type { LayoutKind } from '../graph/index.js';
import { InternalError, PlanError } from '../errors/index.js';
import type { QkvRowOrder } from './types.js';
import { headsToFeatures, mergeRanges, offsetRange, type HeadAssignment, type HeadShare, type Range } from './split.js';

export interface FusedContext {
  /** Size of the fused dimension. */
  size: number;
  heads: HeadAssignment;
  name: string;
}

/** Width of one head inside a fused q/k/v tensor. */
export function fusedHeadWidth(kind: LayoutKind, size: number, heads: number, kvHeads: number): number {
  return kind === 'qkv-codegen' ? size / (3 * heads) : size / (heads + 2 * kvHeads);
}

/** Rows of rank `r` for a fused q/k/v tensor. */
export function fusedQkvRanges(kind: LayoutKind, ctx: FusedContext, share: HeadShare, rank: number, tp: number): Range[] {
  const { heads: nh, kvHeads: nkv } = ctx.heads;
  const hd = fusedHeadWidth(kind, ctx.size, nh, nkv);
  switch (kind) {
    case 'qkv-concat': {
      // [Q (nh·hd); K (nkv·hd); V (nkv·hd)] → [Q_r; K_r; V_r]
      const q = headsToFeatures(share.q, hd);
      const k = offsetRange(headsToFeatures(share.kv, hd), nh * hd);
      const v = offsetRange(headsToFeatures(share.kv, hd), (nh + nkv) * hd);
      return mergeRanges([q, k, v]);
    }
    case 'qkv-interleaved':
    case 'qkv-grouped': {
      // per kv group g: [q × (nh/nkv), k, v]; interleaved is the case nkv = nh
      const group = nh / nkv;
      const block = (group + 2) * hd;
      const out: Range[] = [];
      for (let g = share.kv[0]; g < share.kv[1]; g++) {
        const qs = Math.max(share.q[0], g * group) - g * group;
        const qe = Math.min(share.q[1], (g + 1) * group) - g * group;
        out.push([g * block + qs * hd, g * block + qe * hd], [g * block + group * hd, (g + 1) * block]);
      }
      return mergeRanges(out);
    }
    case 'qkv-codegen':
      return codegenRanges(ctx, rank, tp, hd);
    default:
      throw new InternalError(`layout ${kind} is not a fused q/k/v layout`);
  }
}

const CODEGEN_BLOCKS = 4;

/** Local mp blocks of codegen's qkv on a rank (4 when every block is split, 4/tp when whole blocks move). */
export function codegenLocalBlocks(heads: number, tp: number): number {
  return heads % (CODEGEN_BLOCKS * tp) === 0 ? CODEGEN_BLOCKS : CODEGEN_BLOCKS / tp;
}

/** Why codegen's fused qkv cannot be split over tp ranks. */
export function codegenProblem(heads: number, tp: number): string | undefined {
  if (heads % CODEGEN_BLOCKS !== 0) return `CodeGen's qkv_proj needs heads divisible by 4 (mp_num), found ${heads}`;
  if (heads % (CODEGEN_BLOCKS * tp) === 0 || CODEGEN_BLOCKS % tp === 0) return undefined;
  return `CodeGen's qkv_proj holds 4 blocks of [q; v; k]: tp must divide 4 or heads % (4·tp) must be 0 (heads = ${heads})`;
}

/**
 * CodeGen: 4 blocks, block b = [q; v; k] for heads b·nh/4 … When nh % (4·tp) = 0 (DeepSpeed's rule),
 * every block part is cut into tp slices and rank r takes mini-blocks (b, s) in block-major order, so
 * its local tensor is again 4 blocks [q; v; k]. Otherwise, when tp divides 4, rank r takes 4/tp whole
 * blocks. Either way rank r ends up with the contiguous heads [r·nh/tp, (r+1)·nh/tp).
 */
function codegenRanges(ctx: FusedContext, rank: number, tp: number, hd: number): Range[] {
  const nh = ctx.heads.heads;
  const problem = codegenProblem(nh, tp);
  if (problem !== undefined) throw new PlanError('indivisible', { weight: ctx.name, detail: problem });
  const perBlock = nh / CODEGEN_BLOCKS; // heads per block
  const partRows = perBlock * hd;
  const blockRows = 3 * partRows;
  const out: Range[] = [];
  if (nh % (CODEGEN_BLOCKS * tp) === 0) {
    const slice = perBlock / tp; // heads per mini-block
    for (let m = rank * CODEGEN_BLOCKS; m < (rank + 1) * CODEGEN_BLOCKS; m++) {
      const b = Math.floor(m / tp);
      const s = m % tp;
      for (let p = 0; p < 3; p++) out.push([b * blockRows + p * partRows + s * slice * hd, b * blockRows + p * partRows + (s + 1) * slice * hd]);
    }
  } else {
    const blocks = CODEGEN_BLOCKS / tp;
    out.push([rank * blocks * blockRows, (rank + 1) * blocks * blockRows]);
  }
  return mergeRanges(out);
}

/** [gate; up] halves: rank r takes its slice of each half. */
export function gateUpRanges(half: readonly Range[], halfSize: number): Range[] {
  return mergeRanges([...half, ...half.map((r) => offsetRange(r, halfSize))]);
}

/**
 * Yuan 2's shared-QK attention concatenates q and k outputs and re-splits them into nh chunks of
 * 2·hd, so rank r's contiguous q rows and k rows pair with value heads
 * {r·nh/(2tp) + j} ∪ {nh/2 + r·nh/(2tp) + j}, j < nh/(2tp) (DeepSpeed's shard_value_with_share_qk).
 */
export function yuanValueHeads(heads: number, tp: number, rank: number): Range[] {
  const per = heads / (2 * tp);
  return [
    [rank * per, (rank + 1) * per],
    [heads / 2 + rank * per, heads / 2 + (rank + 1) * per],
  ];
}

export function yuanProblem(heads: number, tp: number): string | undefined {
  return heads % (2 * tp) === 0 ? undefined : `Yuan's shared-QK attention needs heads % (2·tp) = 0 (heads = ${heads})`;
}

/**
 * Row order that turns a rank's fused q/k/v tensor (assembled in its native layout, as the plan lists
 * it) into [Q; K; V] with heads in order, so the engine splits every fused layout the same way.
 * `order[i]` is the native row that becomes row i.
 */
export function canonicalQkvOrder(kind: LayoutKind, qHeads: number, kvHeads: number, headWidth: number, codegenBlocks = 4): Int32Array {
  const rows = (qHeads + 2 * kvHeads) * headWidth;
  const order = new Int32Array(rows);
  const push = (() => {
    let at = 0;
    return (start: number, count: number) => {
      for (let i = 0; i < count; i++) order[at++] = start + i;
    };
  })();
  switch (kind) {
    case 'qkv-concat':
      push(0, rows);
      return order;
    case 'qkv-interleaved':
    case 'qkv-grouped': {
      // local groups: [q × (qHeads/kvHeads), k, v] per kv head
      const g = qHeads / kvHeads;
      const block = (g + 2) * headWidth;
      for (let h = 0; h < kvHeads; h++) push(h * block, g * headWidth);
      for (let h = 0; h < kvHeads; h++) push(h * block + g * headWidth, headWidth);
      for (let h = 0; h < kvHeads; h++) push(h * block + (g + 1) * headWidth, headWidth);
      return order;
    }
    case 'qkv-codegen': {
      // local blocks: [q; v; k], each part qHeads/blocks heads (codegen has no GQA)
      const part = (qHeads / codegenBlocks) * headWidth;
      for (let b = 0; b < codegenBlocks; b++) push(b * 3 * part, part); // q
      for (let b = 0; b < codegenBlocks; b++) push(b * 3 * part + 2 * part, part); // k
      for (let b = 0; b < codegenBlocks; b++) push(b * 3 * part + part, part); // v
      return order;
    }
    default:
      throw new InternalError(`layout ${kind} is not a fused q/k/v layout`);
  }
}

/**
 * The row order of one rank's fused q/k/v slice (`RankSlice.rowOrder`): its local query and kv heads
 * (all of them when the tensor is replicated, e.g. kept whole for a cross-head norm), the rows per
 * head, and CodeGen's local block count.
 */
export function qkvRowOrder(kind: LayoutKind, localRows: number, share: { q: readonly [number, number]; kv: readonly [number, number] } | undefined, all: { heads: number; kvHeads: number }, tp: number): QkvRowOrder {
  const qHeads = share === undefined ? all.heads : share.q[1] - share.q[0];
  const kvHeads = share === undefined ? all.kvHeads : share.kv[1] - share.kv[0];
  const headWidth = fusedHeadWidth(kind, localRows, qHeads, kvHeads);
  const codegenBlocks = kind === 'qkv-codegen' ? (share === undefined ? 4 : codegenLocalBlocks(all.heads, tp)) : 1;
  return { layout: kind, qHeads, kvHeads, headWidth, codegenBlocks };
}
