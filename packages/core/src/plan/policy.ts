/**
 * User policies override the analysis. Two forms are accepted:
 * - DeepSpeed's injection policy: `{ "<block>": ["o_proj", "down_proj"] }` — the named linears of the
 *   matching blocks are row-parallel (followed by an all-reduce) and every other linear in those
 *   blocks is column-parallel. `<block>` is a block path glob (`model.layers.*`) or a DeepSpeed class
 *   name, which cannot be checked against a checkpoint and so applies to every repeated block.
 * - Hugging Face `tp_plan`: `{ "layers.*.self_attn.q_proj": "colwise", ... }` — module paths relative
 *   to the base model, `*` for any one segment, each mapped to a style.
 * Either may be wrapped as `{ "tp_plan": {...} }` or `{ "injection_policy": {...} }`.
 */
import { PolicyError } from '../errors/index.js';
import type { ModelGraph, WeightNode } from '../graph/index.js';
import { genericName } from '../graph/index.js';

export type SplitKind = 'replicate' | 'column' | 'row' | 'vocab';

/** Hugging Face tensor-parallel styles (transformers 4.57 and 5.x) and what each means here. */
export const HF_STYLES: Readonly<Record<string, SplitKind>> = {
  colwise: 'column',
  local_colwise: 'column',
  colwise_rep: 'column',
  colwise_gather_output: 'column',
  packed_colwise: 'column',
  local_packed_colwise: 'column',
  rowwise: 'row',
  local_rowwise: 'row',
  rowwise_rep: 'row',
  rowwise_split_input: 'row',
  replicate: 'replicate',
  replicated: 'replicate',
  replicated_with_grad_allreduce: 'replicate',
  local: 'replicate',
  isolated: 'replicate',
  gather: 'replicate',
  sequence_parallel: 'replicate',
  ep_router: 'replicate',
  embedding_rowwise: 'vocab',
  vocab: 'vocab',
  vocab_parallel: 'vocab',
};

export interface PolicyRule {
  /** The entry as written by the user. */
  pattern: string;
  source: 'tp_plan' | 'deepspeed';
  split: SplitKind;
}

export interface Policy {
  tpPlan: Array<{ pattern: string; split: SplitKind }>;
  deepspeed: Array<{ block: string; rows: string[] }>;
}

export interface PolicyDecision {
  split: SplitKind;
  /** e.g. `policy tp_plan "layers.*.mlp.down_proj": rowwise` */
  reason: string;
  /** Which form decided it, and the entry (the block, for DeepSpeed). */
  source: 'tp_plan' | 'deepspeed';
  pattern: string;
}

/** Check the shape of a policy object (parsed JSON). */
export function parsePolicy(input: unknown): Policy {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new PolicyError('policy-invalid', { detail: 'a policy must be a JSON object: {"<block>": ["o_proj", ...]} or {"<module path>": "colwise", ...}' });
  }
  const object = input as Record<string, unknown>;
  const wrapped = object['tp_plan'] ?? object['base_model_tp_plan'] ?? object['injection_policy'] ?? object['policy'];
  const entries = Object.entries(typeof wrapped === 'object' && wrapped !== null && !Array.isArray(wrapped) ? (wrapped as Record<string, unknown>) : object);
  const policy: Policy = { tpPlan: [], deepspeed: [] };
  for (const [pattern, value] of entries) {
    if (typeof value === 'string' && Object.hasOwn(HF_STYLES, value)) {
      policy.tpPlan.push({ pattern, split: HF_STYLES[value]! });
    } else if (typeof value === 'string' && /^[a-z_]+$/.test(value) && /(wise|rep|gemm|experts|router|parallel|replicat)/.test(value)) {
      throw new PolicyError('policy-invalid', {
        pattern,
        detail: `style "${value}" is not supported. Accepted styles: ${Object.keys(HF_STYLES).join(', ')}`,
      });
    } else if (typeof value === 'string' || (Array.isArray(value) && value.every((v) => typeof v === 'string') && value.length > 0)) {
      policy.deepspeed.push({ block: pattern, rows: typeof value === 'string' ? [value] : (value as string[]) });
    } else {
      throw new PolicyError('policy-invalid', {
        pattern,
        detail: `the value must be a style string (e.g. "colwise") or a list of row-parallel linear names (e.g. ["o_proj", "down_proj"]), found ${JSON.stringify(value)}`,
      });
    }
  }
  if (policy.tpPlan.length === 0 && policy.deepspeed.length === 0) {
    throw new PolicyError('policy-invalid', { detail: 'the policy is empty' });
  }
  return policy;
}

