#!/usr/bin/env node
/**
 * A quick check of the converter's weight types, without llama.cpp (a few seconds):
 *
 *   node tools/compare-llamacpp/convert-check.mjs
 *
 * Writes one small llama (tools/tiny-models, GQA, untied) in f32, bf16 and f16 into a temporary folder
 * and converts every checkpoint to every --outtype (and to the default, "as stored"). For each GGUF:
 * - general.file_type and every tensor's type: 1-D tensors F32, 2-D tensors the requested type;
 * - every tensor's bytes equal the checkpoint's values, widened to f32 and rounded to the requested type
 *   by an independent scalar rounding (@tp/core's f32ToBf16Bits / f32ToF16Bits), with q and k permuted
 *   (row 2i of a head = HF row i, row 2i+1 = HF row d/2 + i) — so the permutation on 2-byte elements
 *   is checked against the same index rule as on 4-byte ones;
 * - the f32 checkpoint converted to bf16 (f16) has the same 2-D tensors, byte for byte, as the bf16
 *   (f16) checkpoint converted as stored, whose norms are the f32 norms rounded: "the same model" in
 *   every type.
 * Exits 1 on the first difference.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { coreDist, root } from './common.mjs';
import { convertLlamaToGguf } from './convert.mjs';
import { FILE_TYPE, GGML, readGgufHeader, readGgufTensorBytes } from './gguf.mjs';

const core = await import(coreDist);
const { writeTinyModel } = await import(path.join(root, 'tools', 'tiny-models', 'dist', 'index.js'));

const tmp = mkdtempSync(path.join(os.tmpdir(), 'tp-convert-check-'));
const failures = [];
const fail = (text) => {
  failures.push(text);
  console.error(`convert-check: FAIL ${text}`);
};
const options = { family: 'llama', hidden: 64, layers: 2, heads: 4, kvHeads: 2, intermediate: 96, vocab: 320, maxPositions: 64, tie: false, seed: 7 };
const expectedType = { f32: GGML.F32, f16: GGML.F16, bf16: GGML.BF16 };
const expectedFileType = { f32: FILE_TYPE.ALL_F32, f16: FILE_TYPE.MOSTLY_F16, bf16: FILE_TYPE.MOSTLY_BF16 };

/** The expected bytes of one tensor: HF values (f32) → permuted rows → rounded element by element. */
function expectedBytes(values, shape, permuteHeads, type) {
  let rows = values;
  if (permuteHeads > 0) {
    const inF = shape[1];
    const headDim = shape[0] / permuteHeads;
    const half = headDim / 2;
    rows = new Float32Array(values.length);
    for (let r = 0; r < shape[0]; r++) {
      const h = Math.floor(r / headDim);
      const within = r % headDim;
      // GGUF row `within` = 2i + j takes HF row j·(d/2) + i.
      const from = h * headDim + (within % 2) * half + Math.floor(within / 2);
      rows.set(values.subarray(from * inF, (from + 1) * inF), r * inF);
    }
  }
  if (type === GGML.F32) return new Uint8Array(rows.buffer);
  const bits = new Uint16Array(rows.length);
  for (let i = 0; i < rows.length; i++) bits[i] = type === GGML.BF16 ? core.f32ToBf16Bits(rows[i]) : core.f32ToF16Bits(rows[i]);
  return new Uint8Array(bits.buffer);
}

const sameBytes = (a, b) => a.length === b.length && Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.length), Buffer.from(b.buffer, b.byteOffset, b.length)) === 0;

