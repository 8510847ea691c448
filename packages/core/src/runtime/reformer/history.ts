/**
 * What a cache-free engine keeps of a batch between steps: each sequence's real tokens so far (left
 * padding dropped), and for every timeline slot the index of its token among them. The coordinator
 * still sends only the new rows of a step; the engine re-runs each sequence whole from this.
 */
import { TpError } from '../../errors/index.js';

export class TokenHistory {
  private tokens: number[][] = [];
  /** slotIndex[b][slot]: the slot's index among sequence b's real tokens, or -1 for padding. */
  private slotIndex: number[][] = [];
  private slots = 0;

  reset(batch: number): void {
    this.tokens = Array.from({ length: batch }, () => []);
    this.slotIndex = Array.from({ length: batch }, () => []);
    this.slots = 0;
  }

  get batch(): number {
    return this.tokens.length;
  }

  /** Timeline slots filled so far. */
  get length(): number {
    return this.slots;
  }

  /** Sequence b's real tokens. */
  sequence(b: number): readonly number[] {
    return this.tokens[b]!;
  }

  /** The index among sequence b's real tokens of the token in `slot`, or -1 when the slot is padding. */
  indexOf(b: number, slot: number): number {
    return this.slotIndex[b]![slot] ?? -1;
  }

  /** Record slots [start, start + rows) of every sequence; padding (keyMask 0) is not a token. */
  append(step: { batch: number; rows: number; start: number; ids: Int32Array; keyMask: Int32Array }): void {
    if (step.batch !== this.batch) throw new TpError('invalid-argument', `the step has ${step.batch} sequences, the batch ${this.batch}`);
    if (step.start !== this.slots) throw new TpError('invalid-argument', `the step starts at slot ${step.start}, but ${this.slots} slots are filled`);
    if (step.ids.length !== step.batch * step.rows || step.keyMask.length !== step.batch * step.rows) {
      throw new TpError('invalid-argument', `a step of ${step.batch} × ${step.rows} rows needs as many ids and key-mask entries`);
    }
    for (let b = 0; b < step.batch; b++) {
      for (let t = 0; t < step.rows; t++) {
        const i = b * step.rows + t;
        const real = step.keyMask[i] !== 0;
        this.slotIndex[b]!.push(real ? this.tokens[b]!.length : -1);
        if (real) this.tokens[b]!.push(step.ids[i]!);
      }
    }
    this.slots += step.rows;
  }

  /** Sequence b continues what sequence order[b] held (beam search). */
  reorder(order: Int32Array): void {
    if (order.length !== this.batch) throw new TpError('invalid-argument', `a reorder names ${order.length} sources for ${this.batch} sequences`);
    const bad = Array.from(order).find((s) => !Number.isInteger(s) || s < 0 || s >= this.batch);
    if (bad !== undefined) throw new TpError('invalid-argument', `source sequence ${bad} is outside the batch of ${this.batch}`);
    this.tokens = Array.from(order, (s) => [...this.tokens[s]!]);
    this.slotIndex = Array.from(order, (s) => [...this.slotIndex[s]!]);
  }
}
