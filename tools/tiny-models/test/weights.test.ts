/**
 * Weight values: deterministic from the seed and the tensor's name, distributed as documented,
 * identical whether sharded or not, and rounded correctly to f16 / bf16.
 */
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { analyzeModel, f32ToBf16Bits, f32ToF16Bits, planTensorParallel, readSlice, readSliceBytes } from '@tp/core';
import { describe, expect, it } from 'vitest';
import { PRESETS, assignShards, f32ArrayToBf16, f32ArrayToF16, fillNormal, tensorSeed, writeTinyModel } from '../src/index.js';
import { stats, useTempDirs, withCheckpoint } from './helpers.js';

const tempDir = useTempDirs();

async function weightBytes(dir: string): Promise<Buffer> {
  return readFile(path.join(dir, 'model.safetensors'));
}

describe('determinism', () => {
  it('the same seed gives byte-identical files; another seed changes every tensor', async () => {
    const options = { family: 'llama', seed: 7, vocab: 320 } as const;
    const a = await tempDir();
    const b = await tempDir();
    const c = await tempDir();
    await writeTinyModel(a, options);
    await writeTinyModel(b, options);
    await writeTinyModel(c, { ...options, seed: 8 });
    for (const file of await readdir(a)) {
      expect((await readFile(path.join(a, file))).equals(await readFile(path.join(b, file))), file).toBe(true);
    }
    expect((await weightBytes(a)).equals(await weightBytes(c))).toBe(false);
    // the header is the same, so the change is in the values: every tensor differs
    await withCheckpoint(a, async (ca) =>
      withCheckpoint(c, (cc) => {
        for (const name of ca.tensors.keys()) {
          expect(readSliceBytes(ca, name).bytes, name).not.toEqual(readSliceBytes(cc, name).bytes);
        }
      }),
    );
  });

  it('a tensor depends only on the seed and its name, not on the rest of the model', async () => {
    const two = await tempDir();
    const three = await tempDir();
    await writeTinyModel(two, { family: 'qwen2', layers: 2, seed: 3 });
    await writeTinyModel(three, { family: 'qwen2', layers: 3, seed: 3 });
    await withCheckpoint(two, async (a) =>
      withCheckpoint(three, (b) => {
        expect(b.tensors.size).toBeGreaterThan(a.tensors.size);
        for (const name of ['model.layers.1.mlp.down_proj.weight', 'model.embed_tokens.weight', 'model.layers.0.self_attn.q_proj.bias']) {
          expect(readSliceBytes(a, name).bytes).toEqual(readSliceBytes(b, name).bytes);
        }
      }),
    );
  });

  it('seeds above 2^32 are distinct streams', () => {
    expect(tensorSeed(1, 'w')).not.toBe(tensorSeed(1 + 2 ** 32, 'w'));
    expect(tensorSeed(0, 'a.weight')).not.toBe(tensorSeed(0, 'b.weight'));
    expect(tensorSeed(5, 'x')).toBe(tensorSeed(5, 'x'));
  });
});

describe('distributions', () => {
  it('linear N(0, 1/sqrt(fan_in)), embeddings N(0, 1), norms 1 + 0.1·N, biases 0.1·N', async () => {
    const dir = await tempDir();
    await writeTinyModel(dir, { family: 'qwen2', hidden: 128, intermediate: 512, vocab: 512 });
    await withCheckpoint(dir, (ckpt) => {
      // four standard errors of the sample mean and standard deviation
      const check = (name: string, mean: number, std: number) => {
        const data = readSlice(ckpt, name).data;
        const s = stats(data);
        expect(Math.abs(s.mean - mean), `${name} mean ${s.mean}`).toBeLessThan((4 * std) / Math.sqrt(data.length));
        expect(Math.abs(s.std / std - 1), `${name} std ${s.std}`).toBeLessThan(4 / Math.sqrt(2 * data.length));
      };
      check('model.layers.0.mlp.gate_proj.weight', 0, 1 / Math.sqrt(128));
      check('model.layers.0.mlp.down_proj.weight', 0, 1 / Math.sqrt(512));
      check('model.embed_tokens.weight', 0, 1);
      check('model.layers.1.input_layernorm.weight', 1, 0.1);
      check('model.layers.1.self_attn.q_proj.bias', 0, 0.1);
    });
  });

  it('gemma: norms around 0 (it computes x·(1 + w)) and embeddings with std 1/sqrt(hidden)', async () => {
    const dir = await tempDir();
    await writeTinyModel(dir, { family: 'gemma', hidden: 256, vocab: 512 });
    await withCheckpoint(dir, (ckpt) => {
      const norm = stats(readSlice(ckpt, 'model.norm.weight').data);
      expect(Math.abs(norm.mean)).toBeLessThan(0.03);
      const embed = stats(readSlice(ckpt, 'model.embed_tokens.weight').data);
      expect(Math.abs(embed.std * 16 - 1)).toBeLessThan(0.03);
    });
  });

  it('fillNormal has unit variance and normal tails (kurtosis 3) over a million draws', () => {
    const v = fillNormal(new Float32Array(1_000_000), 12345, 0, 1);
    const s = stats(v);
    let fourth = 0;
    for (const x of v) fourth += x ** 4;
    expect(Math.abs(s.mean)).toBeLessThan(0.005);
    expect(Math.abs(s.std - 1)).toBeLessThan(0.005);
    expect(Math.abs(fourth / v.length - 3)).toBeLessThan(0.05);
    const within1 = v.filter((x) => Math.abs(x) < 1).length / v.length;
    expect(Math.abs(within1 - 0.6827)).toBeLessThan(0.005);
  });
});

