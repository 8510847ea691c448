/**
 * What the WebGPU benchmark scripts share: `--name value` options taken out of the argument list,
 * the median, and the model folder (the one given, or the demo llama written to a temporary folder).
 */
import path from 'node:path';
import { PRESETS, writeTinyModel } from '@tp/tiny-models';

/** `option(name, fallback)` removes `--name value` from `args` and returns the value. */
export function optionReader(args) {
  return (name, fallback) => {
    const i = args.indexOf(`--${name}`);
    if (i < 0) return fallback;
    const [value] = args.splice(i, 2).slice(1);
    return value;
  };
}

export const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** The model folder to benchmark: `given`, or the demo llama (tools/tiny-models) written under `temp`. */
export async function benchModel(given, temp) {
  if (given !== undefined) return given;
  const dir = path.join(temp, 'demo-llama');
  await writeTinyModel(dir, PRESETS['demo-llama'].options);
  return dir;
}
