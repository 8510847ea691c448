/**
 * Rules for model types tp has no descriptor for, in the spirit of DeepSpeed's AutoTP: name keywords
 * decide the role, shapes confirm it. Each rule has a name that the plan records, so a user can see
 * why a weight was split the way it was. They also catch tensors a descriptor does not mention.
 */
import type { Role } from './roles.js';

export interface GenericRule {
  /** Recorded in the plan as `generic:<id>`. */
  id: string;
  role: Role;
  /** Tested against the module path (name without the parameter segment). */
  test: RegExp;
  /** Extra condition on the weight's shape (2-D weights unless said otherwise). */
  shape?: (shape: readonly number[], ctx: GenericContext) => boolean;
}

export interface GenericContext {
  hidden: number;
  vocab: number;
  experts: number | undefined;
  /** True when the tensor sits inside a repeated block. */
  inBlock: boolean;
}

const isMatrix = (s: readonly number[]) => s.length === 2;
const vocabRows = (s: readonly number[], c: GenericContext) => isMatrix(s) && s[0]! >= c.vocab && s[0]! < c.vocab + 1024;

export const GENERIC_RULES: readonly GenericRule[] = [
  { id: 'buffer', role: 'buffer', test: /(^|\.)(inv_freq|cos_cached|sin_cached|masked_bias)$|\.attn$|rotary_emb$/ },
  { id: 'router', role: 'moe.router', test: /(^|\.)(gate|router)$/, shape: (s, c) => isMatrix(s) && c.experts !== undefined && s[0] === c.experts },
  { id: 'expert-gate', role: 'moe.expert.gate', test: /experts\.\d+\.(gate_proj|w1)$/ },
  { id: 'expert-up', role: 'moe.expert.up', test: /experts\.\d+\.(up_proj|w3)$/ },
  { id: 'expert-down', role: 'moe.expert.down', test: /experts\.\d+\.(down_proj|w2)$/ },
  { id: 'fused-qkv', role: 'attn.qkv', test: /(^|\.)(qkv_proj|query_key_value|Wqkv|W_pack|c_attn|qkv)$/ },
  { id: 'q', role: 'attn.q', test: /(^|\.)(q_proj|query|q_lin|q|wq)$/, shape: isMatrix },
  { id: 'k', role: 'attn.k', test: /(^|\.)(k_proj|key|k_lin|k|wk)$/, shape: isMatrix },
  { id: 'v', role: 'attn.v', test: /(^|\.)(v_proj|value|v_lin|v|wv)$/, shape: isMatrix },
  {
    id: 'attn-out',
    role: 'attn.out',
    test: /(^|\.)(o_proj|out_proj|out_lin|wo_attn|o)$|(attn|attention|self_attention)\.(dense|c_proj|proj)$|attention\.output\.dense$/,
    shape: isMatrix,
  },
  { id: 'gate-up', role: 'mlp.gate_up', test: /(^|\.)gate_up_proj$/ },
  { id: 'mlp-gate', role: 'mlp.gate', test: /(^|\.)(gate_proj|w1|wi_0)$/, shape: (s, c) => isMatrix(s) && c.inBlock },
  { id: 'mlp-up', role: 'mlp.up', test: /(^|\.)(up_proj|w3|fc1|fc_in|c_fc|dense_h_to_4h|lin1|wi|wi_1)$|intermediate\.dense$/, shape: (s, c) => isMatrix(s) && c.inBlock },
  { id: 'mlp-down', role: 'mlp.down', test: /(^|\.)(down_proj|w2|fc2|fc_out|dense_4h_to_h|lin2|wo)$|mlp\.c_proj$|(^|\.)output\.dense$/, shape: (s, c) => isMatrix(s) && c.inBlock },
  { id: 'norm', role: 'norm', test: /(norm|ln|LayerNorm|layernorm)[^.]*$|(^|\.)ln_[^.]*$/ },
  { id: 'pos-embed', role: 'pos_embed', test: /(^|\.)(wpe|position_embeddings|embed_positions|positions_embed)$/ },
  { id: 'type-embed', role: 'type_embed', test: /(^|\.)token_type_embeddings$/ },
  { id: 'lm-head', role: 'lm_head', test: /(^|\.)(lm_head|embed_out|output_layer|output)$/, shape: (s, c) => !c.inBlock && vocabRows(s, c) },
  { id: 'embed', role: 'embed', test: /(^|\.)(embed_tokens|wte|word_embeddings|embed_in|tok_embeddings|tokens_embed|shared|embeddings)$/, shape: vocabRows },
];

export function matchGeneric(modulePath: string, shape: readonly number[], ctx: GenericContext): GenericRule | undefined {
  for (const rule of GENERIC_RULES) {
    if (!rule.test.test(modulePath)) continue;
    if (rule.shape !== undefined && !rule.shape(shape, ctx)) continue;
    return rule;
  }
  return undefined;
}