describe('sharding', () => {
  it('shards = 3: three files, an index covering every tensor, values equal to the single file', async () => {
    const single = await tempDir();
    const sharded = await tempDir();
    const one = await writeTinyModel(single, { family: 'mixtral', seed: 11 });
    const three = await writeTinyModel(sharded, { family: 'mixtral', seed: 11, shards: 3 });
    expect(three.files.filter((f) => f.endsWith('.safetensors'))).toEqual([
      'model-00001-of-00003.safetensors',
      'model-00002-of-00003.safetensors',
      'model-00003-of-00003.safetensors',
    ]);
    expect(three.files).not.toContain('model.safetensors');
    const index = JSON.parse(await readFile(path.join(sharded, 'model.safetensors.index.json'), 'utf8')) as {
      metadata: { total_size: number; total_parameters: number };
      weight_map: Record<string, string>;
    };
    expect(Object.keys(index.weight_map)).toHaveLength(one.tensorCount);
    expect(new Set(Object.values(index.weight_map)).size).toBe(3);
    expect(index.metadata.total_parameters).toBe(one.parameters);
    expect(index.metadata.total_size).toBe(one.parameters * 4);
    await withCheckpoint(single, async (a) =>
      withCheckpoint(sharded, (b) => {
        expect(b.files).toHaveLength(3);
        expect([...b.tensors.keys()].sort()).toEqual([...a.tensors.keys()].sort());
        expect(Object.keys(index.weight_map).sort()).toEqual([...a.tensors.keys()].sort());
        for (const name of a.tensors.keys()) {
          expect(path.basename(b.tensor(name).file)).toBe(index.weight_map[name]);
          expect(readSlice(b, name).data).toEqual(readSlice(a, name).data);
        }
      }),
    );
  });

  it('rewriting a folder with fewer shards removes the old shards and index', async () => {
    const dir = await tempDir();
    await writeTinyModel(dir, { family: 'gpt2', shards: 4 });
    const r = await writeTinyModel(dir, { family: 'gpt2' });
    expect((await readdir(dir)).filter((f) => f.includes('safetensors'))).toEqual(['model.safetensors']);
    await withCheckpoint(dir, (ckpt) => expect(ckpt.tensors.size).toBe(r.tensorCount));
  });

  it('assignShards makes contiguous, non-empty, balanced groups', () => {
    expect(assignShards([10, 10, 10, 10, 10, 10], 3)).toEqual([0, 0, 1, 1, 2, 2]);
    // one huge tensor first: the rest still fill every later shard
    expect(assignShards([1000, 1, 1, 1], 4)).toEqual([0, 1, 2, 3]);
    expect(assignShards([1, 1, 1, 1000], 2)).toEqual([0, 0, 0, 1]);
    expect(() => assignShards([1, 2], 3)).toThrow(/only 2 tensors/);
  });
});

