/**
 * Decode speed at batch 1 on a synthetic Llama in bf16 (by default the ~1B shape: hidden 2048, 16
 * layers, 32 heads, 8 kv heads, intermediate 8192, vocab 128256, tied embeddings; random weights,
 * written fast: the values do not matter to a timing), prompt 16 and 128 new tokens: tp's ms/token and the weight bandwidth it achieves, and the same model through PyTorch
 * + transformers `generate` (eager) in the same run.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { mkdirSync, writeFileSync } from 'node:fs';
import { initInference, writeSafetensors } from '@tp/core';

export const FULL = { hidden: 2048, layers: 16, heads: 32, kvHeads: 8, intermediate: 8192, vocab: 128256, maxPositions: 2048 };
/** --dry-run: the same layout, small enough for a CPU. */
export const SMALL = { hidden: 256, layers: 2, heads: 8, kvHeads: 2, intermediate: 512, vocab: 4096, maxPositions: 2048 };

/** Random bf16 values of magnitude 2^-7 to 2^-5 and random sign (the values do not matter to a timing). */
function randomBf16(n, seed) {
  const out = new Uint16Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = ((s >>> 16) & 0x8000) | (0x3c00 + ((s >>> 4) & 0x00ff));
  }
  return new Uint8Array(out.buffer);
}

const ones = (n) => new Uint8Array(new Uint16Array(n).fill(0x3f80).buffer);

/** A Llama checkpoint in bf16 with tied embeddings, as transformers writes one (config.json + model.safetensors). */
async function writeLlama(dir, d) {
  mkdirSync(dir, { recursive: true });
  const headDim = d.hidden / d.heads;
  const tensors = [{ name: 'model.embed_tokens.weight', shape: [d.vocab, d.hidden] }, { name: 'model.norm.weight', shape: [d.hidden], norm: true }];
  for (let l = 0; l < d.layers; l++) {
    const p = `model.layers.${l}`;
    tensors.push(
      { name: `${p}.input_layernorm.weight`, shape: [d.hidden], norm: true },
      { name: `${p}.post_attention_layernorm.weight`, shape: [d.hidden], norm: true },
      { name: `${p}.self_attn.q_proj.weight`, shape: [d.heads * headDim, d.hidden] },
      { name: `${p}.self_attn.k_proj.weight`, shape: [d.kvHeads * headDim, d.hidden] },
      { name: `${p}.self_attn.v_proj.weight`, shape: [d.kvHeads * headDim, d.hidden] },
      { name: `${p}.self_attn.o_proj.weight`, shape: [d.hidden, d.heads * headDim] },
      { name: `${p}.mlp.gate_proj.weight`, shape: [d.intermediate, d.hidden] },
      { name: `${p}.mlp.up_proj.weight`, shape: [d.intermediate, d.hidden] },
      { name: `${p}.mlp.down_proj.weight`, shape: [d.hidden, d.intermediate] },
    );
  }
  tensors.sort((a, b) => (a.name < b.name ? -1 : 1));
  let seed = 1;
  await writeSafetensors(
    path.join(dir, 'model.safetensors'),
    tensors.map((t) => {
      const n = t.shape.reduce((a, b) => a * b, 1);
      const s = seed++ * 2654435761;
      return { name: t.name, dtype: 'BF16', shape: t.shape, data: () => (t.norm ? ones(n) : randomBf16(n, s)) };
    }),
    { format: 'pt' },
  );
  const config = {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_size: d.hidden,
    intermediate_size: d.intermediate,
    num_hidden_layers: d.layers,
    num_attention_heads: d.heads,
    num_key_value_heads: d.kvHeads,
    head_dim: headDim,
    vocab_size: d.vocab,
    max_position_embeddings: d.maxPositions,
    rms_norm_eps: 1e-5,
    rope_theta: 500000.0,
    hidden_act: 'silu',
    attention_bias: false,
    mlp_bias: false,
    tie_word_embeddings: true,
    bos_token_id: 1,
    eos_token_id: 2,
    torch_dtype: 'bfloat16',
  };
  writeFileSync(path.join(dir, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
  return tensors.reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0);
}

/** The checkpoint folder for `dims`, written unless the same one is already there. */
export async function syntheticModel(dir, dims, log) {
  const stamp = path.join(dir, 'config.json');
  if (existsSync(stamp)) {
    const c = JSON.parse(readFileSync(stamp, 'utf8'));
    if (c.hidden_size === dims.hidden && c.num_hidden_layers === dims.layers && c.vocab_size === dims.vocab && c.intermediate_size === dims.intermediate) {
      log(`reusing ${dir}`);
      return { dir, bytes: weightBytes(dir) };
    }
  }
  const started = Date.now();
  const parameters = await writeLlama(dir, dims);
  const bytes = weightBytes(dir);
  log(`wrote ${dir}: ${(parameters / 1e9).toFixed(3)} B parameters, ${(bytes / 2 ** 30).toFixed(2)} GiB in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return { dir, bytes };
}

/** Bytes of the weights one decode step reads: every stored tensor (the tied embedding is the LM head). */
function weightBytes(dir) {
  const file = path.join(dir, 'model.safetensors');
  const buf = readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
  let bytes = 0;
  for (const [name, t] of Object.entries(header)) if (name !== '__metadata__') bytes += t.data_offsets[1] - t.data_offsets[0];
  return bytes;
}

export const PROMPT = Array.from({ length: 16 }, (_, i) => 1000 + ((i * 7919) % 3000));

/** ms per new token after the first (and the time to the first), greedy, never stopping early. */
export async function decodeTiming({ dir, backend, tpSize, newTokens, dtype = 'bf16', kvDtype = 'bf16', env = {} }) {
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  Object.assign(process.env, env);
  try {
    const session = await initInference(dir, { backend, tpSize, dtype, kvDtype });
    try {
      await session.generate([PROMPT], { maxNewTokens: 8, stopAtEos: false }); // warm up
      const times = [];
      const started = performance.now();
      await session.generate([PROMPT], { maxNewTokens: newTokens, stopAtEos: false, onToken: () => times.push(performance.now()) });
      const prefillMs = times[0] - started;
      const decodeMs = (times[times.length - 1] - times[0]) / Math.max(1, times.length - 1);
      return { prefillMs, decodeMs, tokens: times.length };
    } finally {
      await session.dispose();
    }
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

/**
 * A python that has torch and transformers: TP_PYTHON, the test host's venv, python3 on PATH; else
 * any python3 (torch_bench.py then reports what it lacks), else none.
 */
export function findPython() {
  const candidates = [process.env.TP_PYTHON, '/opt/torch/.venv/bin/python', 'python3'].filter(Boolean);
  let any;
  for (const p of candidates) {
    const r = spawnSync(p, ['-c', 'import torch, transformers'], { encoding: 'utf8', timeout: 60_000 });
    if (r.status === 0) return { python: p };
    if (r.error === undefined && any === undefined) any = p;
  }
  return any ? { python: any } : { python: undefined, why: `no python (tried ${candidates.join(', ')})` };
}

/** The same generation through transformers (eager attention, bf16, on the GPU): its JSON report. */
export function torchTiming({ python, dir, newTokens, dryRun }) {
  const script = fileURLToPath(new URL('../torch_bench.py', import.meta.url));
  const r = spawnSync(python, [script, dir, PROMPT.join(','), String(newTokens), ...(dryRun ? ['--dry-run'] : [])], { encoding: 'utf8', timeout: 300_000 });
  const line = r.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line);
  } catch {
    return { error: `${python} ${path.basename(script)} failed (exit ${r.status}): ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join(' | ')}` };
  }
}
