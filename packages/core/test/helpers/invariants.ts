/**
 * Invariants every plan must satisfy, checked from the plan object alone (as a consumer of the JSON
 * would): split tensors covered exactly once (kv heads shared by several ranks excepted), replicated
 * tensors whole on every rank, row-parallel inputs equal to their column-parallel producers' outputs,
 * and no head ever cut.
 */
import type { TPPlan, TensorPlan } from '../../src/index.js';

export function planViolations(plan: TPPlan): string[] {
  const problems: string[] = [];
  const kvShared = new Set(plan.attention.filter((a) => a.kvReplicated).map((a) => a.group));
  for (const t of plan.tensors) {
    if (t.ranks.length !== plan.tpSize) problems.push(`${t.name}: ${t.ranks.length} rank entries for tp ${plan.tpSize}`);
    const size = t.shape.length === 0 ? 1 : t.shape[t.dim]!;
    for (const [r, slice] of t.ranks.entries()) {
      if (slice.ranges.length === 0) problems.push(`${t.name}: rank ${r} is empty`);
      for (const [s, e] of slice.ranges) if (!(s >= 0 && s < e && e <= size)) problems.push(`${t.name}: rank ${r} range [${s}, ${e}) outside [0, ${size})`);
    }
    if (t.split === 'replicate') {
      for (const [r, slice] of t.ranks.entries()) {
        if (JSON.stringify(slice.ranges) !== JSON.stringify([[0, size]])) problems.push(`${t.name}: replicated but rank ${r} holds ${JSON.stringify(slice.ranges)}`);
      }
      continue;
    }
    const cover = new Array<number>(size).fill(0);
    for (const slice of t.ranks) for (const [s, e] of slice.ranges) for (let i = s; i < e; i++) cover[i]!++;
    const sharesKv = kvShared.size > 0 && (t.role === 'attn.k' || t.role === 'attn.v' || t.role === 'attn.qkv');
    if (cover.some((c) => c === 0)) problems.push(`${t.name}: some indices belong to no rank`);
    if (!sharesKv && cover.some((c) => c > 1)) problems.push(`${t.name}: some indices belong to more than one rank`);
  }
  problems.push(...pairViolations(plan));
  return problems;
}

const blockOf = (name: string) => /^(.*?\.\d+)\./.exec(name)?.[1] ?? '';

/** Rank r's feature ranges of `t` as a canonical string (touching ranges merged). */
function ranksText(t: TensorPlan, r: number, scale = 1): string {
  const merged: Array<[number, number]> = [];
  for (const [s, e] of t.ranks[r]!.ranges) {
    const last = merged[merged.length - 1];
    if (last && last[1] === s / scale) last[1] = e / scale;
    else merged.push([s / scale, e / scale]);
  }
  return JSON.stringify(merged);
}

/** How many leading dotted segments two names share. */
function sharedSegments(a: string, b: string): number {
  const x = a.split('.');
  const y = b.split('.');
  let n = 0;
  while (n < x.length && n < y.length && x[n] === y[n]) n++;
  return n;
}

/** Within a block: mlp.up/gate output ranges = mlp.down input ranges; attn.q heads = attn.out heads. */
function pairViolations(plan: TPPlan): string[] {
  const problems: string[] = [];
  const weights = plan.tensors.filter((t) => t.name.endsWith('weight') && t.shape.length >= 2);
  const byBlock = new Map<string, TensorPlan[]>();
  for (const t of weights) {
    const list = byBlock.get(blockOf(t.name)) ?? [];
    list.push(t);
    byBlock.set(blockOf(t.name), list);
  }
  for (const list of byBlock.values()) {
    for (const [producerRole, consumerRole] of [
      ['mlp.up', 'mlp.down'],
      ['mlp.gate', 'mlp.down'],
    ] as const) {
      const downs = list.filter((t) => t.role === consumerRole && t.split === 'row');
      for (const down of downs) {
        const prefix = down.name.slice(0, down.name.lastIndexOf('.', down.name.lastIndexOf('.') - 1));
        for (const up of list.filter((t) => t.role === producerRole && t.name.startsWith(prefix.slice(0, prefix.lastIndexOf('.') + 1)))) {
          for (let r = 0; r < plan.tpSize; r++) {
            if (ranksText(up, r) !== ranksText(down, r)) problems.push(`${down.name} rank ${r} input ${ranksText(down, r)} ≠ ${up.name} output ${ranksText(up, r)}`);
          }
        }
      }
    }
    for (const out of list.filter((t) => t.role === 'attn.out' && t.split === 'row')) {
      const a = plan.attention[0];
      if (a === undefined) continue;
      // Its own attention's queries: those sharing the most leading name segments with it (one block,
      // or the top level, may hold several attentions: Perceiver's encoder and decoder cross-attention).
      // Their widths may differ (query/key vs value heads), so ranges are compared per head.
      const queries = list.filter((t) => t.role === 'attn.q' && t.split === 'column');
      const closeness = queries.map((q) => sharedSegments(q.name, out.name));
      const best = Math.max(...closeness);
      for (const q of queries.filter((_, i) => closeness[i] === best)) {
        const scale = q.shape[q.dim]! / out.shape[out.dim]!;
        for (let r = 0; r < plan.tpSize; r++) {
          if (ranksText(q, r, scale) !== ranksText(out, r)) problems.push(`${out.name} rank ${r} input ${ranksText(out, r)} ≠ ${q.name} output ${ranksText(q, r, scale)} (scaled by ${scale})`);
        }
      }
    }
  }
  // Heads are never cut: every range boundary of a head-split tensor falls on a head boundary.
  for (const t of plan.tensors) {
    if (t.split === 'replicate' || !t.role.startsWith('attn.') || t.layout !== undefined) continue;
    const group = plan.attention.find((a) => a.heads > 0);
    if (group === undefined) continue;
    const heads = t.role === 'attn.k' || t.role === 'attn.v' ? group.kvHeads : group.heads;
    const size = t.shape[t.dim]!;
    if (size % heads !== 0) continue; // another attention group (e.g. perceiver cross-attention)
    const width = size / heads;
    for (const slice of t.ranks) for (const [s, e] of slice.ranges) if (s % width !== 0 || e % width !== 0) problems.push(`${t.name}: range [${s}, ${e}) cuts a head of width ${width}`);
  }
  return problems;
}
