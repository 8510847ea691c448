/**
 * Geometry from config.json, normalised across families: every family names its widths differently
 * (`hidden_size`, `n_embd`, `d_model`...), the descriptor says which keys to try.
 */
import type { HfConfig } from '../checkpoint/index.js';
import { ConfigError, InternalError } from '../errors/index.js';
import type { AttentionKeys, ConfigReader, ConfigSource, FamilyDescriptor, KeySpec } from './descriptor.js';

export interface AttentionGeometry {
  heads: number;
  kvHeads: number;
  /** From config when it says; otherwise filled in from the projection shapes. */
  headDim: number | undefined;
}

export interface Geometry {
  hidden: number;
  layers: number;
  vocab: number;
  /** Rows of the stored embedding when larger than `vocab` (e.g. padded to a multiple of 64). */
  paddedVocab: number;
  intermediate: number | undefined;
  /** The main attention group's numbers (the `self` group, or the first one). */
  heads: number;
  kvHeads: number;
  headDim: number | undefined;
  attention: Record<string, AttentionGeometry>;
  experts: number | undefined;
  expertsPerToken: number | undefined;
}

export function createConfigReader(raw: HfConfig): ConfigReader {
  return makeReader(raw, undefined);
}

/** A reader; `onRead` sees every key read that has a value (to say which keys a derived number used). */
function makeReader(raw: HfConfig, onRead: ((path: string, value: unknown) => void) | undefined): ConfigReader {
  const lookup = (source: unknown, path: string): unknown => {
    let value: unknown = source;
    for (const part of path.split('.')) {
      if (typeof value !== 'object' || value === null) return undefined;
      value = (value as Record<string, unknown>)[part];
    }
    return value;
  };
  /** The value and the path it was found at. */
  const find = (path: string): { path: string; value: unknown } | undefined => {
    const direct = lookup(raw, path);
    if (direct !== undefined && direct !== null) return { path, value: direct };
    // Multimodal checkpoints nest the language model's numbers under text_config.
    const nested = lookup(raw, `text_config.${path}`);
    return nested === undefined || nested === null ? undefined : { path: `text_config.${path}`, value: nested };
  };
  const value = (path: string): unknown => {
    const found = find(path);
    if (found !== undefined) onRead?.(found.path, found.value);
    return found?.value;
  };
  const isNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
  const reader: ConfigReader = {
    raw,
    value,
    bool(path) {
      const v = value(path);
      return typeof v === 'boolean' ? v : undefined;
    },
    number(spec) {
      for (const key of spec) {
        const v = typeof key === 'number' ? key : typeof key === 'string' ? value(key) : key(reader);
        if (isNumber(v)) return v;
      }
      return undefined;
    },
    locate(spec) {
      for (const key of spec) {
        if (typeof key === 'number') return { key: FIXED_BY_CLASS, value: key, derived: false, constant: true };
        if (typeof key === 'string') {
          const found = find(key);
          if (found !== undefined && isNumber(found.value)) return { key: found.path, value: found.value, derived: false };
          continue;
        }
        const reads: Array<{ path: string; value: unknown }> = [];
        const v = key(makeReader(raw, (path, value) => reads.push({ path, value })));
        if (isNumber(v)) {
          const last = reads[reads.length - 1];
          return last !== undefined ? { key: last.path, value: last.value, derived: true } : { key: String(v), value: v, derived: true };
        }
      }
      return undefined;
    },
  };
  return reader;
}

/** The `key` of a ConfigSource whose number is a constant of the KeySpec (no config key sets it). */
export const FIXED_BY_CLASS = '(fixed by the model class)';

/** Key lists for model types tp has no descriptor for (DeepSpeed's list, plus the common aliases). */
export const GENERIC_KEYS = {
  hidden: ['hidden_size', 'n_embd', 'd_model', 'n_embed', 'emb_dim', 'dim', 'model_dim'],
  layers: ['num_hidden_layers', 'n_layer', 'n_layers', 'num_layers', 'encoder_layers'],
  vocab: ['vocab_size', 'padded_vocab_size', 'n_vocab'],
  intermediate: ['intermediate_size', 'ffn_hidden_size', 'n_inner', 'ffn_dim', 'd_ff', 'encoder_ffn_dim', 'feed_forward_size'],
  heads: ['num_attention_heads', 'n_head', 'n_heads', 'num_heads', 'attention_heads', 'encoder_attention_heads'],
  kvHeads: [
    'num_key_value_heads',
    'num_kv_heads',
    'multi_query_group_num',
    'attn_config.kv_n_heads',
    'n_head_kv',
    (c: ConfigReader) => (c.bool('multi_query') === true ? 1 : undefined),
  ],
  headDim: ['head_dim', 'kv_channels', 'd_kv', 'attention_head_size'],
} satisfies Record<string, KeySpec>;

/**
 * Where a geometry number came from, for errors that name the config key to fix. `keys` are the keys
 * the descriptor tries, in order; `key`/`value` the one that gave the number (or, when none did and a
 * default applied, the first of `keys` and undefined); `note` says how a default or derived number
 * was made.
 */
