/**
 * The key side of a batch's timeline, kept by each rank: which slots hold real tokens (left padding
 * does not) and each slot's position. The coordinator sends only the new slots of a step; the rank
 * appends them here and uploads the mask and positions sized to the slots so far — never to a
 * requested maximum.
 */
import { TpError } from '../errors/index.js';

export class StepTimeline {
  private batch = 0;
  private capacity = 0;
  private slots = 0;
  private maskRows = new Int32Array(0);
  private positionRows = new Int32Array(0);

  reset(batch: number): void {
    this.batch = batch;
    this.capacity = 0;
    this.slots = 0;
    this.maskRows = new Int32Array(0);
    this.positionRows = new Int32Array(0);
  }

  get length(): number {
    return this.slots;
  }

  /** Record slots [start, start + rows) of every sequence. */
  append(step: { batch: number; rows: number; start: number; keyMask: Int32Array; keyPositions: Int32Array }): void {
    if (step.batch !== this.batch) throw new TpError('invalid-argument', `the step has ${step.batch} sequences, the batch ${this.batch}`);
    if (step.start !== this.slots) throw new TpError('invalid-argument', `the step starts at slot ${step.start}, but ${this.slots} slots are filled`);
    if (step.keyMask.length !== step.batch * step.rows || step.keyPositions.length !== step.batch * step.rows) {
      throw new TpError('invalid-argument', `a step of ${step.batch} × ${step.rows} rows needs as many key-mask and key-position entries`);
    }
    const needed = step.start + step.rows;
    if (needed > this.capacity) this.grow(Math.max(needed, Math.ceil(this.capacity * 1.5), 64));
    for (let b = 0; b < step.batch; b++) {
      this.maskRows.set(step.keyMask.subarray(b * step.rows, (b + 1) * step.rows), b * this.capacity + step.start);
      this.positionRows.set(step.keyPositions.subarray(b * step.rows, (b + 1) * step.rows), b * this.capacity + step.start);
    }
    this.slots = needed;
  }

  /** Sequence b takes sequence order[b]'s slots (beam search reorders its beams). */
  reorder(order: Int32Array): void {
    if (order.length !== this.batch) throw new TpError('invalid-argument', `a reorder names ${order.length} sources for ${this.batch} sequences`);
    const bad = Array.from(order).find((s) => !Number.isInteger(s) || s < 0 || s >= this.batch);
    if (bad !== undefined) throw new TpError('invalid-argument', `source sequence ${bad} is outside the batch of ${this.batch}`);
    const gather = (rows: Int32Array) => {
      const out = new Int32Array(rows.length);
      for (let b = 0; b < this.batch; b++) out.set(rows.subarray(order[b]! * this.capacity, (order[b]! + 1) * this.capacity), b * this.capacity);
      return out;
    };
    this.maskRows = gather(this.maskRows);
    this.positionRows = gather(this.positionRows);
  }

  /** i32 [batch, length]: 1 where the slot holds a real token. */
  mask(): Int32Array {
    return this.compact(this.maskRows);
  }

  /** i32 [batch, length]: each slot's position. */
  positions(): Int32Array {
    return this.compact(this.positionRows);
  }

  private compact(rows: Int32Array): Int32Array {
    const out = new Int32Array(this.batch * this.slots);
    for (let b = 0; b < this.batch; b++) out.set(rows.subarray(b * this.capacity, b * this.capacity + this.slots), b * this.slots);
    return out;
  }

  private grow(capacity: number): void {
    const widen = (old: Int32Array) => {
      const out = new Int32Array(this.batch * capacity);
      for (let b = 0; b < this.batch; b++) out.set(old.subarray(b * this.capacity, b * this.capacity + this.slots), b * capacity);
      return out;
    };
    this.maskRows = widen(this.maskRows);
    this.positionRows = widen(this.positionRows);
    this.capacity = capacity;
  }
}
