import { writeTinyModel } from '../dist/index.js';
import { openCheckpoint } from '@tp/core';
import { readFileSync, readdirSync } from 'node:fs';
const first = (c, ...keys) => { for (const k of keys) if (c[k] !== undefined && c[k] !== null) return c[k]; return undefined; };
const folders = ['llama','mistral','qwen2','qwen3','gemma','phi3','mixtral','qwen2_moe','gpt_neox','opt','bloom','falcon','falcon_new_arch','gptj','gpt_neo','gpt2','openai-gpt','gpt_bigcode','mpt','phi','codegen','xglm'];
for (const folder of folders) {
  const g = `/work/shared/golden/${folder}`;
  const c = JSON.parse(readFileSync(`${g}/config.json`, 'utf8'));
  const family = c.model_type;
  const opts = {
    family,
    hidden: first(c, 'hidden_size', 'n_embd', 'd_model'),
    layers: first(c, 'num_hidden_layers', 'n_layer', 'num_layers', 'n_layers'),
    heads: first(c, 'num_attention_heads', 'n_head', 'num_heads', 'n_heads', 'attention_heads'),
    kvHeads: family === 'falcon' ? (c.new_decoder_architecture ? c.num_kv_heads : undefined) : first(c, 'num_key_value_heads'),
    headDim: first(c, 'head_dim'),
    intermediate: family === 'mpt' ? undefined : first(c, 'intermediate_size', 'n_inner', 'ffn_dim', 'ffn_hidden_size'),
    vocab: c.vocab_size,
    maxPositions: first(c, 'max_position_embeddings', 'n_positions', 'max_seq_len'),
    experts: first(c, 'num_local_experts', 'num_experts'),
    expertsPerToken: first(c, 'num_experts_per_tok'),
    variant: family === 'falcon' ? (c.new_decoder_architecture ? 'new_arch' : c.multi_query ? 'multi_query' : 'alibi_mha') : family === 'gpt_bigcode' ? (c.multi_query ? 'mqa' : 'mha') : undefined,
    tie: c.tie_word_embeddings,
  };
  const dir = `/tmp/tm-golden/${folder}`;
  await writeTinyModel(dir, opts);
  const a = await openCheckpoint(dir), b = await openCheckpoint(g);
  const sig = (ck) => [...ck.tensors.values()].map((t) => `${t.name} ${t.shape.join('x')}`).sort();
  const sa = sig(a), sb = sig(b);
  const missing = sb.filter((x) => !sa.includes(x)), extra = sa.filter((x) => !sb.includes(x));
  const ca = readFileSync(`${dir}/config.json`, 'utf8'), cb = readFileSync(`${g}/config.json`, 'utf8');
  const ga = readFileSync(`${dir}/generation_config.json`, 'utf8'), gb = readFileSync(`${g}/generation_config.json`, 'utf8');
  console.log(folder, 'tensors', sa.length, sb.length, 'missing', missing, 'extra', extra, 'config', ca === cb ? 'IDENTICAL' : 'DIFF', 'gen', ga === gb ? 'IDENTICAL' : 'DIFF');
  if (ca !== cb) { const la = ca.split('\n'), lb = cb.split('\n'); for (let i = 0; i < Math.max(la.length, lb.length); i++) if (la[i] !== lb[i]) { console.log('   ours:', la[i], '| golden:', lb[i]); } }
  // header byte comparison
  const hb = (f) => { const buf = readFileSync(f); const n = Number(buf.readBigUInt64LE(0)); return buf.subarray(0, 8 + n).toString('latin1'); };
  console.log('   header identical:', hb(`${dir}/model.safetensors`) === hb(`${g}/model.safetensors`));
}
