/**
 * The optional inputs of one attention call (backend interface version 3), checked at enqueue and
 * resolved to heap offsets: the additive bias (per head, or per sequence), the relative-position
 * tables with their index, and the scoring. Checking them here, once per call, keeps the per-row loop
 * of CpuRank.attention free of per-key checks.
 */
import { TpError, type AttentionSpec, type AttentionStep, type DeviceTensor } from '@tp/core';
import type { CpuTensor } from './tensor.js';

/** One relative table as the WebAssembly kernels read it: its offset, bytes per row and per head slice (0: shared). */
export interface RelativeTerm {
  at: number;
  rowBytes: number;
  headBytes: number;
}

export interface AttentionInputs {
  /** f32 [heads, rows, keys] or [batch, heads, rows, keys]; `perSequence` for the latter. */
  bias: { tensor: CpuTensor; perSequence: boolean } | undefined;
  /** The i32 [rows, keys] index's offset and the tables present (none under expectation scoring). */
  relative: { index: number; keys?: RelativeTerm; queries?: RelativeTerm; values?: RelativeTerm } | undefined;
  /** YOSO's expectation scoring with this many hash bits; undefined for softmax. */
  expectationBits: number | undefined;
}

const fail = (detail: string): never => {
  throw new TpError('kernel-invalid', `attention: ${detail}`);
};

const shapeText = (t: DeviceTensor) => `[${t.shape.join(', ')}]`;
const sameShape = (t: DeviceTensor, shape: readonly number[]) => t.shape.length === shape.length && t.shape.every((n, i) => n === shape[i]);

export function attentionInputs(step: AttentionStep, spec: AttentionSpec, keys: number): AttentionInputs {
  const { batch, rows } = step;
  const { heads } = spec;
  let bias: AttentionInputs['bias'];
  if (step.bias !== undefined) {
    const b = step.bias as CpuTensor;
    if (b.dtype !== 'f32') fail(`the bias must be f32, not ${b.dtype}`);
    const perHead = [heads, rows, keys];
    const perSequence = [batch, heads, rows, keys];
    if (sameShape(b, perHead)) bias = { tensor: b, perSequence: false };
    else if (sameShape(b, perSequence)) bias = { tensor: b, perSequence: true };
    else fail(`the bias ${shapeText(b)} is neither [heads, rows, keys] = [${perHead.join(', ')}] nor [batch, heads, rows, keys] = [${perSequence.join(', ')}]`);
  }

  let expectationBits: number | undefined;
  const scoring = spec.scoring ?? { kind: 'softmax' };
  if (scoring.kind === 'expectation') {
    if (!(Number.isFinite(scoring.bits) && scoring.bits >= 1)) fail(`expectation scoring needs bits ≥ 1 (the LSH hash code length), got ${scoring.bits}`);
    expectationBits = scoring.bits;
  } else if (scoring.kind !== 'softmax') {
    fail(`unknown scoring "${(scoring as { kind: string }).kind}" (softmax or expectation)`);
  }

  const tables = spec.relative ?? {};
  const present = (['keys', 'queries', 'values'] as const).filter((name) => tables[name] !== undefined);
  if (present.length === 0) return { bias, relative: undefined, expectationBits };
  const index = step.relativeIndex as CpuTensor | undefined;
  if (index === undefined) fail(`the relative ${present.join(', ')} table${present.length > 1 ? 's need' : ' needs'} step.relativeIndex (i32 [rows, keys] = [${rows}, ${keys}]); pass it with the step`);
  if (index!.dtype !== 'i32' || !sameShape(index!, [rows, keys])) fail(`the relative index ${shapeText(index!)} (${index!.dtype}) is not i32 [rows, keys] = [${rows}, ${keys}]`);
  let lo = 0;
  let hi = 0;
  const values = index!.ints();
  for (let i = 0; i < values.length; i++) {
    const r = values[i]!;
    if (r < lo) lo = r;
    if (r > hi) hi = r;
  }
  const relative: NonNullable<AttentionInputs['relative']> = { index: index!.offset };
  for (const name of present) {
    const t = tables[name] as CpuTensor;
    const width = name === 'values' ? spec.valueDim : spec.headDim;
    const dim = name === 'values' ? 'valueDim' : 'headDim';
    if (t.dtype !== 'f32') fail(`the relative ${name} table must be f32, not ${t.dtype}`);
    if (t.shape.length !== 2 || (t.shape[1] !== heads * width && t.shape[1] !== width)) {
      fail(`the relative ${name} table ${shapeText(t)} is neither [positions, heads·${dim}] = [positions, ${heads * width}] (one slice per head) nor [positions, ${dim}] = [positions, ${width}] (shared)`);
    }
    const positions = t.shape[0]!;
    if (values.length > 0 && (lo < 0 || hi >= positions)) fail(`relative index ${lo < 0 ? lo : hi} is outside the ${name} table's ${positions} positions [0, ${positions})`);
    const perHead = t.shape[1] === heads * width && heads > 1;
    relative[name] = { at: t.offset, rowBytes: t.shape[1]! * 4, headBytes: perHead ? width * 4 : 0 };
  }
  // Expectation scoring applies no relative term (the interface's AttentionSpec.scoring); the
  // tables were still checked, as bad input.
  return { bias, relative: expectationBits === undefined ? relative : undefined, expectationBits };
}
