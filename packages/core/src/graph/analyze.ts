/**
 * Model-graph analysis: from a checkpoint's config and tensor headers to a role for every weight,
 * normalised geometry, the repeated blocks and the tied-embedding decision. Reads no weight bytes.
 */
import type { Checkpoint, Dtype } from '../checkpoint/index.js';
import { ConfigError, UnsupportedModelError } from '../errors/index.js';
import { createConfigReader, resolveGeometry, resolveGeometrySources, sourceOf, type Geometry, type GeometrySource } from './config.js';
import { checkConfigAgainstWeights } from './consistency.js';
import type { ConfigReader, FamilyDescriptor, LayoutKind, WeightRule } from './descriptor.js';
import { findFamily, genericDescriptor } from './families/index.js';
import { matchGeneric } from './generic.js';
import { compileSuffix, matchesSuffix } from './match.js';
import { isAttentionRole, type Role } from './roles.js';
import { blockOf, buildModuleTree, findBlockLists, type BlockList, type BlockRef, type ModuleNode } from './tree.js';

export interface WeightNode {
  readonly name: string;
  readonly shape: readonly number[];
  readonly dtype: Dtype;
  readonly byteLength: number;
  readonly role: Role;
  /** The parameter segment (`weight`, `bias`...), or the whole name for bare parameters. */
  readonly param: string;
  /** Which rule decided the role: `llama:self_attn.q_proj` or `generic:q`. */
  readonly rule: string;
  readonly attention: string | undefined;
  readonly layout: LayoutKind | undefined;
  readonly transposed: boolean;
  readonly headAxis: number | undefined;
  readonly block: BlockRef | undefined;
  /** Weights that must agree on one split share a group: `model.layers.3/attn:self`. */
  readonly group: string;
  readonly expert: number | undefined;
  /** What the engine uses it for (norm slots, side projections), from the descriptor. */
  readonly slot: string | undefined;
  /**
   * The width it reads (producers) or writes (consumers) in place of the hidden size — the rule's
   * `width`, resolved — and the config key that gave it; undefined for hidden-width weights.
   */
  readonly width: WeightWidth | undefined;
  readonly note: string | undefined;
}

export interface WeightWidth {
  readonly size: number;
  readonly source: GeometrySource;
}

export interface LmHeadInfo {
  /** The stored output projection, when untied. */
  readonly tensor: string | undefined;
  /** True when the output projection reuses the input embedding. */
  readonly tied: boolean;
  /** The embedding it is tied to. */
  readonly embed: string | undefined;
}

export interface ModelGraph {
  readonly modelType: string;
  /** The descriptor used (`generic` for unknown model types). */
  readonly family: string;
  readonly title: string;
  readonly kind: FamilyDescriptor['kind'];
  readonly architectures: readonly string[];
  readonly descriptor: FamilyDescriptor;
  readonly geometry: Geometry;
  readonly weights: readonly WeightNode[];
  readonly blocks: readonly BlockList[];
  readonly tree: ModuleNode;
  readonly lmHead: LmHeadInfo | undefined;
  /** The dtype holding most bytes. */
  readonly dtype: Dtype;
  readonly totalBytes: number;
  readonly warnings: readonly string[];
  readonly notes: readonly string[];
}

const HEAD_CLASS = /(ForCausalLM|LMHeadModel|LMHead|ForMaskedLM|ForConditionalGeneration|MTModel|WithLMHeadModel|ForPreTraining)$/;

