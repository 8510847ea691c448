/**
 * The tiny-models command. Arguments are parsed strictly: any mistake prints one line and exits 2;
 * a failure while writing prints one line and exits 1.
 */
import { parseArgs } from 'node:util';
import { TINY_DTYPES, type TinyDtype } from './encode.js';
import { TinyModelError } from './errors.js';
import { FAMILIES } from './families/index.js';
import { DEFAULTS, TOKENIZER_MIN_VOCAB, type TinyModelOptions } from './options.js';
import { PRESETS } from './presets.js';
import { writeTinyModel, type TinyModelResult } from './write.js';

export interface CliIo {
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown };
}

/** Numeric flags and the option each sets. */
const NUMERIC = {
  hidden: 'hidden',
  layers: 'layers',
  heads: 'heads',
  'kv-heads': 'kvHeads',
  'head-dim': 'headDim',
  intermediate: 'intermediate',
  vocab: 'vocab',
  'max-positions': 'maxPositions',
  experts: 'experts',
  'experts-per-token': 'expertsPerToken',
  seed: 'seed',
  shards: 'shards',
} as const satisfies Record<string, keyof TinyModelOptions>;

export function helpText(): string {
  const width = Math.max(...[...FAMILIES.keys(), ...Object.keys(PRESETS)].map((n) => n.length)) + 2;
  const families = [...FAMILIES.values()].flatMap((f) => {
    const lines = [`  ${f.modelType.padEnd(width)}${f.summary}`];
    for (const [name, v] of Object.entries(f.variants ?? {})) {
      lines.push(`  ${''.padEnd(width)}  --variant ${name}${name === f.defaultVariant ? ' (default)' : ''}: ${v.summary}`);
    }
    return lines;
  });
  const presets = Object.entries(PRESETS).map(([name, p]) => `  ${name.padEnd(width)}${p.description}`);
  return [
    'Usage: tiny-models <family> <outdir> [options]',
    '       tiny-models --preset <name> <outdir> [options]',
    '',
    'Writes a synthetic Hugging Face checkpoint: config.json and generation_config.json as transformers',
    'writes them, safetensors weights with HF tensor names (random, deterministic from --seed), and a',
    `byte-level BPE tokenizer when the vocabulary has room (vocab >= ${TOKENIZER_MIN_VOCAB}).`,
    '',
    'Families (HF model_type):',
    ...families,
    '',
    'Presets (options given after a preset override it):',
    ...presets,
    '',
    'Options:',
    `  --hidden N              hidden size (default ${DEFAULTS.hidden})`,
    `  --layers N              decoder layers (default ${DEFAULTS.layers})`,
    `  --heads N               attention heads (default ${DEFAULTS.heads})`,
    `  --kv-heads N            key/value heads, for GQA families (default ${DEFAULTS.kvHeads})`,
    '  --head-dim N            head width other than hidden/heads (llama-layout families only)',
    `  --intermediate N        MLP width (default ${DEFAULTS.intermediate}; bloom, mpt, openai-gpt: always 4 x hidden)`,
    `  --vocab N               vocabulary size (default ${DEFAULTS.vocab})`,
    `  --max-positions N       maximum positions (default ${DEFAULTS.maxPositions})`,
    `  --experts N             routed experts, mixtral and qwen2_moe (default ${DEFAULTS.experts})`,
    `  --experts-per-token N   experts per token (default ${DEFAULTS.expertsPerToken})`,
    `  --dtype f32|f16|bf16    weight type (default f32)`,
    '  --seed N                random seed: same seed, same bytes (default 0)',
    '  --shards N              write N shard files and model.safetensors.index.json (default 1)',
    '  --variant V             family variant (falcon, gpt_bigcode; listed above)',
    '  --tie, --no-tie         tie the output projection to the embedding (default: the family default)',
    '  --no-tokenizer          write no tokenizer files',
    '  --json                  print the result as JSON instead of a one-line summary',
    '  --help                  show this help',
    '',
    'Examples:',
    '  tiny-models llama models/tiny-llama --layers 4 --dtype bf16',
    '  tiny-models falcon models/tiny-falcon --variant new_arch --heads 8 --kv-heads 2',
    '  tiny-models --preset bench-llama-134m models/bench134',
    '',
  ].join('\n');
}

function parseCount(flag: string, text: string): number {
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(Number(text))) {
    throw new TinyModelError(`--${flag} expects a whole number, got "${text}"`);
  }
  return Number(text);
}