try {
  for (const stored of ['f32', 'bf16', 'f16']) await writeTinyModel(path.join(tmp, stored), { ...options, dtype: stored });
  const files = {};
  for (const stored of ['f32', 'bf16', 'f16']) {
    const dir = path.join(tmp, stored);
    const config = JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8'));
    const ckpt = await core.openCheckpoint(dir);
    try {
      for (const outtype of [undefined, 'f32', 'bf16', 'f16']) {
        const want = outtype ?? stored;
        const file = path.join(tmp, `${stored}-to-${outtype ?? 'stored'}.gguf`);
        const r = await convertLlamaToGguf(dir, file, { outtype });
        files[`${stored}->${outtype ?? 'stored'}`] = file;
        const header = readGgufHeader(file);
        if (r.outtype !== want) fail(`${stored} → ${outtype ?? 'as stored'}: converter chose ${r.outtype}, expected ${want}`);
        if (header.metadata['general.file_type'] !== expectedFileType[want]) fail(`${stored} → ${want}: general.file_type ${header.metadata['general.file_type']}`);
        const hfName = (g) =>
          g === 'token_embd.weight' ? 'model.embed_tokens.weight' : g === 'output.weight' ? 'lm_head.weight' : g === 'output_norm.weight' ? 'model.norm.weight'
            : g.replace(/^blk\.(\d+)\./, 'model.layers.$1.').replace('attn_norm', 'input_layernorm').replace('ffn_norm', 'post_attention_layernorm')
              .replace(/attn_([qkv])\./, 'self_attn.$1_proj.').replace('attn_output', 'self_attn.o_proj').replace(/ffn_(gate|up|down)/, 'mlp.$1_proj');
        let checked = 0;
        for (const t of header.tensors) {
          const info = ckpt.tensor(hfName(t.name));
          const type = info.shape.length <= 1 ? GGML.F32 : expectedType[want];
          if (t.type !== type) fail(`${stored} → ${want}: ${t.name} is ${t.typeName}`);
          const permuteHeads = /attn_q\./.test(t.name) ? config.num_attention_heads : /attn_k\./.test(t.name) ? config.num_key_value_heads : 0;
          const expected = expectedBytes(core.readSlice(ckpt, info).data, info.shape, permuteHeads, type);
          if (!sameBytes(readGgufTensorBytes(file, header, t.name), expected)) fail(`${stored} → ${want}: ${t.name} bytes differ`);
          checked++;
        }
        console.error(`convert-check: ${stored} checkpoint → ${outtype ?? `as stored (${want})`}: ${checked} tensors, types and bytes as expected`);
      }
    } finally {
      ckpt.close();
    }
  }
  // One model in three types: rounding the f32 checkpoint's 2-D weights gives the half-precision
  // checkpoints' files. (Their F32 norm weights are the bf16/f16-rounded values tiny-models stored, so
  // those equal the f32 checkpoint's norms rounded to the half type and widened back.)
  for (const half of ['bf16', 'f16']) {
    const fa = files[`f32->${half}`];
    const fb = files[`${half}->stored`];
    const ha = readGgufHeader(fa);
    const hb = readGgufHeader(fb);
    let same2d = 0;
    let rounded1d = 0;
    for (const t of ha.tensors) {
      const a = readGgufTensorBytes(fa, ha, t.name);
      const b = readGgufTensorBytes(fb, hb, t.name);
      if (t.dims.length >= 2) {
        if (sameBytes(a, b)) same2d++;
        else fail(`${t.name}: f32 checkpoint → ${half} differs from the ${half} checkpoint as stored`);
      } else {
        const f = new Float32Array(a.buffer.slice(a.byteOffset, a.byteOffset + a.length));
        const bits = Uint16Array.from(f, (v) => (half === 'bf16' ? core.f32ToBf16Bits(v) : core.f32ToF16Bits(v)));
        const widened = half === 'bf16' ? core.bf16ToF32(bits) : core.f16ToF32(bits);
        if (sameBytes(new Uint8Array(widened.buffer), b)) rounded1d++;
        else fail(`${t.name}: the ${half} checkpoint's norm is not the f32 one rounded to ${half}`);
      }
    }
    console.error(`convert-check: f32 checkpoint → ${half}: ${same2d} 2-D tensors identical to the ${half} checkpoint's; its ${rounded1d} norms are the f32 norms rounded to ${half}`);
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
console.log(failures.length === 0 ? 'convert-check: ok' : `convert-check: ${failures.length} FAILED`);
process.exitCode = failures.length === 0 ? 0 : 1;