export function analyzeModel(ckpt: Checkpoint): ModelGraph {
  const config = createConfigReader(ckpt.config);
  const modelType = config.value('model_type');
  if (typeof modelType !== 'string' || modelType.length === 0) {
    throw new ConfigError('config-missing-key', {
      file: ckpt.configPath,
      key: 'model_type',
      detail: 'has no "model_type"; tp needs it to know the architecture. Add it (e.g. "llama") to config.json',
    });
  }
  const known = findFamily(modelType);
  if (known?.refuse !== undefined) {
    throw new UnsupportedModelError({ modelType, reason: known.refuse.reason, ...(known.refuse.hint ? { hint: known.refuse.hint } : {}) });
  }
  const descriptor = known ?? genericDescriptor(modelType, config);
  const geometry = resolveGeometry(descriptor, config, ckpt.configPath);
  const warnings: string[] = [...(ckpt.warnings ?? [])];
  const rules = descriptor.weights.map((rule) => ({ rule, pattern: compileSuffix(rule.match) }));
  // Resolved when a tensor first takes the rule: a rule nothing matches needs no key.
  const widths = new Map<WeightRule, WeightWidth | undefined>();
  const widthOf = (rule: WeightRule) => {
    if (!widths.has(rule)) widths.set(rule, ruleWidth(descriptor, rule, config, ckpt.configPath));
    return widths.get(rule);
  };

  const names = [...ckpt.tensors.keys()].sort();
  const moduleShape = new Map<string, readonly number[]>();
  for (const name of names) {
    if (name.endsWith('.weight')) moduleShape.set(name.slice(0, -'.weight'.length), ckpt.tensors.get(name)!.shape);
  }

  const weights: WeightNode[] = [];
  for (const name of names) {
    const info = ckpt.tensors.get(name)!;
    const segments = name.split('.');
    const modulePath = segments.slice(0, -1).join('.');
    const block = blockOf(name);
    let chosen: { rule: WeightRule; bare: boolean } | undefined;
    for (const { rule, pattern } of rules) {
      if (segments.length > 1 && matchesSuffix(pattern, segments.slice(0, -1))) {
        chosen = { rule, bare: false };
        break;
      }
      if (matchesSuffix(pattern, segments)) {
        chosen = { rule, bare: true };
        break;
      }
    }
    let role: Role;
    let ruleName: string;
    let rule: WeightRule | undefined;
    if (chosen !== undefined) {
      rule = chosen.rule;
      role = rule.role;
      ruleName = `${descriptor.modelType}:${rule.match}`;
    } else {
      const shape = moduleShape.get(modulePath) ?? info.shape;
      const generic = matchGeneric(modulePath, shape, {
        hidden: geometry.hidden,
        vocab: geometry.vocab,
        experts: geometry.experts,
        inBlock: block !== undefined,
      });
      role = generic?.role ?? 'other';
      ruleName = generic ? `generic:${generic.id}` : 'generic:replicate-unknown';
      if (known !== undefined && generic === undefined) {
        warnings.push(`${name}: no ${descriptor.title} rule matches this tensor; it is replicated`);
      }
    }
    const expert = expertIndex(block?.relative ?? name);
    const groupName = rule?.group ?? (isAttentionRole(role) ? `attn:${rule?.attention ?? 'self'}` : 'mlp');
    weights.push({
      name,
      shape: info.shape,
      dtype: info.dtype,
      byteLength: info.byteLength,
      role,
      param: chosen?.bare === true || segments.length === 1 ? name : segments[segments.length - 1]!,
      rule: ruleName,
      attention: isAttentionRole(role) ? (rule?.attention ?? 'self') : undefined,
      layout: typeof rule?.layout === 'function' ? rule.layout(config) : rule?.layout,
      transposed: rule?.transposed ?? false,
      headAxis: rule?.headAxis,
      block,
      group: `${block ? `${block.list}.${block.index}` : ''}/${groupName}${expert !== undefined && !groupName.includes(':expert') ? `:expert${expert}` : ''}`,
      expert,
      slot: rule?.slot,
      width: rule === undefined ? undefined : widthOf(rule),
      note: rule?.note,
    });
  }

  fillHeadDims(geometry, weights);
  const blocks = findBlockLists(names);
  checkConfigAgainstWeights({
    descriptor,
    config,
    file: ckpt.configPath,
    geometry,
    sources: resolveGeometrySources(descriptor, config),
    weights,
    blocks,
    generic: known === undefined,
    featureAxis: (w, side) => featureAxis(w as WeightNode, side),
  });
  const lmHead = findLmHead(descriptor, config.raw, weights);
  const byDtype = new Map<Dtype, number>();
  let totalBytes = 0;
  for (const w of weights) {
    byDtype.set(w.dtype, (byDtype.get(w.dtype) ?? 0) + w.byteLength);
    totalBytes += w.byteLength;
  }
  const dtype = [...byDtype.entries()].sort((a, b) => b[1] - a[1])[0]?.[0] ?? 'F32';
  const architectures = Array.isArray(config.raw['architectures']) ? (config.raw['architectures'] as unknown[]).filter((a): a is string => typeof a === 'string') : [];
  return {
    modelType,
    family: known ? descriptor.modelType : 'generic',
    title: descriptor.title,
    kind: descriptor.kind,
    architectures,
    descriptor,
    geometry,
    weights,
    blocks,
    tree: buildModuleTree(names),
    lmHead,
    dtype,
    totalBytes,
    warnings,
    notes: [...(descriptor.notes ?? []), ...(known ? [] : [`model_type "${modelType}" has no descriptor: roles come from tp's generic name and shape rules`])],
  };
}