const globToRegex = (glob: string) => glob.split('.').map((part) => (part === '*' ? '[^.]+' : part.replace(/[\\^$+?()[\]{}|]/g, '\\$&'))).join('\\.');

/** Linear weights a DeepSpeed policy re-decides: 2-D or stacked weights that the analysis splits. */
const LINEAR_ROLES = new Set(['attn.q', 'attn.k', 'attn.v', 'attn.qk', 'attn.qkv', 'attn.out', 'mlp.up', 'mlp.gate', 'mlp.gate_up', 'mlp.down', 'moe.expert.up', 'moe.expert.gate', 'moe.expert.gate_up', 'moe.expert.down']);

/** Decide, per tensor, what the policy says (absent = the analysis decides). */
export function applyPolicy(graph: ModelGraph, policy: Policy, warnings: string[]): Map<string, PolicyDecision> {
  const decisions = new Map<string, PolicyDecision>();
  const modulePath = (w: WeightNode) => (w.param === w.name ? w.name : w.name.slice(0, -(w.param.length + 1)));

  for (const entry of policy.deepspeed) {
    const blockRe = new RegExp(`^${globToRegex(entry.block.replace(/\.\*$/, ''))}$`);
    let blocks = graph.weights.filter((w) => w.block !== undefined && blockRe.test(w.block.list));
    if (blocks.length === 0 && !entry.block.includes('.')) {
      warnings.push(`policy block "${entry.block}" names a class, which a checkpoint cannot show; it is applied to every repeated block`);
      blocks = graph.weights.filter((w) => w.block !== undefined);
    }
    if (blocks.length === 0) {
      throw new PolicyError('policy-no-match', {
        pattern: entry.block,
        detail: 'matches no repeated block of this model.',
        closest: closest(entry.block, graph.blocks.map((b) => `${b.path}.*`)),
      });
    }
    for (const row of entry.rows) {
      const rowRe = new RegExp(`(^|\\.)${globToRegex(row)}$`);
      const hits = blocks.filter((w) => rowRe.test(modulePath(w).slice(w.block!.list.length + 1).replace(/^\d+\./, '')));
      if (hits.length === 0) {
        const names = [...new Set(blocks.filter((w) => LINEAR_ROLES.has(w.role)).map((w) => modulePath(w).slice(w.block!.list.length + 1).replace(/^\d+\./, '')))];
        throw new PolicyError('policy-no-match', { pattern: row, detail: `no linear in blocks "${entry.block}" is called that.`, closest: closest(row, names) });
      }
    }
    for (const w of blocks) {
      if (!LINEAR_ROLES.has(w.role) || w.shape.length < 2) continue;
      const relative = modulePath(w).slice(w.block!.list.length + 1).replace(/^\d+\./, '');
      const row = entry.rows.find((r) => new RegExp(`(^|\\.)${globToRegex(r)}$`).test(relative));
      decisions.set(w.name, {
        split: row ? 'row' : 'column',
        reason: `policy (DeepSpeed) "${entry.block}": ${row ? `row-parallel "${row}"` : 'other linears column-parallel'}`,
        source: 'deepspeed',
        pattern: entry.block,
      });
    }
  }

  for (const entry of policy.tpPlan) {
    const re = new RegExp(`(^|\\.)${globToRegex(entry.pattern)}$`);
    const hits = graph.weights.filter((w) => re.test(modulePath(w)) || re.test(w.name));
    if (hits.length === 0) {
      const modules = [...new Set(graph.weights.map((w) => genericName(modulePath(w))))];
      throw new PolicyError('policy-no-match', { pattern: entry.pattern, detail: 'matches no weight of this model.', closest: closest(entry.pattern, modules) });
    }
    for (const w of hits) decisions.set(w.name, { split: entry.split, reason: `policy (tp_plan) "${entry.pattern}": ${entry.split}`, source: 'tp_plan', pattern: entry.pattern });
  }
  return decisions;
}

/** The few names nearest to `wanted` by edit distance (ties broken by a shared suffix). */
export function closest(wanted: string, names: readonly string[], count = 3): string[] {
  const w = wanted.replace(/\d+/g, '*');
  const depth = w.split('.').length;
  // Compare with the whole name and with its last segments, so "o_projection" finds "self_attn.o_proj".
  const distance = (name: string) => Math.min(editDistance(w, name), editDistance(w, name.split('.').slice(-depth).join('.')));
  return [...new Set(names)]
    .map((name) => ({ name, d: distance(name) }))
    .sort((a, b) => a.d - b.d || a.name.localeCompare(b.name))
    .slice(0, count)
    .map((x) => x.name);
}

function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j]!;
      prev[j] = Math.min(up + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return prev[b.length]!;
}
