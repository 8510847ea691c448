/**
 * `tp plan` as text: one row per weight pattern (layer numbers collapsed), the all-reduce points of
 * each block, and per-rank memory against the unsharded model.
 */
import type { TPPlan, TensorPlan } from '@tp/core';
import { formatBytes, formatCount, formatIndexRanges, renderTable } from './units.js';

interface Row {
  pattern: string;
  layers: number[];
  tensor: TensorPlan;
  shapes: string;
}

const shapeText = (s: readonly number[]) => `[${s.join(', ')}]`;

/** Per-rank local shapes, collapsed when equal: "[32, 64] ×4" or "[48, 64] [48, 64] [32, 64]". */
function rankShapes(t: TensorPlan): string {
  const shapes = t.ranks.map((r) => shapeText(r.shape));
  return shapes.every((s) => s === shapes[0]) ? `${shapes[0]}${t.ranks.length > 1 ? ` ×${t.ranks.length}` : ''}` : shapes.join(' ');
}

function splitText(t: TensorPlan): string {
  if (t.split === 'replicate') return 'replicate';
  return `${t.split} (dim ${t.dim})${t.layout ? ` ${t.layout}` : ''}`;
}

export function collapseRows(plan: TPPlan): Row[] {
  const rows = new Map<string, Row>();
  for (const t of plan.tensors) {
    const m = /^(.*?)\.(\d+)\.(.*)$/.exec(t.name);
    const pattern = m ? `${m[1]}.{i}.${m[3]!.replace(/\.\d+\./g, '.{e}.')}` : t.name;
    const layer = m ? Number(m[2]) : undefined;
    const shapes = rankShapes(t);
    const key = [pattern, t.role, t.split, t.dim, t.layout ?? '', shapes].join('|');
    const row = rows.get(key);
    if (row === undefined) rows.set(key, { pattern, layers: layer === undefined ? [] : [layer], tensor: t, shapes });
    else if (layer !== undefined) row.layers.push(layer);
  }
  return [...rows.values()];
}

/**
 * The matrices' storage dtypes (`TPPlan.storageDtypes`), as the table shows them: `BF16`, or
 * `BF16/F32` when mixed. Vectors (norm weights, biases) are always f32 and are not named.
 */
export function storageLabel(plan: TPPlan): string {
  return plan.storageDtypes.length === 0 ? plan.model.dtype : plan.storageDtypes.map((d) => d.toUpperCase()).join('/');
}

/** The checkpoint's dtype, and what the weights are held as when that differs: `BF16`, `BF16, held as F32`. */
function dtypeText(plan: TPPlan): string {
  const held = storageLabel(plan);
  return held === plan.model.dtype ? held : `${plan.model.dtype}, held as ${held}`;
}

export function renderPlan(plan: TPPlan, dir: string): string {
  const g = plan.geometry;
  const out: string[] = [];
  const params = plan.tensors.filter((t) => t.read).reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0);
  const heads = `heads ${g.heads}${g.kvHeads !== g.heads ? ` (kv ${g.kvHeads})` : ''}${g.headDim ? `, head dim ${g.headDim}` : ''}`;
  out.push(`${dir}`);
  out.push(
    `${plan.model.title} (${plan.model.modelType}) · ${plan.model.kind} · ${g.layers} layers · hidden ${g.hidden} · ${heads} · vocab ${g.vocab} · ${dtypeText(plan)} · ${formatCount(params)} parameters`,
  );
  out.push(`tensor parallel over ${plan.tpSize} rank${plan.tpSize === 1 ? '' : 's'}${plan.options.policy ? ' (with a user policy)' : ''}`);
  out.push('');

  const rows = collapseRows(plan).map((r) => [
    r.pattern,
    r.layers.length === 0 ? '' : formatIndexRanges(r.layers),
    r.tensor.role,
    splitText(r.tensor),
    r.shapes,
  ]);
  out.push(renderTable(['weight', 'layers', 'role', 'split', plan.tpSize === 1 ? 'shape' : 'per-rank shape'], rows));
  out.push('');

  if (plan.attention.length > 0) {
    for (const a of plan.attention) {
      const heads = ([s, e]: readonly [number, number]) => (e - s === 1 ? `${s}` : `${s}-${e - 1}`);
      const shares = a.ranks.map((r, i) => `r${i}: q ${heads(r.q)} kv ${heads(r.kv)}`).join(' · ');
      out.push(`attention${a.group === 'self' ? '' : ` (${a.group})`}: ${a.heads} heads, ${a.kvHeads} kv heads${a.kvReplicated ? ' (kv replicated: tp exceeds the kv heads)' : ''} — ${shares}`);
    }
  }
  if (plan.lmHead !== null) {
    const how =
      plan.lmHead.split === 'vocab'
        ? 'split by vocabulary, logits all-gathered'
        : plan.lmHead.split === 'row'
          ? 'split by hidden, logits all-reduced'
          : 'replicated';
    out.push(`LM head: ${plan.lmHead.weight}${plan.lmHead.tied ? ' (tied to the input embedding)' : ''} — ${how}`);
  }
  if (plan.tpSize > 1) {
    for (const ar of plan.allReduces) out.push(`collectives in ${ar.block}: ${ar.after.join(', ')}`);
  }
  out.push('');

  const totalKv = plan.totals.kvCacheBytesPerToken;
  const memoryRows = plan.ranks.map((r) => [
    `rank ${r.rank}`,
    formatBytes(r.bytesToRead),
    formatBytes(r.paramBytes),
    `${((100 * r.paramBytes) / plan.totals.paramBytes).toFixed(1)}%`,
    totalKv === 0 ? '-' : formatBytes(r.kvCacheBytesPerToken),
  ]);
  memoryRows.push(['unsharded', formatBytes(plan.totals.bytes), formatBytes(plan.totals.paramBytes), '100%', totalKv === 0 ? '-' : formatBytes(totalKv)]);
  const kvHeader = plan.options.kvDtype === 'f32' ? 'KV cache / token' : `KV cache / token (${plan.options.kvDtype.toUpperCase()})`;
  out.push(renderTable(['', 'reads from disk', `params (${storageLabel(plan)})`, 'of unsharded', kvHeader], memoryRows, [1, 2, 3, 4]));
  for (const note of plan.notes) out.push(`note: ${note}`);
  for (const warning of plan.warnings) out.push(`warning: ${warning}`);
  return out.join('\n');
}
