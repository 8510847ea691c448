/**
 * The first step of a batch, as the coordinator builds it from token ids: a causal model's prompts
 * (left-padded), an encoder's inputs and an encoder–decoder's source (right-padded), and decoder
 * inputs (right-padded). Padding is masked out of the keys.
 */
import { ArgumentError } from '../errors/index.js';
import type { EncoderSpec } from '../graph/index.js';
import type { StepInput } from './engine.js';

/**
 * An encoder batch, right-padded (as BERT tokenizers pad) with the padding masked. Positions count
 * the real tokens before each one (RoBERTa adds padding_idx + 1 in the engine); padding takes the
 * family's pad position.
 */
export function encoderBatch(items: ReadonlyArray<{ tokens: readonly number[]; tokenTypes?: readonly number[] | undefined }>, spec: EncoderSpec, typeVocab = 1): Omit<StepInput, 'logits'> {
  const rows = Math.max(...items.map((i) => i.tokens.length));
  const batch = items.length;
  const ids = new Int32Array(batch * rows);
  const positions = new Int32Array(batch * rows);
  const keyMask = new Int32Array(batch * rows);
  const tokenTypes = new Int32Array(batch * rows);
  items.forEach((item, b) => {
    for (let t = 0; t < rows; t++) {
      const i = b * rows + t;
      const real = t < item.tokens.length;
      ids[i] = real ? item.tokens[t]! : (spec.padTokenId ?? 0);
      positions[i] = real ? t : (spec.padPosition ?? t);
      keyMask[i] = real ? 1 : 0;
      const type = real ? (item.tokenTypes?.[t] ?? 0) : 0;
      if (!Number.isInteger(type) || type < 0 || type >= typeVocab) {
        throw new ArgumentError({ argument: 'tokenTypes', detail: `token type ${type} is outside the model's ${typeVocab} segment type${typeVocab === 1 ? '' : 's'} (0 to ${typeVocab - 1})` });
      }
      tokenTypes[i] = type;
    }
  });
  return { ids, positions, batch, rows, start: 0, keyMask, keyPositions: new Int32Array(batch * rows), tokenTypes };
}

/**
 * Causal prompts left-padded to the longest, with padding masked out (and given position 1, as
 * transformers does).
 */
export function promptBatch(sequences: ReadonlyArray<readonly number[]>, padId: number): Omit<StepInput, 'logits'> {
  const rows = Math.max(...sequences.map((s) => s.length));
  const batch = sequences.length;
  const ids = new Int32Array(batch * rows);
  const positions = new Int32Array(batch * rows);
  const keyMask = new Int32Array(batch * rows);
  const keyPositions = new Int32Array(batch * rows);
  sequences.forEach((seq, b) => {
    const pad = rows - seq.length;
    for (let t = 0; t < rows; t++) {
      const real = t >= pad;
      ids[b * rows + t] = real ? seq[t - pad]! : padId;
      positions[b * rows + t] = real ? t - pad : 1;
      keyMask[b * rows + t] = real ? 1 : 0;
      keyPositions[b * rows + t] = real ? t - pad : 0;
    }
  });
  return { ids, positions, batch, rows, start: 0, keyMask, keyPositions };
}

/** Decoder inputs right-padded: under the causal mask a real row never sees the padding after it. */
export function decoderBatch(decoder: ReadonlyArray<readonly number[]>, padId: number): Omit<StepInput, 'logits'> {
  const rows = Math.max(...decoder.map((d) => d.length));
  const batch = decoder.length;
  const ids = new Int32Array(batch * rows);
  const positions = new Int32Array(batch * rows);
  const keyMask = new Int32Array(batch * rows);
  decoder.forEach((tokens, b) => {
    for (let t = 0; t < rows; t++) {
      ids[b * rows + t] = tokens[t] ?? padId;
      positions[b * rows + t] = t;
      keyMask[b * rows + t] = t < tokens.length ? 1 : 0;
    }
  });
  return { ids, positions, batch, rows, start: 0, keyMask, keyPositions: positions };
}
