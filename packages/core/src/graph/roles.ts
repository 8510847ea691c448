/**
 * The role of every weight. The planner decides splits from roles alone, so everything the planner
 * needs to know about a family is captured by giving each tensor one of these.
 */
export const ROLES = [
  // attention
  'attn.q', // query projection (column, by query heads)
  'attn.k', // key projection (column, by kv heads)
  'attn.v', // value projection (column, by kv heads)
  'attn.qk', // shared query-key projection (reformer LSH; column, by heads)
  'attn.qkv', // fused q/k/v (column, layout-specific index map)
  'attn.out', // output projection (row, by query heads; all-reduce after)
  'attn.head_param', // per-head parameter without a projection (deberta q_bias, xlnet r_w_bias): split by heads
  'attn.head_norm', // norm over one head's features (qwen3 q_norm): replicated
  'attn.cross_head_norm', // norm over all heads' features (mpt qk_ln): forces the q/k producer whole
  'rel_bias', // per-head relative-position table (t5): split by heads
  // mlp
  'mlp.up',
  'mlp.gate',
  'mlp.gate_up', // fused [gate; up]
  'mlp.down',
  // mixture of experts
  'moe.router',
  'moe.shared_gate',
  'moe.expert.up',
  'moe.expert.gate',
  'moe.expert.gate_up',
  'moe.expert.down',
  // embeddings and heads
  'embed',
  'pos_embed',
  'type_embed',
  'norm',
  'lm_head', // the output projection to the vocabulary (and its bias)
  'vocab_bias', // a vocabulary-sized bias that follows lm_head (final_logits_bias, cls.predictions.bias)
  'other', // anything else the model uses: replicated
  'buffer', // stored but recomputed at run time (rotary inv_freq, causal masks): replicated, never read
] as const;

export type Role = (typeof ROLES)[number];

export type AttentionRole = Extract<Role, `attn.${string}` | 'rel_bias'>;

export function isAttentionRole(role: Role): role is AttentionRole {
  return role.startsWith('attn.') || role === 'rel_bias';
}

export function isMlpRole(role: Role): boolean {
  return role.startsWith('mlp.') || role.startsWith('moe.expert.');
}