/** A rule's `width`, from config.json; a rule that declares one needs its key set to a positive integer. */
function ruleWidth(descriptor: FamilyDescriptor, rule: WeightRule, config: ConfigReader, configPath: string): WeightWidth | undefined {
  if (rule.width === undefined) return undefined;
  const source = sourceOf(config, rule.width);
  const size = config.number(rule.width);
  if (source === undefined || size === undefined) {
    const keys = rule.width.filter((k): k is string => typeof k === 'string');
    throw new ConfigError('config-missing-key', {
      file: configPath,
      key: keys[0],
      detail: `needs the width that ${descriptor.title}'s "${rule.match}" reads or writes, but none of ${keys.map((k) => `"${k}"`).join(', ')} is set. Add it to config.json`,
    });
  }
  if (!Number.isInteger(size) || size <= 0) {
    throw new ConfigError('config-invalid', { file: configPath, key: source.key, detail: `"${source.key}" (the width ${descriptor.title}'s "${rule.match}" reads or writes) must be a positive integer, found ${size}` });
  }
  return { size, source };
}

function expertIndex(relative: string): number | undefined {
  const m = /(?:^|\.)experts\.(\d+)\./.exec(relative);
  return m ? Number(m[1]) : undefined;
}

/** The stored dimension that holds output features (column) or input features (row). */
export function featureAxis(w: Pick<WeightNode, 'role' | 'transposed' | 'shape' | 'param'>, side: 'out' | 'in'): number {
  if (w.shape.length === 1) return 0;
  if (w.shape.length === 3 && w.role.startsWith('moe.expert.')) return side === 'out' ? 1 : 2;
  const outAxis = w.transposed ? 1 : 0;
  return side === 'out' ? outAxis : 1 - outAxis;
}

function firstWeight(weights: readonly WeightNode[], role: Role, attention: string): WeightNode | undefined {
  return weights.find((w) => w.role === role && w.attention === attention && w.param === 'weight' && w.headAxis === undefined);
}

/** Head widths the config does not state come from the query projection's shape. */
function fillHeadDims(geometry: Geometry, weights: readonly WeightNode[]) {
  for (const [group, g] of Object.entries(geometry.attention)) {
    if (g.headDim !== undefined) continue;
    const q = firstWeight(weights, 'attn.q', group) ?? firstWeight(weights, 'attn.qk', group);
    if (q !== undefined) {
      const size = q.shape[featureAxis(q, 'out')]!;
      if (size % g.heads === 0) g.headDim = size / g.heads;
    } else {
      const qkv = firstWeight(weights, 'attn.qkv', group);
      if (qkv !== undefined) {
        const size = qkv.shape[featureAxis(qkv, 'out')]!;
        const parts = g.heads + 2 * g.kvHeads;
        if (size % parts === 0) g.headDim = size / parts;
      }
    }
  }
  const main = geometry.attention['self'] ?? Object.values(geometry.attention)[0];
  geometry.headDim = main?.headDim;
}

function findLmHead(descriptor: FamilyDescriptor, raw: Record<string, unknown>, weights: readonly WeightNode[]): LmHeadInfo | undefined {
  const stored = weights.find((w) => w.role === 'lm_head' && w.shape.length === 2);
  const embed = weights.find((w) => w.role === 'embed' && w.shape.length === 2)?.name;
  if (stored !== undefined) {
    return descriptor.lmHeadIsEmbedding === true
      ? { tensor: stored.name, tied: true, embed: stored.name }
      : { tensor: stored.name, tied: false, embed: undefined };
  }
  const headBias = weights.some((w) => w.role === 'lm_head' || w.role === 'vocab_bias');
  const architectures = Array.isArray(raw['architectures']) ? (raw['architectures'] as unknown[]).map(String) : [];
  let hasHead: boolean;
  if (headBias) hasHead = true;
  else if (descriptor.hasLmHead === false) hasHead = false;
  else if (architectures.length > 0) hasHead = architectures.some((a) => HEAD_CLASS.test(a));
  else hasHead = (typeof raw['tie_word_embeddings'] === 'boolean' ? raw['tie_word_embeddings'] : descriptor.tieDefault) as boolean;
  if (!hasHead || embed === undefined) return undefined;
  return { tensor: undefined, tied: true, embed };
}
