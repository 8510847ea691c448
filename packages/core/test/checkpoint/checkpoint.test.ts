/**
 * openCheckpoint: finding config.json and the weight files of a folder, the sharded index and its
 * guards (no path may leave the folder), and the errors for everything else a folder can hold.
 */
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { openCheckpoint, readSlice, writeSafetensors, type Checkpoint } from '../../src/index.js';
import { expectTpError, f32Iota, patterned, put, putJson, writeCheckpoint, useTempDirs } from '../helpers/files.js';

const tempDir = useTempDirs();
const CONFIG = { model_type: 'llama', hidden_size: 8 };
const INDEX = 'model.safetensors.index.json';

async function withCheckpoint<T>(dir: string, use: (ckpt: Checkpoint) => T | Promise<T>): Promise<T> {
  const ckpt = await openCheckpoint(dir);
  try {
    return await use(ckpt);
  } finally {
    ckpt.close();
  }
}

/** A folder with two shards and a valid index; returns the folder. */
async function sharded(index?: (weightMap: Record<string, string>) => unknown): Promise<string> {
  const dir = await tempDir();
  const weightMap = { 'a.weight': 'model-00001-of-00002.safetensors', 'b.weight': 'model-00001-of-00002.safetensors', 'c.weight': 'model-00002-of-00002.safetensors' };
  return writeCheckpoint(dir, {
    config: CONFIG,
    files: {
      'model-00001-of-00002.safetensors': [f32Iota('a.weight', [2, 3]), f32Iota('b.weight', [4])],
      'model-00002-of-00002.safetensors': [f32Iota('c.weight', [3, 2])],
    },
    index: index ? index(weightMap) : { metadata: { total_size: 64 }, weight_map: weightMap },
  });
}

