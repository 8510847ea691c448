#!/usr/bin/env node
/**
 * Convert a Hugging Face llama checkpoint (safetensors + config.json + a byte-level BPE tokenizer.json)
 * to a GGUF that llama.cpp loads as architecture `llama`, with F32, F16 or BF16 weights.
 *
 *   node tools/compare-llamacpp/convert.mjs <model-dir> <out.gguf> [--outtype f32|f16|bf16]
 *
 * Weight types, as llama.cpp's converter does them: 1-D tensors (the norm weights) are always F32; the
 * 2-D weights take --outtype, by default the type they are stored in (F32, F16 or BF16 safetensors).
 * A 2-D weight already in the requested type is copied bit for bit; any other is widened to f32 (exact)
 * and rounded to the requested type, to nearest even (tools/tiny-models' converters, the rounding it
 * writes bf16/f16 checkpoints with). general.file_type says ALL_F32, MOSTLY_F16 or MOSTLY_BF16.
 *
 * What llama.cpp's own converter (convert_hf_to_gguf.py, class LlamaModel) does and this file repeats:
 * - tensor names: model.embed_tokens → token_embd, layers.N.self_attn.{q,k,v,o}_proj → blk.N.attn_{q,k,v,output},
 *   input_layernorm → attn_norm, post_attention_layernorm → ffn_norm, mlp.{gate,up,down}_proj →
 *   ffn_{gate,up,down}, model.norm → output_norm, lm_head → output;
 * - the q and k projections are permuted: HF llama rotates the two halves of each head
 *   (rotate_half: dimension i pairs with i + d/2), GGUF llama rotates adjacent pairs (2i with 2i+1),
 *   so within each head the output rows are interleaved: new row 2i = old row i, new row 2i+1 = old
 *   row d/2 + i (the converter's `reshape(n_head, 2, d/2, in).swapaxes(1, 2)`; k uses the kv head count);
 * - dims are written in ggml order: an [out, in] row-major matrix is dims [in, out], same bytes.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { FILE_TYPE, GGML, GGML_NAMES, meta, VALUE, writeGguf } from './gguf.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const core = await import(path.join(root, 'packages/core/dist/index.js'));

/** --outtype → the GGML type of the 2-D weights, the file type, and the safetensors dtype it matches. */
export const OUTTYPES = Object.freeze({
  f32: { ggml: GGML.F32, fileType: FILE_TYPE.ALL_F32, safetensors: 'F32' },
  f16: { ggml: GGML.F16, fileType: FILE_TYPE.MOSTLY_F16, safetensors: 'F16' },
  bf16: { ggml: GGML.BF16, fileType: FILE_TYPE.MOSTLY_BF16, safetensors: 'BF16' },
});
const outtypeOf = (safetensorsDtype) => Object.keys(OUTTYPES).find((k) => OUTTYPES[k].safetensors === safetensorsDtype);

let tinyModels;
/** f32 → f16 / bf16 bits, round to nearest even (whole arrays; tools/tiny-models' converters). */
async function halfConverters() {
  tinyModels ??= await import(path.join(root, 'tools/tiny-models/dist/index.js'));
  return { f16: tinyModels.f32ArrayToF16, bf16: tinyModels.f32ArrayToBf16 };
}

/** Token types of tokenizer.ggml.token_type. */
const TOKEN_TYPE = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 };

/**
 * Rows of a [heads × headDim, in] projection reordered from rotate-half pairs to adjacent pairs. `data`
 * is any typed array of one element per entry (Float32Array for F32, Uint16Array for the bits of F16 or
 * BF16): rows move whole, so the element type does not matter; the result has the same type.
 */
