#!/usr/bin/env node
/**
 * pnpm bench:cpu — the CPU benchmark, reproducibly:
 *   1. write the synthetic 134M-parameter llama (tools/tiny-models preset bench-llama-134m; with
 *      --model bert the BERT-base-shaped encoder bench-bert-110m, with --model t5 the T5-small-shaped
 *      encoder–decoder bench-t5-83m) into
 *      .cache/models/bench-llama-134m, or reuse it when it is already there; with --dtype bf16 or f16 the
 *      same preset written in that type (the same random values, rounded to nearest even) into
 *      .cache/models/bench-llama-134m-bf16 or -f16 — the folders tools/compare-llamacpp uses too;
 *   2. run `tp bench` on it at TP=1 and TP=2 (prompt 16 tokens, 64 new tokens, median of 3 runs); when
 *      `tp bench --help` lists a --dtype option, tp gets `--dtype auto` (weights kept as stored);
 *   3. write the table, the machine and the exact command to bench/results/cpu-<date>.md (f32) or
 *      cpu-<dtype>-<date>.md (bf16, f16) and the JSON lines to the .jsonl beside it.
 *
 *   pnpm bench:cpu [--model llama|bert|t5] [--dtype f32|bf16|f16|all] [tp bench options...]
 *
 * --model (default llama) picks the model and its lengths (bert: one forward of 128 tokens per
 * sequence; t5: a 64-token source, 32 new tokens); --dtype (default f32; all: f32, bf16 and f16 one
 * after the other) picks the checkpoint variant; every other argument is passed to `tp bench` (e.g.
 * pnpm bench:cpu --runs 5). Results: bench/results/cpu[-bert|-t5][-dtype]-<date>.{md,jsonl,svg}.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describeBenchCells, describeMachine, machineInfo, renderBenchChart, renderBenchReport } from '@tp/cli';
import { DTYPE_INFO, PRESETS, writeTinyModel } from '@tp/tiny-models';

/** The benchmark models: a causal LM, an encoder and an encoder–decoder, each with the lengths it is measured at. */
const MODELS = {
  llama: { preset: 'bench-llama-134m', lengths: ['--prompt', '16', '--new', '64'], results: 'cpu' },
  bert: { preset: 'bench-bert-110m', lengths: ['--prompt', '128'], results: 'cpu-bert' },
  t5: { preset: 'bench-t5-83m', lengths: ['--prompt', '64', '--new', '32'], results: 'cpu-t5' },
};
const DTYPES = ['f32', 'bf16', 'f16'];
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const resultsDir = path.join(root, 'bench', 'results');
const bin = path.join(root, 'packages', 'cli', 'dist', 'bin.js');
const rel = (p) => path.relative(root, p);
const say = (text) => console.error(`bench:cpu: ${text}`);
/** f32: the preset's own folder; bf16/f16: a folder of its own, the same model rounded. */
const modelDirFor = (dtype) => path.join(root, '.cache', 'models', dtype === 'f32' ? PRESET : `${PRESET}-${dtype}`);

// --model and --dtype are ours; everything else goes to tp bench.
const passThrough = [];
let dtypeText;
let modelName = 'llama';
for (let i = 2; i < process.argv.length; i++) {
  const arg = process.argv[i];
  if (arg === '--model') modelName = process.argv[++i] ?? '';
  else if (arg === '--dtype') {
    dtypeText = process.argv[++i];
    if (dtypeText === undefined) {
      say('--dtype needs a value: f32, bf16, f16 or all');
      process.exit(2);
    }
  } else if (arg.startsWith('--dtype=')) dtypeText = arg.slice('--dtype='.length);
  else passThrough.push(arg);
}
const model = MODELS[modelName];
if (model === undefined) {
  say(`--model must be one of ${Object.keys(MODELS).join(', ')}, got "${modelName}"`);
  process.exit(2);
}
const PRESET = model.preset;
const dtypeValue = (dtypeText ?? 'f32').toLowerCase();
if (dtypeValue !== 'all' && !DTYPES.includes(dtypeValue)) {
  say(`--dtype must be f32, bf16, f16 or all, got ${dtypeText}`);
  process.exit(2);
}
const dtypes = dtypeValue === 'all' ? DTYPES : [dtypeValue];

// tp's own weight-type option, when this build of tp has one: keep the weights as they are stored.
const tpHelp = execFileSync(process.execPath, [bin, 'bench', '--help'], { cwd: root, encoding: 'utf8' });
const tpDtypeArgs = /(^|\s)--dtype\b/m.test(tpHelp) ? ['--dtype', 'auto'] : [];

/** What the columns of a causal LM's or an encoder–decoder's table mean. */
const GENERATE_NOTES = (results) => `- load s: wall time of \`initInference\` (plan, start one worker per rank, each rank reads its share of the weights).
- prefill ms: time to the first generated token, i.e. a forward over the ${results[0]?.prompt_tokens ?? 16}-token random prompts of the batch (an encoder–decoder: the encoder, then the first decoder step).
- decode ms/token: per sequence, the median (and p90) of the decode steps, prefill excluded (greedy, no early stop).
- tokens/s: generated tokens per second over the whole batch (and per rank).
- GB/s: bytes of weights each rank reads per decode step plus the KV cache read, ÷ the median step time; share: of the machine's read bandwidth measured at the start of the run (an encoder–decoder's step reads the decoder's weights, its self-attention cache and the cross-attention cache over the source).
- FLOP/s: 2 × parameters used per token × tokens ÷ time (attention's q·k and value mix not counted).`;