describe('f16 and bf16', () => {
  it.each([
    ['f16', 'F16', 2 ** -11],
    ['bf16', 'BF16', 2 ** -8],
  ] as const)('%s values are the f32 values rounded to the nearest %s', async (dtype, stored, relative) => {
    const f32 = await tempDir();
    const half = await tempDir();
    await writeTinyModel(f32, { family: 'phi3', seed: 5 });
    const r = await writeTinyModel(half, { family: 'phi3', seed: 5, dtype });
    expect(r.config['dtype']).toBe(dtype === 'f16' ? 'float16' : 'bfloat16');
    await withCheckpoint(f32, async (a) =>
      withCheckpoint(half, (b) => {
        let rounded = 0;
        for (const name of a.tensors.keys()) {
          expect(b.tensor(name).dtype).toBe(stored);
          const exact = readSlice(a, name).data;
          const got = readSlice(b, name).data;
          for (let i = 0; i < exact.length; i++) {
            const err = Math.abs(got[i]! - exact[i]!);
            // half an ulp of the format (f16 subnormals have a fixed spacing of 2^-24)
            expect(err).toBeLessThanOrEqual(Math.max(Math.abs(exact[i]!) * relative, dtype === 'f16' ? 2 ** -25 : 0));
            if (err > 0) rounded++;
          }
        }
        expect(rounded).toBeGreaterThan(1000);
      }),
    );
  });

  it('the array converters agree bit for bit with @tp/core on normals, subnormals, ties and specials', () => {
    const values = Float32Array.from([
      0, -0, 1, -1, 65504, 65520, 1e6, -1e6, 6e-8, 3e-8, 2 ** -24, 2 ** -25, 1.5 * 2 ** -24, 1e-40, Infinity, -Infinity, NaN,
      1 + 2 ** -11, 1 + 3 * 2 ** -11, 1 + 2 ** -8, 1 + 3 * 2 ** -8, 3.4e38,
      ...fillNormal(new Float32Array(20000), 99, 0, 3),
      ...fillNormal(new Float32Array(2000), 98, 0, 1e-5),
    ]);
    const f16 = f32ArrayToF16(values);
    const bf16 = f32ArrayToBf16(values);
    for (let i = 0; i < values.length; i++) {
      expect(f16[i], `f16 of ${values[i]}`).toBe(f32ToF16Bits(values[i]!));
      expect(bf16[i], `bf16 of ${values[i]}`).toBe(f32ToBf16Bits(values[i]!));
    }
  });
});

describe('a mid-size model', () => {
  it('demo-llama (hidden 256, 4 layers, 8 heads over 4 kv heads) writes, reads back and plans at tp 2 and 4', async () => {
    const dir = await tempDir();
    const preset = PRESETS['demo-llama']!;
    const r = await writeTinyModel(dir, preset.options);
    // embed + lm_head (512 × 256 each), 4 layers of attention (256·256·2 + 2·128·256) and MLP (3·256·512), norms
    const perLayer = 2 * 256 * 256 + 2 * 128 * 256 + 3 * 256 * 512 + 2 * 256;
    expect(r.parameters).toBe(2 * 512 * 256 + 4 * perLayer + 256);
    expect(r.files).toContain('tokenizer.json');
    await withCheckpoint(dir, (ckpt) => {
      let read = 0;
      for (const name of ckpt.tensors.keys()) {
        const { data, shape } = readSlice(ckpt, name);
        expect(data.length).toBe(shape.reduce((a, b) => a * b, 1));
        expect(data.every(Number.isFinite)).toBe(true);
        read += data.length;
      }
      expect(read).toBe(r.parameters);
      const graph = analyzeModel(ckpt);
      expect([graph.geometry.hidden, graph.geometry.layers, graph.geometry.heads, graph.geometry.kvHeads, graph.geometry.headDim]).toEqual([256, 4, 8, 4, 32]);
      for (const tpSize of [2, 4]) expect(planTensorParallel(graph, { tpSize }).ranks).toHaveLength(tpSize);
    });
  });

  it('the benchmark preset is the 134M llama the brief describes (not written here: too slow for CI)', () => {
    const o = PRESETS['bench-llama-134m']!.options;
    expect(o).toMatchObject({ family: 'llama', hidden: 768, layers: 12, heads: 12, kvHeads: 12, intermediate: 2048, vocab: 32000, dtype: 'f32' });
    const params = 2 * 32000 * 768 + 12 * (4 * 768 * 768 + 3 * 768 * 2048 + 2 * 768) + 768;
    expect(params).toBe(134_105_856);
    expect(params * 4).toBeGreaterThan(536e6);
  });
});
