/** Strict parsing of flag values: every mistake is a UsageError (one line, exit 2). */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError } from '../io.js';

type OptionsConfig = NonNullable<ParseArgsConfig['options']>;

/**
 * node:util parseArgs with tp's own words for every mistake: an unknown option, a value missing or
 * starting with "-", a value given to a switch. "--" ends the options (a prompt starting with "-" goes
 * after it).
 */
export function parseCommandLine<O extends OptionsConfig>(command: string, argv: string[], options: O) {
  try {
    return parseArgs({ args: argv, allowPositionals: true, strict: true, options });
  } catch (error) {
    throw usageFromParseError(command, argv, error);
  }
}

function usageFromParseError(command: string, argv: readonly string[], error: unknown): unknown {
  const code = (error as NodeJS.ErrnoException)?.code;
  const message = String((error as Error)?.message ?? error);
  if (typeof code !== 'string' || !code.startsWith('ERR_PARSE_ARGS')) return error;
  const long = message.match(/--[\w-]+/)?.[0];
  if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
    const name = message.match(/'([^']+)'/)?.[1] ?? '?';
    const flag = name.startsWith('--') ? name.split('=')[0]! : name;
    return new UsageError(`unknown option "${flag}" (see tp ${command} --help); an argument that starts with "-" (a prompt, a negative number) goes after "--", e.g. tp ${command} ./model -- "${name}..."`);
  }
  if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' && long !== undefined) {
    if (/argument missing/.test(message)) return new UsageError(`${long} needs a value, e.g. ${long} <value>`);
    if (/ambiguous/.test(message)) {
      const at = argv.indexOf(long);
      const next = at >= 0 ? argv[at + 1] : undefined;
      return new UsageError(`${long} needs a value${next !== undefined ? `, and "${next}" reads as an option` : ''}; write a value that starts with "-" as ${long}=${next ?? '-VALUE'}`);
    }
    if (/does not take an argument/.test(message)) return new UsageError(`${long} is a switch and takes no value`);
  }
  return new UsageError(`${command}: ${message.split('\n')[0]!.replace(/\.$/, '')}`);
}

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

/** "0,0,1" → [0, 0, 1]: device numbers (`tp devices`), one per rank; repeats allowed (ranks may share a device). */
export function parseDeviceList(text: string, flag: string): number[] {
  return text.split(',').map((p) => {
    const part = p.trim();
    if (!/^\d+$/.test(part) || !Number.isSafeInteger(Number(part))) throw new UsageError(`${flag} takes device numbers separated by commas, one per rank (e.g. 0,1 — see tp devices); "${part}" is not one`);
    return Number(part);
  });
}

/** "1,2,4" → [1, 2, 4]: positive integers, no repeats, in the order given. */
export function parsePositiveIntList(text: string, flag: string): number[] {
  const values = text.split(',').map((p) => parsePositiveInt(p.trim(), flag));
  if (new Set(values).size !== values.length) throw new UsageError(`${flag} lists a value twice: "${text}"`);
  return values;
}

/** One of `allowed`, case-insensitive: `--dtype BF16` is `bf16`. */
export function parseChoice<T extends string>(text: string, flag: string, allowed: readonly T[]): T {
  const value = text.trim().toLowerCase();
  if (!(allowed as readonly string[]).includes(value)) throw new UsageError(`${flag} must be one of ${allowed.join(', ')}, got "${text}"`);
  return value as T;
}

export const DTYPE_CHOICES = ['auto', 'f32', 'f16', 'bf16'] as const;
export const KV_DTYPE_CHOICES = ['f32', 'f16', 'bf16'] as const;
export type DtypeChoice = (typeof DTYPE_CHOICES)[number];
export type KvDtypeChoice = (typeof KV_DTYPE_CHOICES)[number];

/** `--dtype` and `--kv-dtype` as parseArgs descriptors (plan, run and logits). */
export const DTYPE_OPTIONS = {
  dtype: { type: 'string' },
  'kv-dtype': { type: 'string' },
} as const;

/** The help lines for `--dtype` and `--kv-dtype`. */
export const DTYPE_HELP = `  --dtype T           what the weights are stored as on each rank: auto (default: as stored in
                      the checkpoint, F64 as f32; widened to f32 where the backend cannot hold it),
                      f32, f16 or bf16. Activations and accumulation are always f32. bf16 weights
                      are never converted to f16 (a bf16 value can exceed f16's range)
  --kv-dtype T        what the KV cache is stored as: f32 (default), f16 or bf16`;

/** The values of `--dtype` and `--kv-dtype`, checked; undefined when not given. */
export function parseDtypeFlags(values: { dtype?: string | undefined; 'kv-dtype'?: string | undefined }): { dtype?: DtypeChoice; kvDtype?: KvDtypeChoice } {
  return {
    ...(values.dtype !== undefined ? { dtype: parseChoice(values.dtype, '--dtype', DTYPE_CHOICES) } : {}),
    ...(values['kv-dtype'] !== undefined ? { kvDtype: parseChoice(values['kv-dtype'], '--kv-dtype', KV_DTYPE_CHOICES) } : {}),
  };
}