export function permuteRotaryRows(data, heads, inFeatures) {
  const rows = data.length / inFeatures;
  if (!Number.isInteger(rows) || rows % heads !== 0) throw new Error(`permute: ${rows} rows do not split into ${heads} heads`);
  const headDim = rows / heads;
  if (headDim % 2 !== 0) throw new Error(`permute: head dim ${headDim} is odd`);
  const half = headDim / 2;
  const out = new data.constructor(data.length);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < half; i++) {
      for (let j = 0; j < 2; j++) {
        const from = h * headDim + j * half + i;
        const to = h * headDim + 2 * i + j;
        out.set(data.subarray(from * inFeatures, (from + 1) * inFeatures), to * inFeatures);
      }
    }
  }
  return out;
}

function tokenizerMetadata(dir, config, vocabSize) {
  const tok = JSON.parse(readFileSync(path.join(dir, 'tokenizer.json'), 'utf8'));
  const model = tok.model ?? {};
  if (model.type !== 'BPE') throw new Error(`convert: tokenizer.json model is ${model.type}, only byte-level BPE is supported`);
  const pre = tok.pre_tokenizer;
  const byteLevel = pre?.type === 'ByteLevel' || (pre?.type === 'Sequence' && pre.pretokenizers?.some((p) => p.type === 'ByteLevel'));
  if (!byteLevel) throw new Error(`convert: tokenizer.json pre-tokenizer is ${pre?.type}, only ByteLevel is supported`);
  const tokens = new Array(vocabSize).fill(undefined);
  for (const [text, id] of Object.entries(model.vocab)) {
    if (id >= vocabSize) throw new Error(`convert: token ${JSON.stringify(text)} has id ${id} ≥ vocab ${vocabSize}`);
    tokens[id] = text;
  }
  const types = tokens.map(() => TOKEN_TYPE.NORMAL);
  for (const added of tok.added_tokens ?? []) {
    if (added.id >= vocabSize) continue;
    tokens[added.id] = added.content;
    types[added.id] = added.special ? TOKEN_TYPE.CONTROL : TOKEN_TYPE.USER_DEFINED;
  }
  // Ids the tokenizer does not use (the embedding can be larger than the vocabulary) get a placeholder.
  for (let i = 0; i < vocabSize; i++) {
    if (tokens[i] === undefined) {
      tokens[i] = `[PAD${i}]`;
      types[i] = TOKEN_TYPE.UNUSED;
    }
  }
  const merges = (model.merges ?? []).map((m) => (Array.isArray(m) ? m.join(' ') : m));
  let tokConfig = {};
  try {
    tokConfig = JSON.parse(readFileSync(path.join(dir, 'tokenizer_config.json'), 'utf8'));
  } catch {
    // optional
  }
  const entries = [
    meta.str('tokenizer.ggml.model', 'gpt2'),
    // The byte-level pre-tokenizer with GPT-2's split regex; llama.cpp names it "gpt-2".
    meta.str('tokenizer.ggml.pre', 'gpt-2'),
    meta.array('tokenizer.ggml.tokens', VALUE.STRING, tokens),
    meta.array('tokenizer.ggml.token_type', VALUE.INT32, types),
    meta.array('tokenizer.ggml.merges', VALUE.STRING, merges),
  ];
  const ids = { bos: config.bos_token_id, eos: config.eos_token_id, padding: config.pad_token_id };
  for (const [name, id] of Object.entries(ids)) if (Number.isInteger(id)) entries.push(meta.u32(`tokenizer.ggml.${name}_token_id`, id));
  if (typeof tokConfig.add_bos_token === 'boolean') entries.push(meta.bool('tokenizer.ggml.add_bos_token', tokConfig.add_bos_token));
  if (typeof tokConfig.add_eos_token === 'boolean') entries.push(meta.bool('tokenizer.ggml.add_eos_token', tokConfig.add_eos_token));
  return entries;
}

/**
 * Convert `dir` to `out`. `outtype`: f32, f16 or bf16 for the 2-D weights (default: as stored). Returns a
 * summary (tensor count, bytes, seconds, outtype, per-type tensor counts). `permuteQk: false` skips the
 * q/k permutation: a deliberately wrong file, to see that verify.mjs catches it.
 */
