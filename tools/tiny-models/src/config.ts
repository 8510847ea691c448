/**
 * config.json and generation_config.json as transformers 4.57.6 writes them: the family's own keys
 * plus the shared ones (architectures, model_type, dtype, special token ids, transformers_version).
 */
import { DTYPE_INFO, type TinyDtype } from './encode.js';
import type { Dims, FamilySpec } from './families/index.js';
import type { PyJson, PyObject } from './json.js';

export const TRANSFORMERS_VERSION = '4.57.6';

export function buildConfig(spec: FamilySpec, d: Dims, dtype: TinyDtype): PyObject {
  return {
    ...spec.config(d),
    architectures: [(d.variant !== undefined ? spec.variants?.[d.variant]?.architecture : undefined) ?? spec.architecture],
    model_type: spec.modelType,
    dtype: DTYPE_INFO[dtype].torch,
    transformers_version: TRANSFORMERS_VERSION,
    bos_token_id: d.special.bos,
    eos_token_id: d.special.eos,
    pad_token_id: d.special.pad,
    decoder_start_token_id: d.special.decoderStart,
    // save_pretrained writes only values that differ from the defaults: the base default is tied
    tie_word_embeddings: spec.tieKey || !d.tie ? d.tie : undefined,
  };
}

const GENERATION_KEYS = ['bos_token_id', 'eos_token_id', 'pad_token_id', 'decoder_start_token_id', 'forced_eos_token_id'] as const;

/** What `GenerationConfig.from_model_config` keeps: the special ids, and use_cache when it is off. */
export function buildGenerationConfig(config: PyObject): PyObject {
  const out: Record<string, PyJson | undefined> = { _from_model_config: true, transformers_version: TRANSFORMERS_VERSION };
  for (const key of GENERATION_KEYS) if (config[key] !== undefined) out[key] = config[key];
  if (config['use_cache'] === false) out['use_cache'] = false;
  return out;
}
