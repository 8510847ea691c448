/** Named model shapes used by benchmarks and demos. */
import type { TinyModelOptions } from './options.js';

export interface Preset {
  readonly description: string;
  readonly options: Readonly<TinyModelOptions>;
}

export const PRESETS: Readonly<Record<string, Preset>> = {
  'bench-llama-134m': {
    description: 'the 134M-parameter llama benchmark model (hidden 768, 12 layers, 12 heads, vocab 32000, f32, ~536 MB)',
    options: { family: 'llama', hidden: 768, layers: 12, heads: 12, kvHeads: 12, intermediate: 2048, vocab: 32000, maxPositions: 2048, dtype: 'f32' },
  },
  'bench-bert-110m': {
    description: 'a BERT-base-shaped encoder benchmark model (hidden 768, 12 layers, 12 heads, intermediate 3072, vocab 30522, f32, ~440 MB)',
    options: { family: 'bert', hidden: 768, layers: 12, heads: 12, intermediate: 3072, vocab: 30522, maxPositions: 512, dtype: 'f32' },
  },
  'bench-t5-83m': {
    description: 'a T5-v1.1-small-shaped encoder–decoder benchmark model (d_model 512, 8 + 8 layers, 8 heads of 64, gated-GELU 1024, vocab 32128, f32)',
    options: { family: 't5', hidden: 512, layers: 8, heads: 8, intermediate: 1024, vocab: 32128, maxPositions: 512, dtype: 'f32' },
  },
  'demo-llama': {
    description: 'a small llama for demos (hidden 256, 4 layers, 8 heads, 4 kv heads, vocab 512, f32)',
    options: { family: 'llama', hidden: 256, layers: 4, heads: 8, kvHeads: 4, intermediate: 512, vocab: 512, maxPositions: 512, dtype: 'f32' },
  },
  'demo-t5': {
    description: 'a small T5 v1.1 (gated-GELU, untied head) for the text2text demo (d_model 256, 4 + 4 layers, 8 heads, vocab 512, f32)',
    options: { family: 't5', hidden: 256, layers: 4, heads: 8, intermediate: 512, vocab: 512, maxPositions: 512, dtype: 'f32' },
  },
};
