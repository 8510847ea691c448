/**
 * tokenizer.json loads in @huggingface/tokenizers, fills the vocabulary exactly, keeps the special
 * tokens at the ids config.json names, and round-trips text.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { describe, expect, it } from 'vitest';
import { FAMILY_NAMES, byteToUnicode, learnMerges, writeTinyModel, type TinyModelOptions } from '../src/index.js';
import { useTempDirs } from './helpers.js';

const tempDir = useTempDirs();
const TEXT = 'Hello, tensor parallel world!';

async function load(dir: string) {
  const json = JSON.parse(await readFile(path.join(dir, 'tokenizer.json'), 'utf8')) as {
    added_tokens: Array<{ id: number; content: string; special: boolean }>;
    model: { vocab: Record<string, number>; merges: Array<[string, string]> };
  };
  const config = JSON.parse(await readFile(path.join(dir, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
  return { json, config, tokenizer: new Tokenizer(json, config) };
}

describe('tokenizer.json', () => {
  it.each(FAMILY_NAMES)('%s: loads, ids < vocab, specials at the config ids, round-trips ASCII', async (family) => {
    const dir = await tempDir();
    const options: TinyModelOptions = { family, vocab: 384, layers: 1 };
    const r = await writeTinyModel(dir, options);
    expect(r.files).toEqual(expect.arrayContaining(['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json']));
    const { json, config, tokenizer } = await load(dir);

    // the vocabulary has exactly `vocab` entries with ids 0..vocab-1
    const ids = Object.values(json.model.vocab).sort((a, b) => a - b);
    expect(ids).toEqual(Array.from({ length: 384 }, (_, i) => i));

    for (const [role, key] of [['bos', 'bos_token_id'], ['eos', 'eos_token_id'], ['pad', 'pad_token_id']] as const) {
      const id = r.config[key];
      if (typeof id !== 'number') continue;
      const token = config[`${role}_token`];
      expect(typeof token, `${role}_token`).toBe('string');
      expect(tokenizer.token_to_id(token as string), `${role} token ${String(token)}`).toBe(id);
      expect(json.added_tokens.find((t) => t.id === id)?.special).toBe(true);
    }

    const encoded = tokenizer.encode(TEXT);
    expect(encoded.ids.length).toBeGreaterThan(3);
    expect(encoded.ids.length).toBeLessThan(TEXT.length + 2);
    expect(Math.max(...encoded.ids)).toBeLessThan(384);
    expect(tokenizer.decode(encoded.ids, { skip_special_tokens: true })).toBe(TEXT);
    expect(tokenizer.decode(tokenizer.encode(TEXT, { add_special_tokens: false }).ids)).toBe(TEXT);
  });

  it('llama prepends <s> (id 1) like its own tokenizer; qwen2 prepends nothing and has no <unk>', async () => {
    const llama = await tempDir();
    await writeTinyModel(llama, { family: 'llama', vocab: 512 });
    const l = await load(llama);
    expect(l.tokenizer.encode(TEXT).ids[0]).toBe(1);
    expect(l.tokenizer.encode(TEXT).tokens[0]).toBe('<s>');
    expect(l.config['unk_token']).toBe('<unk>');
    expect(l.tokenizer.token_to_id('<unk>')).toBe(0);

    const qwen = await tempDir();
    const r = await writeTinyModel(qwen, { family: 'qwen2', vocab: 512 });
    const q = await load(qwen);
    expect(r.config).toMatchObject({ bos_token_id: 510, eos_token_id: 511 });
    expect(q.tokenizer.token_to_id('<|endoftext|>')).toBe(510);
    expect(q.tokenizer.token_to_id('<|im_end|>')).toBe(511);
    expect(q.config['unk_token']).toBeUndefined();
    expect(q.tokenizer.encode(TEXT).tokens[0]).toBe('H');
    // special tokens in the text are kept whole
    expect(q.tokenizer.encode('hi<|im_end|>').ids.at(-1)).toBe(511);
  });

  it('round-trips UTF-8 and whitespace through the byte-level alphabet', async () => {
    const dir = await tempDir();
    await writeTinyModel(dir, { family: 'gpt2', vocab: 1000 });
    const { tokenizer } = await load(dir);
    for (const text of ['naïve café — 東京 🚀', '  two  spaces\nand a newline\t tab', 'x']) {
      expect(tokenizer.decode(tokenizer.encode(text).ids)).toBe(text);
    }
  });

  it('a 32000 vocabulary fills up with merges and tokenizes common words whole', async () => {
    const dir = await tempDir();
    await writeTinyModel(dir, { family: 'mistral', vocab: 32000, hidden: 16, heads: 2, kvHeads: 1, layers: 1, intermediate: 16 });
    const { json, tokenizer } = await load(dir);
    expect(json.model.merges).toHaveLength(32000 - 256 - 3);
    expect(new Set(json.model.merges.map(([a, b]) => a + b)).size).toBe(json.model.merges.length);
    // words the built-in text repeats are learned whole; rarer ones fall back to shorter merges
    expect(tokenizer.encode(' the model is split', { add_special_tokens: false }).tokens).toEqual(['Ġthe', 'Ġmodel', 'Ġis', 'Ġsplit']);
    expect(tokenizer.encode(' tensor parallel world', { add_special_tokens: false }).tokens).toEqual(['Ġtensor', 'Ġp', 'arallel', 'Ġworld']);
    // synthetic merges cover byte pairs the text never had
    expect(tokenizer.encode('zqxj', { add_special_tokens: false }).tokens).toEqual(['z', 'qx', 'j']);
    expect(tokenizer.decode(tokenizer.encode(TEXT).ids, { skip_special_tokens: true })).toBe(TEXT);
  });

  it('is written by default from vocab 300 on, never below, and refused when 256 bytes + specials do not fit', async () => {
    const small = await writeTinyModel(await tempDir(), { family: 'llama' });
    expect(small.files).not.toContain('tokenizer.json');
    const off = await writeTinyModel(await tempDir(), { family: 'llama', vocab: 400, tokenizer: false });
    expect(off.files).not.toContain('tokenizer.json');
    const tight = await writeTinyModel(await tempDir(), { family: 'llama', vocab: 259, tokenizer: true });
    expect(tight.files).toContain('tokenizer.json');
    await expect(writeTinyModel(await tempDir(), { family: 'llama', vocab: 258, tokenizer: true })).rejects.toThrow(/needs vocab >= 259/);
  });

  it('learns the most frequent pairs of the text first', () => {
    const alphabet = byteToUnicode();
    expect(alphabet[0x20]).toBe('Ġ');
    expect(alphabet[0x0a]).toBe('Ċ');
    expect(alphabet[0x41]).toBe('A');
    expect(new Set(alphabet).size).toBe(256);
    // words "aaab" ×1 and " aaab" ×2: (a, a) ×6 first; then (a, b) and (aa, a) tie at 3 and the
    // smaller text wins; pairs seen once are never merged
    expect(learnMerges('aaab aaab aaab', 10, alphabet)).toEqual([
      ['a', 'a'],
      ['a', 'b'],
      ['aa', 'ab'],
      ['Ġ', 'aaab'],
    ]);
    expect(learnMerges('aaab aaab aaab', 2, alphabet)).toHaveLength(2);
    expect(learnMerges('abc', 10, alphabet)).toEqual([]);
  });
});
