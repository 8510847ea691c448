import { Tokenizer } from '@huggingface/tokenizers';
import { writeTinyModel, FAMILY_NAMES } from '../dist/index.js';
import { readFileSync } from 'node:fs';
for (const family of FAMILY_NAMES) {
  for (const vocab of [300, 512, 32000]) {
    const dir = `/tmp/tm-tok/${family}-${vocab}`;
    const t0 = performance.now();
    await writeTinyModel(dir, { family, vocab, layers: 1, hidden: 32, heads: 4, intermediate: undefined, experts: family.includes('m') && (family==='mixtral'||family==='qwen2_moe') ? 2 : undefined});
    const tj = JSON.parse(readFileSync(`${dir}/tokenizer.json`, 'utf8'));
    const tc = JSON.parse(readFileSync(`${dir}/tokenizer_config.json`, 'utf8'));
    const tok = new Tokenizer(tj, tc);
    const text = 'Hello, tensor parallel world!';
    const enc = tok.encode(text);
    const dec = tok.decode(enc.ids, { skip_special_tokens: true });
    const dec2 = tok.decode(enc.ids);
    console.log(family, vocab, (performance.now()-t0).toFixed(0)+'ms', enc.ids.length, JSON.stringify(enc.tokens), Math.max(...enc.ids) < vocab, dec === text, JSON.stringify(dec2));
  }
}
