/** Strict parsing of flag values: every mistake is a UsageError (one line, exit 2). */
import { UsageError } from '../io.js';

export function parsePositiveInt(text: string, flag: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(n) || n < 1) throw new UsageError(`${flag} must be a positive integer, got "${text}"`);
  return n;
}

export function parseNonNegativeInt(text: string, flag: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(n)) throw new UsageError(`${flag} must be a non-negative integer, got "${text}"`);
  return n;
}

/** A finite number in [min, max] (inclusive unless `exclusiveMin`). */
export function parseNumber(text: string, flag: string, range: { min: number; max?: number; exclusiveMin?: boolean }): number {
  const n = Number(text);
  const belowMin = range.exclusiveMin ? n <= range.min : n < range.min;
  if (text.trim() === '' || !Number.isFinite(n) || belowMin || (range.max !== undefined && n > range.max)) {
    const bounds = `${range.exclusiveMin ? 'above' : 'at least'} ${range.min}${range.max !== undefined ? ` and at most ${range.max}` : ''}`;
    throw new UsageError(`${flag} must be a number ${bounds}, got "${text}"`);
  }
  return n;
}

/** "1,2,3" → [1, 2, 3]: non-negative integers separated by commas (spaces allowed). */
export function parseTokenList(text: string, flag: string): number[] {
  const parts = text.split(',').map((p) => p.trim());
  if (parts.length === 0 || parts.every((p) => p === '')) throw new UsageError(`${flag} needs at least one token id, e.g. ${flag} 1,2,3`);
  return parts.map((p) => {
    if (!/^\d+$/.test(p) || !Number.isSafeInteger(Number(p))) throw new UsageError(`${flag} takes token ids separated by commas (e.g. 1,2,3); "${p}" is not a token id`);
    return Number(p);
  });
}

/** "1,2,4" → [1, 2, 4]: positive integers, no repeats, in the order given. */
export function parsePositiveIntList(text: string, flag: string): number[] {
  const values = text.split(',').map((p) => parsePositiveInt(p.trim(), flag));
  if (new Set(values).size !== values.length) throw new UsageError(`${flag} lists a value twice: "${text}"`);
  return values;
}
