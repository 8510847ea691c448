/**
 * JSON the way Python's `json.dumps(value, indent=2, sort_keys=True)` writes it, which is how
 * transformers saves config.json, generation_config.json and the shard index. Two details differ from
 * `JSON.stringify`: keys are sorted, and a Python float keeps its decimal point (`10000.0`, `1e-06`),
 * so floats are marked with {@link float} and printed with Python's `repr` rules.
 */

/** A number that Python holds as a float. */
export class PyFloat {
  constructor(readonly value: number) {}
}

export const float = (value: number): PyFloat => new PyFloat(value);

export type PyJson =
  | null
  | boolean
  | number
  | string
  | PyFloat
  | readonly PyJson[]
  | ReadonlyMap<string, PyJson>
  | { readonly [key: string]: PyJson | undefined };

/** A JSON object whose undefined values are left out when written (a key HF would not save). */
export type PyObject = { readonly [key: string]: PyJson | undefined };

export interface JsonStyle {
  /** Sort object keys (Python's sort_keys=True). A Map always keeps its own order. Default true. */
  sortKeys?: boolean;
  /** Escape non-ASCII characters as \uXXXX (Python's ensure_ascii=True). Default true. */
  asciiOnly?: boolean;
  indent?: number;
}

/** Python's `repr(float)`: the shortest round-trip digits, fixed notation for 1e-4 <= |x| < 1e16. */
export function pythonFloatRepr(x: number): string {
  if (Number.isNaN(x)) return 'NaN';
  if (!Number.isFinite(x)) return x > 0 ? 'Infinity' : '-Infinity';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const sign = x < 0 ? '-' : '';
  const [mantissa, exponent] = Math.abs(x).toExponential().split('e') as [string, string];
  const digits = mantissa.replace('.', '');
  const exp = Number(exponent);
  if (exp < -4 || exp >= 16) {
    const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    return `${sign}${m}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
  }
  if (exp < 0) return `${sign}0.${'0'.repeat(-exp - 1)}${digits}`;
  const whole = digits.slice(0, exp + 1).padEnd(exp + 1, '0');
  const fraction = digits.slice(exp + 1);
  return `${sign}${whole}.${fraction.length > 0 ? fraction : '0'}`;
}

/**
 * Serialise like `json.dumps(value, indent=2, sort_keys=True)` (the defaults), or like the Rust
 * tokenizers' pretty printer with `{ sortKeys: false, asciiOnly: false }`. Keys whose value is
 * undefined are left out.
 */
export function toPythonJson(value: PyJson, style: JsonStyle = {}): string {
  const { sortKeys = true, asciiOnly = true, indent = 2 } = style;
  const quote = (text: string) => {
    const json = JSON.stringify(text);
    return asciiOnly ? json.replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`) : json;
  };
  const write = (v: PyJson, depth: number): string => {
    if (v === null) return 'null';
    if (v instanceof PyFloat) return pythonFloatRepr(v.value);
    switch (typeof v) {
      case 'boolean':
        return v ? 'true' : 'false';
      case 'number':
        return Number.isInteger(v) ? String(v) : pythonFloatRepr(v);
      case 'string':
        return quote(v);
    }
    const pad = ' '.repeat(indent * (depth + 1));
    const close = ' '.repeat(indent * depth);
    if (Array.isArray(v)) {
      if (v.length === 0) return '[]';
      return `[\n${v.map((item: PyJson) => pad + write(item, depth + 1)).join(',\n')}\n${close}]`;
    }
    let entries: Array<[string, PyJson | undefined]>;
    if (v instanceof Map) entries = [...(v as ReadonlyMap<string, PyJson>).entries()];
    else {
      entries = Object.entries(v as Record<string, PyJson | undefined>);
      if (sortKeys) entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    }
    entries = entries.filter((e) => e[1] !== undefined);
    if (entries.length === 0) return '{}';
    return `{\n${entries.map(([k, item]) => `${pad}${quote(k)}: ${write(item as PyJson, depth + 1)}`).join(',\n')}\n${close}}`;
  };
  return write(value, 0);
}