export interface GeometrySource extends ConfigSource {
  readonly keys: readonly string[];
  readonly note?: string;
}

export interface GeometrySources {
  hidden: GeometrySource;
  layers: GeometrySource;
  vocab: GeometrySource;
  intermediate: GeometrySource | undefined;
  attention: Record<string, { heads: GeometrySource; kvHeads: GeometrySource; headDim: GeometrySource | undefined }>;
}

const stringKeys = (spec: KeySpec | undefined): string[] => (spec ?? []).filter((k): k is string => typeof k === 'string');

/** The source of a spec's number, or undefined when the config does not set it. */
export function sourceOf(config: ConfigReader, spec: KeySpec | undefined): GeometrySource | undefined {
  if (spec === undefined) return undefined;
  const found = config.locate(spec);
  if (found === undefined) return undefined;
  const keys = stringKeys(spec);
  return {
    ...found,
    keys: keys.includes(found.key) || found.constant === true ? keys : [...keys, found.key],
    ...(found.derived ? { note: `derived from "${found.key}"${keys.length > 0 ? ` because ${keys.map((k) => `"${k}"`).join(', ')} ${keys.length === 1 ? 'is' : 'are'} not set` : ''}` } : {}),
  };
}

/** Where each geometry number comes from (`resolveGeometry` must have accepted the config). */
export function resolveGeometrySources(descriptor: FamilyDescriptor, config: ConfigReader): GeometrySources {
  const required = (spec: KeySpec): GeometrySource => sourceOf(config, spec) ?? { key: stringKeys(spec)[0] ?? '?', value: undefined, derived: true, keys: stringKeys(spec) };
  const attention: GeometrySources['attention'] = {};
  for (const [group, spec] of Object.entries(descriptor.attention) as Array<[string, AttentionKeys]>) {
    const heads = required(spec.heads);
    const kv = sourceOf(config, spec.kvHeads);
    const kvKeys = stringKeys(spec.kvHeads);
    const kvHeads: GeometrySource =
      kv ??
      (kvKeys.length === 0
        ? heads
        : { key: kvKeys[0]!, value: undefined, derived: true, keys: kvKeys, note: `it defaults to "${heads.key}"` });
    attention[group] = { heads, kvHeads, headDim: sourceOf(config, spec.headDim) };
  }
  return {
    hidden: required(descriptor.config.hidden),
    layers: required(descriptor.config.layers),
    vocab: required(descriptor.config.vocab),
    intermediate: sourceOf(config, descriptor.config.intermediate),
    attention,
  };
}

export function resolveGeometry(descriptor: FamilyDescriptor, config: ConfigReader, configPath: string): Geometry {
  const need = (what: string, spec: KeySpec): number => {
    const v = config.number(spec);
    if (v === undefined || !Number.isInteger(v) || v <= 0) {
      const keys = spec.filter((k): k is string => typeof k === 'string');
      throw new ConfigError('config-missing-key', {
        file: configPath,
        key: keys[0],
        detail:
          v === undefined
            ? `needs the ${what} of this ${descriptor.title} model, but none of ${keys.map((k) => `"${k}"`).join(', ')} is set. Add it to config.json`
            : `the ${what} must be a positive integer, found ${v}`,
      });
    }
    return v;
  };
  const optional = (spec: KeySpec | undefined) => (spec === undefined ? undefined : config.number(spec));

  const attention: Record<string, AttentionGeometry> = {};
  for (const [group, spec] of Object.entries(descriptor.attention) as Array<[string, AttentionKeys]>) {
    const heads = need(`number of attention heads${group === 'self' ? '' : ` (${group})`}`, spec.heads);
    const kvHeads = spec.kvHeads === undefined ? heads : (config.number(spec.kvHeads) ?? heads);
    if (!Number.isInteger(kvHeads) || kvHeads <= 0 || heads % kvHeads !== 0) {
      throw new ConfigError('config-invalid', {
        file: configPath,
        detail: `${heads} attention heads cannot be grouped over ${kvHeads} key/value heads (heads must be a multiple of kv heads)`,
      });
    }
    attention[group] = { heads, kvHeads, headDim: optional(spec.headDim) };
  }
  const main = attention['self'] ?? Object.values(attention)[0];
  if (main === undefined) throw new InternalError(`the ${descriptor.modelType} descriptor declares no attention group`);
  const vocab = need('vocabulary size', descriptor.config.vocab);
  return {
    hidden: need('hidden size', descriptor.config.hidden),
    layers: need('number of layers', descriptor.config.layers),
    vocab,
    paddedVocab: Math.max(vocab, optional(descriptor.config.paddedVocab) ?? vocab),
    intermediate: optional(descriptor.config.intermediate),
    heads: main.heads,
    kvHeads: main.kvHeads,
    headDim: main.headDim,
    attention,
    experts: optional(descriptor.config.experts),
    expertsPerToken: optional(descriptor.config.expertsPerToken),
  };
}
