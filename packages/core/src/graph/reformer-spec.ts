/**
 * How a Reformer computes, as data (transformers' ReformerModelWithLMHead): which attention each
 * layer runs, the chunking of local and LSH attention, the hashing, and the position embeddings. The
 * rest of the layer (norms, feed-forward, LM head) is read from the DecoderSpec that carries this.
 */
import { UnsupportedModelError } from '../errors/index.js';
import type { ConfigReader } from './descriptor.js';

/** Chunked attention: queries in chunks of `chunkLength` see their chunk and the chunks around it. */
export interface ReformerChunking {
  chunkLength: number;
  /** Neighbouring chunks before and after a query's own (transformers' _look_adjacent). */
  before: number;
  after: number;
}

export interface ReformerSpec {
  /** `local` or `lsh`, per layer. */
  layers: ReadonlyArray<'local' | 'lsh'>;
  local: ReformerChunking;
  lsh: ReformerChunking & {
    /** Bucket factors: one number (an even count), or several whose product is the bucket count. */
    buckets: readonly number[];
    /** Hashing rounds. */
    hashes: number;
    /** torch.manual_seed before the rotations are drawn. */
    seed: number;
  };
  /**
   * Axial positions (AxialPositionEmbeddings): position p, written in the mixed radix of `shape`
   * (row-major), takes row digit_i of table i for each axis, concatenated; `dims` are the tables'
   * widths. Absent: a learned [positions, hidden] table.
   */
  axial?: { shape: readonly number[]; dims: readonly number[] };
  /** Inputs are padded with this id up to a multiple of the chunk lengths (never seen by real rows). */
  padTokenId: number;
  /**
   * Sequence lengths that `_pad_to_mult_of_chunk_length` pads: above `minChunk` and not a multiple of
   * `lcmChunk` (the least common multiple of the chunk lengths the layers use), up to that multiple.
   */
  minChunk: number;
  lcmChunk: number;
  /** The most positions a padded sequence may use (max_position_embeddings, and the axial grid). */
  maxPaddedLength: number;
}

const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));

/** The length transformers runs a sequence of `length` tokens at: padded up to the chunk multiple when it must be. */
export function reformerPaddedLength(spec: Pick<ReformerSpec, 'minChunk' | 'lcmChunk'>, length: number): number {
  if (length % spec.lcmChunk === 0 || length <= spec.minChunk) return length;
  return Math.ceil(length / spec.lcmChunk) * spec.lcmChunk;
}

/** The longest sequence whose padded length fits `maxPaddedLength`. */
export function reformerMaxLength(spec: Pick<ReformerSpec, 'minChunk' | 'lcmChunk' | 'maxPaddedLength'>): number {
  for (let n = spec.maxPaddedLength; n > 0; n--) if (reformerPaddedLength(spec, n) <= spec.maxPaddedLength) return n;
  return 0;
}

/**
 * The ReformerSpec of a config (ReformerConfig's defaults where a key is absent). Refused: a config
 * transformers itself would run non-deterministically or statefully — no `hash_seed` (fresh random
 * rotations every forward), no `num_buckets` (chosen from the first input's length and then kept) —
 * and the masked-LM configuration (`is_decoder` false), which is not a causal LM.
 */
export function reformerSpec(c: ConfigReader): ReformerSpec {
  const refuse = (reason: string): never => {
    throw new UnsupportedModelError({ modelType: 'reformer', reason });
  };
  const int = (key: string, fallback: number): number => {
    const v = c.value(key);
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) return refuse(`config.json's ${key} must be a non-negative integer, got ${JSON.stringify(v)}`);
    return v;
  };
  const ints = (key: string, fallback: readonly number[]): number[] => {
    const v = c.value(key) ?? fallback;
    if (!Array.isArray(v) || v.length === 0 || v.some((x) => typeof x !== 'number' || !Number.isInteger(x) || x < 1)) {
      return refuse(`config.json's ${key} must be a list of positive integers, got ${JSON.stringify(v)}`);
    }
    return v as number[];
  };

  if (c.bool('is_decoder') !== true) refuse('is_decoder is false: this is ReformerForMaskedLM (bidirectional), and tp runs Reformer only as the causal ReformerModelWithLMHead');
  const types = (c.value('attn_layers') ?? ['local', 'lsh', 'local', 'lsh', 'local', 'lsh']) as unknown;
  if (!Array.isArray(types) || types.length === 0 || types.some((t) => t !== 'local' && t !== 'lsh')) {
    refuse(`attn_layers must list "local" and "lsh" layers, got ${JSON.stringify(types)}`);
  }
  const layers = types as Array<'local' | 'lsh'>;
  const local: ReformerChunking = { chunkLength: int('local_attn_chunk_length', 64), before: int('local_num_chunks_before', 1), after: int('local_num_chunks_after', 0) };
  const lshChunking: ReformerChunking = { chunkLength: int('lsh_attn_chunk_length', 64), before: int('lsh_num_chunks_before', 1), after: int('lsh_num_chunks_after', 0) };
  if (local.chunkLength < 1 || lshChunking.chunkLength < 1) refuse('local_attn_chunk_length and lsh_attn_chunk_length must be at least 1 (tp does not run chunk length None)');

  let buckets: number[] = [];
  let hashes = 1;
  let seed = 0;
  if (layers.includes('lsh')) {
    const raw = c.value('num_buckets');
    if (raw === undefined || raw === null) {
      refuse('num_buckets is not set: transformers then picks it from the length of the first input it sees and keeps it, so the model depends on its first call; set num_buckets in config.json');
    }
    buckets = typeof raw === 'number' ? [raw] : ints('num_buckets', []);
    if (buckets.some((b) => !Number.isInteger(b) || b < 2 || b % 2 !== 0)) refuse(`num_buckets must be an even number or a list of even factors, got ${JSON.stringify(raw)}`);
    const rawSeed = c.value('hash_seed');
    if (rawSeed === undefined || rawSeed === null) {
      refuse('hash_seed is not set: transformers then draws new random rotations on every forward pass, so its outputs are not reproducible; set hash_seed in config.json');
    }
    seed = int('hash_seed', 0);
    hashes = int('num_hashes', 1);
    if (hashes < 1) refuse('num_hashes must be at least 1');
  }

  const used = [...new Set(layers)].map((t) => (t === 'local' ? local.chunkLength : lshChunking.chunkLength));
  const lcmChunk = used.reduce((a, b) => (a * b) / gcd(a, b));
  const minChunk = Math.min(...used);
  const maxPositions = int('max_position_embeddings', 4096);
  const axialOn = c.value('axial_pos_embds') ?? true;
  let axial: ReformerSpec['axial'];
  let maxPaddedLength = maxPositions;
  if (axialOn === true) {
    const shape = ints('axial_pos_shape', [64, 64]);
    const dims = ints('axial_pos_embds_dim', [64, 192]);
    if (shape.length !== dims.length) refuse(`axial_pos_shape ${JSON.stringify(shape)} and axial_pos_embds_dim ${JSON.stringify(dims)} must have one entry per axis`);
    axial = { shape, dims };
    maxPaddedLength = Math.min(maxPositions, shape.reduce((a, b) => a * b, 1));
  }
  return {
    layers,
    local,
    lsh: { ...lshChunking, buckets, hashes, seed },
    ...(axial ? { axial } : {}),
    padTokenId: int('pad_token_id', 0),
    minChunk,
    lcmChunk,
    maxPaddedLength,
  };
}
