/** The Python-compatible JSON writer: float repr and json.dumps(indent=2, sort_keys=True) layout. */
import { describe, expect, it } from 'vitest';
import { float, pythonFloatRepr, toPythonJson, type PyJson } from '../src/index.js';

describe('pythonFloatRepr matches Python repr(float)', () => {
  it.each([
    [1e-6, '1e-06'],
    [1e-5, '1e-05'],
    [0.02, '0.02'],
    [10000, '10000.0'],
    [1e6, '1000000.0'],
    [1e16, '1e+16'],
    [1e15, '1000000000000000.0'],
    [0.0001, '0.0001'],
    [123.456, '123.456'],
    [-0.5, '-0.5'],
    [2.5e-7, '2.5e-07'],
    [0, '0.0'],
    [-0, '-0.0'],
    [3.4e38, '3.4e+38'],
    [5e-324, '5e-324'],
    [1 / 3, '0.3333333333333333'],
    [12345678901234567, '1.2345678901234568e+16'],
  ])('%s → %s', (value, repr) => {
    expect(pythonFloatRepr(value)).toBe(repr);
  });
});

describe('toPythonJson', () => {
  it('sorts keys, indents by two, writes empty containers inline and escapes non-ASCII', () => {
    const text = toPythonJson({ b: [1, [2, []], {}], a: { z: null, y: true }, _k: 1.5, B: 'é', skipped: undefined });
    expect(text).toBe(
      ['{', '  "B": "\\u00e9",', '  "_k": 1.5,', '  "a": {', '    "y": true,', '    "z": null', '  },', '  "b": [', '    1,', '    [', '      2,', '      []', '    ],', '    {}', '  ]', '}'].join('\n'),
    );
  });

  it('keeps the decimal point of floats that hold whole numbers, and integers as integers', () => {
    expect(toPythonJson({ rope_theta: float(10000), n: 10000, eps: float(1e-6), p: 0.25 })).toBe(
      '{\n  "eps": 1e-06,\n  "n": 10000,\n  "p": 0.25,\n  "rope_theta": 10000.0\n}',
    );
  });

  it('keeps insertion and Map order and raw UTF-8 in the tokenizers style', () => {
    const text = toPythonJson(new Map<string, PyJson>([['z', 1], ['a', { y: 'Ġ', x: 2 }]]), { sortKeys: false, asciiOnly: false });
    expect(text).toBe('{\n  "z": 1,\n  "a": {\n    "y": "Ġ",\n    "x": 2\n  }\n}');
  });
});
