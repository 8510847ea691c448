/** Float32 values as JSON text: the shortest decimal that reads back as the same float32. */

/** Shortest decimal form of a float32 value (given as a number); null for NaN and ±Infinity. */
export function float32Text(value: number): string {
  if (!Number.isFinite(value)) return 'null';
  if (value === 0) return Object.is(value, -0) ? '-0' : '0';
  for (let digits = 1; digits < 9; digits++) {
    const n = Number(value.toPrecision(digits));
    if (Math.fround(n) === value) return String(n);
  }
  return String(Number(value.toPrecision(9)));
}

/** A JSON array of float32 values. */
export function float32ArrayJson(values: ArrayLike<number>): string {
  const parts = new Array<string>(values.length);
  for (let i = 0; i < values.length; i++) parts[i] = float32Text(values[i]!);
  return `[${parts.join(',')}]`;
}