export async function convertLlamaToGguf(dir, out, { log = () => {}, permuteQk = true, outtype } = {}) {
  if (outtype !== undefined && !OUTTYPES[outtype]) throw new Error(`convert: --outtype must be ${Object.keys(OUTTYPES).join(', ')}, got ${outtype}`);
  const started = performance.now();
  const ckpt = await core.openCheckpoint(dir);
  try {
    const c = ckpt.config;
    if (c.model_type !== 'llama') throw new Error(`convert: model_type is ${c.model_type}, this converter handles llama only`);
    for (const key of ['rope_scaling']) if (c[key] != null) throw new Error(`convert: ${key} is set; this converter does not write it`);
    if (c.attention_bias || c.mlp_bias) throw new Error('convert: biases are not supported by this converter');
    const hidden = c.hidden_size;
    const heads = c.num_attention_heads;
    const kvHeads = c.num_key_value_heads ?? heads;
    const headDim = c.head_dim ?? hidden / heads;
    const layers = c.num_hidden_layers;
    const vocab = c.vocab_size;
    if (headDim * heads !== hidden) throw new Error(`convert: head_dim ${headDim} × ${heads} heads ≠ hidden ${hidden}; llama.cpp would need attention.key_length`);

    // [gguf name, hf name, permute heads or 0]
    const plan = [['token_embd.weight', 'model.embed_tokens.weight', 0]];
    for (let i = 0; i < layers; i++) {
      const p = `model.layers.${i}.`;
      plan.push(
        [`blk.${i}.attn_norm.weight`, `${p}input_layernorm.weight`, 0],
        [`blk.${i}.attn_q.weight`, `${p}self_attn.q_proj.weight`, heads],
        [`blk.${i}.attn_k.weight`, `${p}self_attn.k_proj.weight`, kvHeads],
        [`blk.${i}.attn_v.weight`, `${p}self_attn.v_proj.weight`, 0],
        [`blk.${i}.attn_output.weight`, `${p}self_attn.o_proj.weight`, 0],
        [`blk.${i}.ffn_norm.weight`, `${p}post_attention_layernorm.weight`, 0],
        [`blk.${i}.ffn_gate.weight`, `${p}mlp.gate_proj.weight`, 0],
        [`blk.${i}.ffn_up.weight`, `${p}mlp.up_proj.weight`, 0],
        [`blk.${i}.ffn_down.weight`, `${p}mlp.down_proj.weight`, 0],
      );
    }
    plan.push(['output_norm.weight', 'model.norm.weight', 0]);
    const tied = !ckpt.tensors.has('lm_head.weight');
    if (!tied) plan.push(['output.weight', 'lm_head.weight', 0]);
    // Tied embeddings: llama.cpp uses token_embd as the output when output.weight is absent.

    const used = new Set(plan.map(([, hf]) => hf));
    const unused = [...ckpt.tensors.keys()].filter((n) => !used.has(n) && !n.endsWith('rotary_emb.inv_freq'));
    if (unused.length > 0) throw new Error(`convert: tensors this converter does not map: ${unused.slice(0, 5).join(', ')}${unused.length > 5 ? ', ...' : ''}`);

    // The type of the 2-D weights: --outtype, or the one they are stored in.
    const infos = plan.map(([, hf]) => ckpt.tensor(hf));
    for (const info of infos) {
      if (info.shape.length > 2) throw new Error(`convert: ${info.name} has ${info.shape.length} dimensions; a llama has none above 2`);
      if (!['F32', 'F16', 'BF16'].includes(info.dtype)) throw new Error(`convert: ${info.name} is ${info.dtype}; this converter reads F32, F16 and BF16`);
    }
    const stored = [...new Set(infos.filter((i) => i.shape.length === 2).map((i) => i.dtype))];
    if (outtype === undefined) {
      if (stored.length !== 1) throw new Error(`convert: the 2-D weights are stored as ${stored.join(' and ')}; pass --outtype f32, f16 or bf16`);
      outtype = outtypeOf(stored[0]);
    }
    const target = OUTTYPES[outtype];
    const round = target.ggml === GGML.F32 ? undefined : (await halfConverters())[outtype];

    const metadata = [
      meta.str('general.architecture', 'llama'),
      meta.str('general.name', path.basename(path.resolve(dir))),
      meta.u32('general.file_type', target.fileType),
      meta.u32('llama.vocab_size', vocab),
      meta.u32('llama.context_length', c.max_position_embeddings),
      meta.u32('llama.embedding_length', hidden),
      meta.u32('llama.block_count', layers),
      meta.u32('llama.feed_forward_length', c.intermediate_size),
      meta.u32('llama.attention.head_count', heads),
      meta.u32('llama.attention.head_count_kv', kvHeads),
      meta.f32('llama.rope.freq_base', c.rope_theta ?? 10000),
      meta.u32('llama.rope.dimension_count', headDim),
      meta.f32('llama.attention.layer_norm_rms_epsilon', c.rms_norm_eps),
      ...tokenizerMetadata(dir, c, vocab),
    ];

    const counts = {};
    const tensors = plan.map(([name, hf, permuteHeads], k) => {
      const info = infos[k];
      // 1-D tensors (norm weights) stay F32, as llama.cpp's converter keeps them.
      const type = info.shape.length <= 1 ? GGML.F32 : target.ggml;
      counts[GGML_NAMES[type]] = (counts[GGML_NAMES[type]] ?? 0) + 1;
      const permute = (values) => (permuteHeads > 0 && permuteQk ? permuteRotaryRows(values, permuteHeads, info.shape[1]) : values);
      return {
        name,
        dims: [...info.shape].reverse(),
        type,
        data: () => {
          let values;
          if (GGML_NAMES[type] === info.dtype) {
            // Stored in the requested type: the bits as they are (F32 as floats, F16/BF16 as 16-bit words).
            const { bytes } = core.readSliceBytes(ckpt, info);
            values = type === GGML.F32 ? new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4) : new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2);
          } else {
            const { data } = core.readSlice(ckpt, info); // widened to f32, exactly
            values = type === GGML.F32 ? data : round(data);
          }
          const result = permute(values);
          return new Uint8Array(result.buffer, result.byteOffset, result.byteLength);
        },
      };
    });
    log(`writing ${tensors.length} tensors (${Object.entries(counts).map(([t, n]) => `${n} ${t}`).join(', ')}) and ${metadata.length} metadata entries to ${out}`);
    const written = writeGguf(out, { metadata, tensors });
    return { ...written, seconds: (performance.now() - started) / 1000, tied, outtype, stored: stored.join('+'), types: counts };
  } finally {
    ckpt.close();
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const usage = 'usage: node tools/compare-llamacpp/convert.mjs <model-dir> <out.gguf> [--outtype f32|f16|bf16]  (default: the type the 2-D weights are stored in; norms stay F32)';
  let parsed;
  try {
    parsed = parseArgs({ allowPositionals: true, options: { outtype: { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
  } catch (error) {
    console.error(`convert: ${error.message.split('\n')[0]}\n${usage}`);
    process.exit(2);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    console.log(usage);
    process.exit(0);
  }
  const [dir, out] = positionals;
  const outtype = values.outtype?.toLowerCase();
  if (!dir || !out || positionals.length > 2 || (outtype !== undefined && !OUTTYPES[outtype])) {
    console.error(usage);
    process.exit(2);
  }
  const r = await convertLlamaToGguf(dir, out, { outtype, log: (t) => console.error(`convert: ${t}`) });
  console.error(`convert: wrote ${out}: ${(r.bytes / 1e6).toFixed(1)} MB, ${r.tensors} tensors (2-D weights ${r.outtype.toUpperCase()} from ${r.stored}), ${r.metadata} metadata entries in ${r.seconds.toFixed(1)} s`);
}