describe('the folder', () => {
  it('reads a single-file checkpoint: config, headers, tensors by name', async () => {
    const dir = await writeCheckpoint(await tempDir(), { config: CONFIG, files: { 'model.safetensors': [f32Iota('w', [2, 2]), patterned('b', 'BF16', [3])] } });
    await withCheckpoint(dir, (ckpt) => {
      expect(ckpt.dir).toBe(path.resolve(dir));
      expect(ckpt.configPath).toBe(path.join(path.resolve(dir), 'config.json'));
      expect(ckpt.config).toEqual(CONFIG);
      expect(ckpt.files.map((f) => path.basename(f.file))).toEqual(['model.safetensors']);
      expect([...ckpt.tensors.keys()].sort()).toEqual(['b', 'w']);
      expect(ckpt.tensor('w')).toMatchObject({ name: 'w', dtype: 'F32', shape: [2, 2], byteLength: 16 });
      expect(ckpt.bytesRead).toBe(0); // opening reads no weight bytes
    });
  });

  it('reads weights from a relative path', async () => {
    const dir = await writeCheckpoint(await tempDir(), { config: CONFIG, files: { 'model.safetensors': [f32Iota('w', [2])] } });
    const relative = path.relative(process.cwd(), dir);
    await withCheckpoint(relative, (ckpt) => expect(ckpt.dir).toBe(path.resolve(dir)));
  });

  it('fails for a folder that does not exist (file-not-found)', async () => {
    const dir = path.join(await tempDir(), 'nowhere');
    await expectTpError(() => openCheckpoint(dir), { code: 'file-not-found', file: 'nowhere', tensor: undefined, name: 'CheckpointError' });
  });

  it('fails for a path that is a file (not-a-directory)', async () => {
    const file = await put(await tempDir(), 'model.safetensors', 'x');
    await expectTpError(() => openCheckpoint(file), { code: 'not-a-directory', file: 'model.safetensors', tensor: undefined });
  });

  it('fails without config.json (ConfigError config-invalid)', async () => {
    const dir = await tempDir();
    await writeSafetensors(path.join(dir, 'model.safetensors'), [f32Iota('w', [2])]);
    await expectTpError(() => openCheckpoint(dir), { code: 'config-invalid', file: 'config.json', name: 'ConfigError', key: undefined });
  });

  it.each([
    ['not JSON', '{"model_type": "llama",'],
    ['empty', ''],
    ['a JSON array', '[{"model_type": "llama"}]'],
    ['a JSON string', '"llama"'],
    ['JSON null', 'null'],
    ['a number', '7'],
  ])('fails when config.json is %s (config-invalid)', async (_, text) => {
    const dir = await tempDir();
    await put(dir, 'config.json', text);
    await writeSafetensors(path.join(dir, 'model.safetensors'), [f32Iota('w', [2])]);
    await expectTpError(() => openCheckpoint(dir), { code: 'config-invalid', file: 'config.json', name: 'ConfigError' });
  });

  it('fails for a folder with no weights at all (no-weights)', async () => {
    const dir = await tempDir();
    await putJson(dir, 'config.json', CONFIG);
    await put(dir, 'README.md', '# model');
    await put(dir, 'tokenizer.json', '{}');
    const error = await expectTpError(() => openCheckpoint(dir), { code: 'no-weights', tensor: undefined });
    expect(error['file']).toBe(path.resolve(dir));
  });

  it('refuses a pickle-only checkpoint, saying why and how to convert (pickle-refused)', async () => {
    const dir = await tempDir();
    await putJson(dir, 'config.json', CONFIG);
    await put(dir, 'pytorch_model.bin', new Uint8Array([0x80, 0x02, 0x7d, 0x71]));
    const error = await expectTpError(() => openCheckpoint(dir), { code: 'pickle-refused', file: 'pytorch_model.bin', tensor: undefined });
    expect(error.message).toContain('safetensors');
  });

  it.each(['model.pt', 'weights.pth', 'model.ckpt', 'state.pkl'])('refuses %s too (pickle-refused)', async (name) => {
    const dir = await tempDir();
    await putJson(dir, 'config.json', CONFIG);
    await put(dir, name, 'pickle');
    await expectTpError(() => openCheckpoint(dir), { code: 'pickle-refused', file: name });
  });

  it('uses model.safetensors and ignores a pickle beside it', async () => {
    const dir = await writeCheckpoint(await tempDir(), { config: CONFIG, files: { 'model.safetensors': [f32Iota('w', [2])] } });
    await put(dir, 'pytorch_model.bin', 'pickle');
    await withCheckpoint(dir, (ckpt) => expect([...ckpt.tensors.keys()]).toEqual(['w']));
  });

  it('reads un-indexed *.safetensors files in name order', async () => {
    const dir = await writeCheckpoint(await tempDir(), {
      config: CONFIG,
      files: { 'b.safetensors': [f32Iota('y', [1])], 'a.safetensors': [f32Iota('x', [1])] },
    });
    await withCheckpoint(dir, (ckpt) => {
      expect(ckpt.files.map((f) => path.basename(f.file))).toEqual(['a.safetensors', 'b.safetensors']);
      expect(path.basename(ckpt.tensor('y').file)).toBe('b.safetensors');
    });
  });

  it('rejects a tensor stored in two un-indexed files (duplicate-tensor)', async () => {
    const dir = await writeCheckpoint(await tempDir(), {
      config: CONFIG,
      files: { 'a.safetensors': [f32Iota('x', [1]), f32Iota('shared', [2])], 'b.safetensors': [f32Iota('shared', [2])] },
    });
    await expectTpError(() => openCheckpoint(dir), { code: 'duplicate-tensor', file: 'b.safetensors', tensor: 'shared' });
  });

  it('passes on the header error of a broken weight file, naming that file', async () => {
    const dir = await writeCheckpoint(await tempDir(), { config: CONFIG });
    await put(dir, 'model.safetensors', new Uint8Array(3));
    await expectTpError(() => openCheckpoint(dir), { code: 'header-too-short', file: 'model.safetensors' });
  });

  it('fails for a tensor it does not hold (tensor-not-found)', async () => {
    const dir = await writeCheckpoint(await tempDir(), { config: CONFIG, files: { 'model.safetensors': [f32Iota('w', [2])] } });
    await withCheckpoint(dir, (ckpt) => expectTpError(() => ckpt.tensor('v'), { code: 'tensor-not-found', tensor: 'v' }));
  });
});