/** Turn argv into an output folder and write options; throws TinyModelError on any mistake. */
export function parseCli(argv: readonly string[]): { help: true } | { help: false; dir: string; options: TinyModelOptions; json: boolean } {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      strict: true,
      options: {
        ...Object.fromEntries(Object.keys(NUMERIC).map((k) => [k, { type: 'string' as const }])),
        dtype: { type: 'string' },
        variant: { type: 'string' },
        preset: { type: 'string' },
        tie: { type: 'boolean' },
        'no-tie': { type: 'boolean' },
        'no-tokenizer': { type: 'boolean' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (cause) {
    throw new TinyModelError((cause as Error).message.split(/\.\s|\n/)[0]!);
  }
  const positionals = parsed.positionals;
  const values = parsed.values as Record<string, string | boolean | undefined>;
  if (values['help'] === true) return { help: true };

  const preset = typeof values['preset'] === 'string' ? values['preset'] : undefined;
  let base: TinyModelOptions;
  let dir: string | undefined;
  if (preset !== undefined) {
    const p = PRESETS[preset];
    if (p === undefined) throw new TinyModelError(`unknown preset "${preset}"; choose one of: ${Object.keys(PRESETS).join(', ')}`);
    if (positionals.length !== 1) throw new TinyModelError(`--preset takes one folder: tiny-models --preset ${preset} <outdir>, got ${positionals.length} arguments`);
    base = { ...p.options };
    dir = positionals[0];
  } else {
    if (positionals.length !== 2) {
      throw new TinyModelError(
        positionals.length < 2 ? 'expected a family and an output folder: tiny-models <family> <outdir>' : `expected 2 arguments (family, outdir), got ${positionals.length}: ${positionals.join(' ')}`,
      );
    }
    const family = positionals[0]!;
    if (!FAMILIES.has(family)) throw new TinyModelError(`unknown family "${family}"; choose one of: ${[...FAMILIES.keys()].join(', ')}`);
    base = { family };
    dir = positionals[1];
  }

  const options: TinyModelOptions = { ...base };
  for (const [flag, key] of Object.entries(NUMERIC)) {
    const text = values[flag];
    if (typeof text === 'string') (options as unknown as Record<string, number>)[key] = parseCount(flag, text);
  }
  const dtype = values['dtype'];
  if (typeof dtype === 'string') {
    if (!(TINY_DTYPES as readonly string[]).includes(dtype)) throw new TinyModelError(`--dtype must be one of ${TINY_DTYPES.join(', ')}, got "${dtype}"`);
    options.dtype = dtype as TinyDtype;
  }
  if (typeof values['variant'] === 'string') options.variant = values['variant'];
  if (values['tie'] === true && values['no-tie'] === true) throw new TinyModelError('--tie and --no-tie contradict each other');
  if (values['tie'] === true) options.tie = true;
  if (values['no-tie'] === true) options.tie = false;
  if (values['no-tokenizer'] === true) options.tokenizer = false;
  return { help: false, dir: dir!, options, json: values['json'] === true };
}

function human(n: number, units: readonly string[], step: number): string {
  let i = 0;
  while (n >= step && i < units.length - 1) {
    n /= step;
    i++;
  }
  return `${i === 0 ? n : n.toFixed(n >= 100 ? 0 : n >= 10 ? 1 : 2)}${units[i]}`;
}

export function summaryLine(r: TinyModelResult): string {
  const family = r.variant === undefined ? r.family : `${r.family} (${r.variant})`;
  const params = human(r.parameters, ['', 'K', 'M', 'B'], 1000);
  const bytes = human(r.bytes, [' B', ' kB', ' MB', ' GB'], 1000);
  return `${family}: ${params} params, ${r.tensorCount} tensors, ${r.dtype}, ${bytes} in ${r.files.length} files -> ${r.dir}`;
}

/** Run the command; resolves to the exit code. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  let parsed;
  try {
    parsed = parseCli(argv);
  } catch (error) {
    if (!(error instanceof TinyModelError)) throw error;
    io.stderr.write(`tiny-models: ${error.message} (see tiny-models --help)\n`);
    return 2;
  }
  if (parsed.help) {
    io.stdout.write(helpText());
    return 0;
  }
  try {
    const result = await writeTinyModel(parsed.dir, parsed.options);
    io.stdout.write(parsed.json ? `${JSON.stringify(result, null, 2)}\n` : `${summaryLine(result)}\n`);
    return 0;
  } catch (error) {
    if (error instanceof TinyModelError) {
      io.stderr.write(`tiny-models: ${error.message} (see tiny-models --help)\n`);
      return 2;
    }
    io.stderr.write(`tiny-models: could not write ${parsed.dir}: ${(error as Error).message.split('\n')[0]}\n`);
    return 1;
  }
}
