/**
 * BERT-style encoders as BertForMaskedLM saves them in transformers 4.57.6: `bert.embeddings.*`,
 * `bert.encoder.layer.{i}.attention.self.{query,key,value}`, post-norm LayerNorms, and the MLM head
 * `cls.predictions.*` whose decoder is tied to the word embeddings (absent on disk). The tokenizer
 * has a `[MASK]` token for fill-mask.
 */
import { float } from '../json.js';
import { embedding, linear, norm, perLayer, type FamilySpec } from './types.js';

export const bertFamilies: readonly FamilySpec[] = [
  {
    modelType: 'bert',
    architecture: 'BertForMaskedLM',
    summary: 'BERT encoder with its masked-LM head (post-norm, learned positions, token types)',
    attention: 'mha',
    defaultVariant: 'mlm',
    variants: {
      mlm: { summary: 'BertForMaskedLM: the encoder and its masked-LM head', attention: 'mha', flags: { pooler: false } },
      pretraining: {
        summary: 'BertForPreTraining: also the pooler (and the next-sentence head)',
        architecture: 'BertForPreTraining',
        attention: 'mha',
        flags: { pooler: true },
      },
    },
    tieDefault: true,
    tieKey: false,
    special: () => ({ pad: 0, mask: 1 }),
    tokenNames: { pad: '[PAD]', unk: '[UNK]', mask: '[MASK]' },
    check: (d) => (d.tie ? undefined : 'the MLM decoder is tied to the word embeddings (BertForMaskedLM); drop --no-tie'),
    config: (d) => ({
      attention_probs_dropout_prob: float(0.1),
      classifier_dropout: null,
      hidden_act: 'gelu',
      hidden_dropout_prob: float(0.1),
      hidden_size: d.hidden,
      initializer_range: float(0.02),
      intermediate_size: d.intermediate,
      layer_norm_eps: float(1e-12),
      max_position_embeddings: d.maxPositions,
      num_attention_heads: d.heads,
      num_hidden_layers: d.layers,
      position_embedding_type: 'absolute',
      type_vocab_size: 2,
      use_cache: true,
      vocab_size: d.vocab,
    }),
    tensors: (d) => {
      const H = d.hidden;
      return [
        ...embedding('bert.embeddings.word_embeddings', d.vocab, H),
        ...embedding('bert.embeddings.position_embeddings', d.maxPositions, H),
        ...embedding('bert.embeddings.token_type_embeddings', 2, H),
        ...norm('bert.embeddings.LayerNorm', H, true),
        ...perLayer(d, (i) => {
          const p = `bert.encoder.layer.${i}`;
          return [
            ...linear(`${p}.attention.self.query`, H, H, true),
            ...linear(`${p}.attention.self.key`, H, H, true),
            ...linear(`${p}.attention.self.value`, H, H, true),
            ...linear(`${p}.attention.output.dense`, H, H, true),
            ...norm(`${p}.attention.output.LayerNorm`, H, true),
            ...linear(`${p}.intermediate.dense`, d.intermediate, H, true),
            ...linear(`${p}.output.dense`, H, d.intermediate, true),
            ...norm(`${p}.output.LayerNorm`, H, true),
          ];
        }),
        ...(d.flags['pooler'] === true ? [...linear('bert.pooler.dense', H, H, true), ...linear('cls.seq_relationship', 2, H, true)] : []),
        ...linear('cls.predictions.transform.dense', H, H, true),
        ...norm('cls.predictions.transform.LayerNorm', H, true),
        { name: 'cls.predictions.bias', shape: [d.vocab], mean: 0, std: 0.1 },
      ];
    },
  },
];