describe('a sharded checkpoint', () => {
  it('reads tensors from every shard the index names, each from its own file', async () => {
    const dir = await sharded();
    await withCheckpoint(dir, (ckpt) => {
      expect(ckpt.files.map((f) => path.basename(f.file))).toEqual(['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']);
      expect([...ckpt.tensors.keys()].sort()).toEqual(['a.weight', 'b.weight', 'c.weight']);
      expect(path.basename(ckpt.tensor('a.weight').file)).toBe('model-00001-of-00002.safetensors');
      expect(path.basename(ckpt.tensor('b.weight').file)).toBe('model-00001-of-00002.safetensors');
      expect(path.basename(ckpt.tensor('c.weight').file)).toBe('model-00002-of-00002.safetensors');
      // Data comes from the right file and offset.
      expect(Array.from(readSlice(ckpt, 'a.weight').data)).toEqual([0, 1, 2, 3, 4, 5]);
      expect(Array.from(readSlice(ckpt, 'b.weight').data)).toEqual([0, 1, 2, 3]);
      expect(Array.from(readSlice(ckpt, 'c.weight').data)).toEqual([0, 1, 2, 3, 4, 5]);
      expect(ckpt.bytesRead).toBe(24 + 16 + 24);
    });
  });

  it('prefers the index over a model.safetensors beside it', async () => {
    const dir = await sharded();
    await writeSafetensors(path.join(dir, 'model.safetensors'), [f32Iota('stale', [1])]);
    await withCheckpoint(dir, (ckpt) => expect(ckpt.tensors.has('stale')).toBe(false));
  });

  it('accepts shard names in a subfolder and a symlink that stays inside the folder', async () => {
    const dir = await tempDir();
    await mkdir(path.join(dir, 'shards'));
    await writeCheckpoint(dir, { config: CONFIG, files: { 'shards/one.safetensors': [f32Iota('x', [2])], 'real.safetensors': [f32Iota('y', [2])] } });
    await symlink(path.join(dir, 'real.safetensors'), path.join(dir, 'link.safetensors'));
    await putJson(dir, INDEX, { weight_map: { x: 'shards/one.safetensors', y: 'link.safetensors' } });
    await withCheckpoint(dir, (ckpt) => {
      expect(path.basename(ckpt.tensor('x').file)).toBe('one.safetensors');
      expect(path.basename(ckpt.tensor('y').file)).toBe('link.safetensors');
      expect(Array.from(readSlice(ckpt, 'y').data)).toEqual([0, 1]);
    });
  });

  it('accepts a shard whose name merely starts with two dots', async () => {
    const dir = await tempDir();
    await writeCheckpoint(dir, { config: CONFIG, files: { '..odd.safetensors': [f32Iota('x', [2])] } });
    await putJson(dir, INDEX, { weight_map: { x: '..odd.safetensors' } });
    await withCheckpoint(dir, (ckpt) => expect(Array.from(readSlice(ckpt, 'x').data)).toEqual([0, 1]));
  });

  it('warns about a shard tensor the index does not list, and still uses it', async () => {
    const dir = await tempDir();
    await writeCheckpoint(dir, { config: CONFIG, files: { 'one.safetensors': [f32Iota('x', [2]), f32Iota('extra', [3])] } });
    await putJson(dir, INDEX, { weight_map: { x: 'one.safetensors' } });
    await withCheckpoint(dir, (ckpt) => {
      expect(ckpt.tensors.has('extra')).toBe(true);
      expect(ckpt.warnings).toHaveLength(1);
      expect(ckpt.warnings[0]).toContain('extra');
    });
  });

  it('rejects a shard path with ".." that leaves the folder (index-escapes-folder)', async () => {
    const parent = await tempDir();
    const dir = path.join(parent, 'model');
    await mkdir(dir);
    // The outside file exists and is valid: only the path is wrong.
    await writeSafetensors(path.join(parent, 'outside.safetensors'), [f32Iota('secret', [1])]);
    await writeCheckpoint(dir, { config: CONFIG, index: { weight_map: { secret: '../outside.safetensors' } } });
    await expectTpError(() => openCheckpoint(dir), { code: 'index-escapes-folder', file: INDEX, tensor: 'secret' });
  });

  it('rejects a ".." path hidden behind a subfolder (index-escapes-folder)', async () => {
    const parent = await tempDir();
    const dir = path.join(parent, 'model');
    await mkdir(path.join(dir, 'sub'), { recursive: true });
    await writeSafetensors(path.join(parent, 'outside.safetensors'), [f32Iota('secret', [1])]);
    await writeCheckpoint(dir, { config: CONFIG, index: { weight_map: { secret: 'sub/../../outside.safetensors' } } });
    await expectTpError(() => openCheckpoint(dir), { code: 'index-escapes-folder', file: INDEX, tensor: 'secret' });
  });

  it('rejects an absolute shard path (index-escapes-folder)', async () => {
    const parent = await tempDir();
    const dir = path.join(parent, 'model');
    await mkdir(dir);
    const outside = path.join(parent, 'outside.safetensors');
    await writeSafetensors(outside, [f32Iota('secret', [1])]);
    await writeCheckpoint(dir, { config: CONFIG, index: { weight_map: { secret: outside } } });
    await expectTpError(() => openCheckpoint(dir), { code: 'index-escapes-folder', file: INDEX, tensor: 'secret' });
  });

  it('rejects an absolute path even when it points inside the folder (index-escapes-folder)', async () => {
    const dir = await writeCheckpoint(await tempDir(), { config: CONFIG, files: { 'one.safetensors': [f32Iota('x', [1])] } });
    await putJson(dir, INDEX, { weight_map: { x: path.join(dir, 'one.safetensors') } });
    await expectTpError(() => openCheckpoint(dir), { code: 'index-escapes-folder', file: INDEX, tensor: 'x' });
  });

  it('rejects a symlink inside the folder that points outside it (index-escapes-folder)', async () => {
    const parent = await tempDir();
    const dir = path.join(parent, 'model');
    await mkdir(dir);
    const outside = path.join(parent, 'outside.safetensors');
    await writeSafetensors(outside, [f32Iota('secret', [1])]);
    await symlink(outside, path.join(dir, 'innocent.safetensors'));
    await writeCheckpoint(dir, { config: CONFIG, index: { weight_map: { secret: 'innocent.safetensors' } } });
    await expectTpError(() => openCheckpoint(dir), { code: 'index-escapes-folder', file: INDEX, tensor: 'secret' });
  });

  it('rejects a symlinked subfolder that points outside (index-escapes-folder)', async () => {
    const parent = await tempDir();
    const dir = path.join(parent, 'model');
    await mkdir(path.join(parent, 'elsewhere'), { recursive: true });
    await mkdir(dir);
    await writeSafetensors(path.join(parent, 'elsewhere', 'shard.safetensors'), [f32Iota('secret', [1])]);
    await symlink(path.join(parent, 'elsewhere'), path.join(dir, 'shards'));
    await writeCheckpoint(dir, { config: CONFIG, index: { weight_map: { secret: 'shards/shard.safetensors' } } });
    await expectTpError(() => openCheckpoint(dir), { code: 'index-escapes-folder', file: INDEX, tensor: 'secret' });
  });

  it('rejects an index naming a shard that does not exist (index-missing-shard)', async () => {
    const dir = await sharded((map) => ({ weight_map: { ...map, 'd.weight': 'model-00003-of-00003.safetensors' } }));
    await expectTpError(() => openCheckpoint(dir), { code: 'index-missing-shard', file: INDEX, tensor: 'd.weight' });
  });

  it('rejects an index naming a tensor that is in no shard (index-mismatch)', async () => {
    const dir = await sharded((map) => ({ weight_map: { ...map, 'ghost.weight': 'model-00002-of-00002.safetensors' } }));
    await expectTpError(() => openCheckpoint(dir), { code: 'index-mismatch', file: INDEX, tensor: 'ghost.weight' });
  });

  it('rejects an index placing a tensor in the wrong shard (index-mismatch)', async () => {
    const dir = await sharded((map) => ({ weight_map: { ...map, 'c.weight': 'model-00001-of-00002.safetensors', 'a.weight': 'model-00002-of-00002.safetensors' } }));
    // weight_map entries are checked in their order: a.weight comes first.
    await expectTpError(() => openCheckpoint(dir), { code: 'index-mismatch', file: INDEX, tensor: 'a.weight' });
  });

  it('rejects the same tensor stored in two shards (duplicate-tensor)', async () => {
    const dir = await tempDir();
    await writeCheckpoint(dir, {
      config: CONFIG,
      files: { 'one.safetensors': [f32Iota('x', [2]), f32Iota('y', [2])], 'two.safetensors': [f32Iota('y', [2]), f32Iota('z', [2])] },
      index: { weight_map: { x: 'one.safetensors', y: 'one.safetensors', z: 'two.safetensors' } },
    });
    await expectTpError(() => openCheckpoint(dir), { code: 'duplicate-tensor', file: 'two.safetensors', tensor: 'y' });
  });

  it.each([
    ['has no weight_map', { metadata: { total_size: 0 } }],
    ['has weight_map null', { weight_map: null }],
    ['has weight_map as a list', { weight_map: [['x', 'one.safetensors']] }],
    ['has weight_map as a string', { weight_map: 'one.safetensors' }],
    ['is a JSON array', []],
    ['is JSON null', null],
  ])('rejects an index that %s (index-invalid)', async (_, index) => {
    const dir = await writeCheckpoint(await tempDir(), { config: CONFIG, files: { 'one.safetensors': [f32Iota('x', [1])] }, index });
    await expectTpError(() => openCheckpoint(dir), { code: 'index-invalid', file: INDEX, tensor: undefined });
  });

  it('rejects an index that is not JSON (index-invalid)', async () => {
    const dir = await writeCheckpoint(await tempDir(), { config: CONFIG, files: { 'one.safetensors': [f32Iota('x', [1])] } });
    await writeFile(path.join(dir, INDEX), '{"weight_map": {');
    await expectTpError(() => openCheckpoint(dir), { code: 'index-invalid', file: INDEX });
  });

  it.each([
    ['a number', 3],
    ['an empty string', ''],
    ['null', null],
    ['a list', ['one.safetensors']],
  ])('rejects a weight_map value that is %s, naming the tensor (index-invalid)', async (_, value) => {
    const dir = await writeCheckpoint(await tempDir(), {
      config: CONFIG,
      files: { 'one.safetensors': [f32Iota('x', [1])] },
      index: { weight_map: { x: 'one.safetensors', bad: value } },
    });
    await expectTpError(() => openCheckpoint(dir), { code: 'index-invalid', file: INDEX, tensor: 'bad' });
  });

  it('passes on a broken shard header, naming the shard', async () => {
    const dir = await sharded();
    await put(dir, 'model-00002-of-00002.safetensors', new Uint8Array([1, 0, 0, 0, 0, 0, 0, 0, 0x7b]) /* a 1-byte header */);
    await expectTpError(() => openCheckpoint(dir), { code: 'header-not-json', file: 'model-00002-of-00002.safetensors' });
  });
});