/** What the columns of an encoder's table mean. */
const ENCODE_NOTES = (results) => `- load s: wall time of \`initInference\` (plan, start one worker per rank, each rank reads its share of the weights).
- forward ms: one forward of the batch's ${results[0]?.prompt_tokens ?? 128}-token random inputs (last hidden state and masked-LM logits), median (and p90) of the runs.
- tokens/s: tokens encoded per second, batch × ${results[0]?.prompt_tokens ?? 128} ÷ forward time, over the whole batch (and per rank).
- GB/s: bytes of weights each rank reads per forward ÷ the forward time; share: of the machine's read bandwidth measured at the start of the run.
- FLOP/s: 2 × parameters used per token × batch × ${results[0]?.prompt_tokens ?? 128} ÷ forward time (attention's q·k and value mix not counted).`;

/** The weight type a written checkpoint declares in its config.json. */
function storedDtype(dir) {
  try {
    const config = JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8'));
    const torch = config.dtype ?? config.torch_dtype;
    return DTYPES.find((d) => DTYPE_INFO[d].torch === torch);
  } catch {
    return undefined;
  }
}

/**
 * 1. The model, written once. Written beside its final place and renamed, so an interrupted write never
 *    leaves a half-written model to be reused.
 */
async function ensureModel(dtype) {
  const modelDir = modelDirFor(dtype);
  if (existsSync(path.join(modelDir, 'model.safetensors')) && storedDtype(modelDir) === dtype) {
    say(`reusing ${rel(modelDir)}`);
    return;
  }
  const preset = PRESETS[PRESET];
  say(`writing ${PRESET} (${dtype === 'f32' ? preset.description : `the same preset with dtype ${dtype}: the f32 values rounded to nearest even`}) to ${rel(modelDir)} (once; later runs reuse it)`);
  const started = performance.now();
  const temp = `${modelDir}.partial-${process.pid}`;
  await rm(temp, { recursive: true, force: true });
  const written = await writeTinyModel(temp, { ...preset.options, dtype });
  await rm(modelDir, { recursive: true, force: true });
  await rename(temp, modelDir);
  say(`wrote ${(written.parameters / 1e6).toFixed(1)}M parameters, ${(written.bytes / 1e6).toFixed(0)} MB in ${((performance.now() - started) / 1000).toFixed(1)} s`);
}

/** 2. and 3. for one weight type; returns the table. */
async function benchOne(dtype) {
  await ensureModel(dtype);
  const modelDir = modelDirFor(dtype);
  // tp bench, as a user would run it. Its progress (stderr) is shown as it comes; stdout is JSON lines.
  const args = ['bench', rel(modelDir), '--tp', '1,2', '--batch', '1,4,16', '--backend', 'cpu', ...model.lengths, ...tpDtypeArgs, ...passThrough, '--json'];
  const command = `node ${rel(bin)} ${args.join(' ')}`;
  say(`running: ${command}`);
  say('this loads the model once per tp size and runs 1 warm-up + 3 timed generations per (tp, batch) cell; several minutes on a small machine');
  const started = performance.now();
  const stdout = await new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
    let text = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk) => {
      text += chunk;
    });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(text) : reject(new Error(`tp bench exited with code ${code}`))));
  }).catch((error) => {
    say(`failed: ${error.message}`);
    process.exit(1);
  });
  const lines = stdout.split('\n').filter((l) => l.trim() !== '');
  const results = lines.map((l) => JSON.parse(l));

  const table = renderBenchReport(results);
  const machine = results[0]?.machine ?? machineInfo();
  const date = new Date().toISOString().slice(0, 10);
  await mkdir(resultsDir, { recursive: true });
  const base = dtype === 'f32' ? `${model.results}-${date}` : `${model.results}-${dtype}-${date}`;
  const md = path.join(resultsDir, `${base}.md`);
  const jsonl = path.join(resultsDir, `${base}.jsonl`);
  const svg = path.join(resultsDir, `${base}.svg`);
  await writeFile(svg, renderBenchChart(results, { title: describeBenchCells(results).split('\n')[0] }));
  const weights =
    dtype === 'f32'
      ? PRESETS[PRESET].description
      : `the preset written with dtype ${dtype} (${DTYPE_INFO[dtype].safetensors} safetensors: the f32 preset's values rounded to nearest even)`;
  const report = `# CPU benchmark${dtype === 'f32' ? '' : `, ${DTYPE_INFO[dtype].safetensors} weights`}, ${date}

Machine: ${describeMachine(machine)}

Model: \`${PRESET}\` from tools/tiny-models — ${weights}; synthetic, random weights.
${tpDtypeArgs.length ? 'tp keeps the weights as stored (`--dtype auto`).' : `This tp's \`bench --help\` lists no --dtype: it loads the ${dtype} checkpoint with its default.`}

Command (run from the repository root by \`pnpm bench:cpu${modelName === 'llama' ? '' : ` --model ${modelName}`}${dtypeText === undefined ? '' : ` --dtype ${dtypeValue}`}\`, ${((performance.now() - started) / 1000).toFixed(0)} s):

\`\`\`sh
${command}
\`\`\`

\`\`\`
${table}
\`\`\`

![tp bench chart](${path.basename(svg)})

${results[0]?.mode === 'encode' ? ENCODE_NOTES(results) : GENERATE_NOTES(results)}
- Each (tp, batch) cell: one warm-up generation, then ${results[0]?.runs ?? 3} timed runs; every number is in [${path.basename(jsonl)}](${path.basename(jsonl)}).
`;
  await writeFile(md, report);
  await writeFile(jsonl, `${lines.join('\n')}\n`);
  console.log(`\n${dtypes.length > 1 ? `${dtype}\n` : ''}${table}\n`);
  console.log(`machine: ${describeMachine(machine)}`);
  say(`wrote ${rel(md)}, ${rel(jsonl)} and ${rel(svg)}`);
}

for (const dtype of dtypes) await benchOne(dtype);
