#!/usr/bin/env node
/**
 * pnpm bench:llamacpp — tp against llama.cpp's llama-bench on this machine, in one run, as ratios.
 *
 *   node tools/compare-llamacpp/run.mjs [--dtype f32|bf16|f16|all] [--cores 1,2] [--rounds 5] [--runs 3]
 *                                       [--prompt 16] [--new 64] [--node-llama-cpp] [--skip-verify] [--no-write]
 *
 * 1. prepares, once, under .cache: the synthetic 134M llama in each weight type asked for (f32: the folder
 *    `pnpm bench:cpu` uses; bf16/f16: the same random values rounded, in -bf16/-f16 folders), each converted
 *    to a GGUF of the same type (2-D weights in it, norms F32), node-llama-cpp with its prebuilt CPU binary
 *    (npm, --ignore-scripts) and llama.cpp's llama-bench, built offline from the sources node-llama-cpp ships;
 * 2. checks each conversion: both engines, the same ids, greedy tokens and logits (verify.mjs);
 * 3. measures in --rounds interleaved rounds (at least 5 for a result: A B A B ...), each measurement in its
 *    own process: for every weight type and core count c, `tp bench --tp c` (c ranks, one thread each),
 *    then `llama-bench -t c` (then node-llama-cpp with c threads with --node-llama-cpp). Each: one warm-up,
 *    --runs timed repetitions, median; decode ms/token (tp: after the first token; llama-bench: tg--new)
 *    and prefill ms of a --prompt-token prompt (tp: time to the first token; llama-bench: pp--prompt);
 * 4. judges each metric by the median over the rounds of the per-round ratio tp ÷ llama-bench, with its
 *    spread (min–max of the per-round ratios), prints the tables and writes them, with the machine, the
 *    versions and every command, to bench/results/cpu-vs-llamacpp-<dtype>-<date>.md and .jsonl.
 *
 * tp reads the variant folder; when `tp bench --help` lists a --dtype option, tp also gets `--dtype auto`
 * (weights kept in the type they are stored in), otherwise tp runs with its default.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { cliDist, ggufFileFor, median, modelDirFor, NODE_LLAMA_CPP_VERSION, parseDtypes, PRESET, rel, root, round, runNode, toolDir, tpBin } from './common.mjs';
import { CMAKE_FLAGS, ensureLlamaBench, llamaBenchBin, llamaBenchVersion, runLlamaBench } from './llama-bench.mjs';
import { ensureNodeLlamaCpp, llamaCppVersions } from './llamacpp.mjs';
import { ensureGguf, ensureModel } from './prepare.mjs';
import { verify, verifyTable } from './verify.mjs';

const USAGE = `usage: node tools/compare-llamacpp/run.mjs [options]      (pnpm bench:llamacpp [options] builds the workspace first)

  --dtype T          f32 (default), bf16, f16 or all: the weight type of the checkpoint tp reads and of the GGUF
                     llama.cpp reads (all: every type, interleaved in each round, one report per type)
  --cores LIST       core counts c: tp --tp c (c ranks, one thread each) against llama-bench -t c (default 1,2)
  --rounds N         interleaved rounds, tp then llama-bench in each (default 5; fewer is marked as not a result)
  --runs N           timed repetitions per measurement, after one warm-up (default 3)
  --prompt N         prompt tokens for prefill (default 16)
  --new N            generated tokens for decode (default 64)
  --node-llama-cpp   also time llama.cpp through node-llama-cpp's prebuilt binary, after llama-bench in each round
  --llama-bench      accepted for older command lines; llama-bench is always measured now
  --skip-verify      skip the correctness check of the GGUFs (verify.mjs)
  --no-write         print only; write nothing to bench/results
  -h, --help         this help`;

let values;
try {
  ({ values } = parseArgs({
    options: {
      dtype: { type: 'string' },
      cores: { type: 'string' },
      rounds: { type: 'string' },
      runs: { type: 'string' },
      prompt: { type: 'string' },
      new: { type: 'string' },
      'node-llama-cpp': { type: 'boolean' },
      'llama-bench': { type: 'boolean' },
      'skip-verify': { type: 'boolean' },
      'no-write': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  }));
} catch (error) {
  console.error(`bench:llamacpp: ${error.message.split('\n')[0]}\n${USAGE}`);
  process.exit(2);
}
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}
const usageError = (text) => {
  console.error(`bench:llamacpp: ${text} (see --help)`);
  process.exit(2);
};
const positiveInt = (text, name, fallback) => {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) usageError(`--${name} must be a positive integer, got ${text}`);
  return n;
};
let dtypes;
try {
  dtypes = parseDtypes(values.dtype);
} catch (error) {
  usageError(error.message);
}
const cores = values.cores === undefined ? [1, 2] : values.cores.split(',').map((c) => positiveInt(c, 'cores'));
const MIN_ROUNDS = 5;
const rounds = positiveInt(values.rounds, 'rounds', MIN_ROUNDS);
const runs = positiveInt(values.runs, 'runs', 3);
const promptTokens = positiveInt(values.prompt, 'prompt', 16);
const newTokens = positiveInt(values.new, 'new', 64);
if (newTokens < 2) usageError('--new must be at least 2');
const withNodeLlamaCpp = values['node-llama-cpp'] === true;
const engines = withNodeLlamaCpp ? ['tp', 'llama-bench', 'llama.cpp'] : ['tp', 'llama-bench'];
const refs = engines.filter((e) => e !== 'tp');
const NAMES = { tp: 'tp', 'llama-bench': 'llama-bench', 'llama.cpp': 'node-llama-cpp' };
const DTYPE_NAMES = { f32: 'F32', bf16: 'BF16', f16: 'F16' };

const say = (text) => console.error(`bench:llamacpp: ${text}`);
if (rounds < MIN_ROUNDS) say(`${rounds} round${rounds > 1 ? 's' : ''}: fewer than the ${MIN_ROUNDS} the protocol asks for; the report says so`);
const started = performance.now();
const { describeMachine, machineInfo } = await import(cliDist);

// 1. Everything under .cache, once.
const setup = [];
const install = ensureNodeLlamaCpp({ log: say });
if (!install.installed) say(`reusing node-llama-cpp ${NODE_LLAMA_CPP_VERSION} in ${rel(path.join(root, '.cache', 'llamacpp', 'npm'))}`);
else setup.push(install.command);
const conversions = {};
for (const dtype of dtypes) {
  await ensureModel({ dtype, log: say });
  const g = await ensureGguf({ dtype, log: say });
  conversions[dtype] = g.command;
}
const llamaBenchBuild = ensureLlamaBench({ log: say });
const vocab = JSON.parse(readFileSync(path.join(modelDirFor(dtypes[0]), 'config.json'), 'utf8')).vocab_size;

// tp's own weight-type option, when this build of tp has one: keep the weights as stored.
const tpHelp = execFileSync(process.execPath, [tpBin, 'bench', '--help'], { cwd: root, encoding: 'utf8' });
const tpHasDtype = /(^|\s)--dtype\b/m.test(tpHelp);
const tpDtypeArgs = tpHasDtype ? ['--dtype', 'auto'] : [];
say(tpHasDtype ? '`tp bench --help` lists --dtype: tp gets --dtype auto (weights as stored)' : '`tp bench --help` lists no --dtype: tp reads each variant folder with its default');

// 2. The conversion is right, or the benchmark means nothing.
const verifications = {};
if (!values['skip-verify']) {
  for (const dtype of dtypes) {
    say(`${dtype}: checking the GGUF against tp: same ids, greedy tokens and logits (tools/compare-llamacpp/verify.mjs --dtype ${dtype})`);
    const v = await verify({ dtype, log: (t) => say(`verify ${dtype}: ${t}`) });
    verifications[dtype] = v;
    console.error(`\n${dtype}: ${v.tolerance_note}\n${verifyTable(v)}\n`);
    if (!v.ok) {
      say(`verify ${dtype} FAILED: the engines disagree, so the timings would not compare the same model; stopping`);
      process.exit(1);
    }
  }
}

// 3. Interleaved rounds: in each, for each weight type and core count, tp (A) then llama-bench (B).
const shellQuote = (a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);
const commandLine = (args) => `node ${args.map((a) => shellQuote(path.isAbsolute(a) ? rel(a) : a)).join(' ')}`;
const tpArgs = (dtype, tp) => [tpBin, 'bench', rel(modelDirFor(dtype)), '--tp', String(tp), '--backend', 'cpu', '--prompt', String(promptTokens), '--new', String(newTokens), '--runs', String(runs), ...tpDtypeArgs, '--json'];
const llamaArgs = (dtype, threads) => [path.join(toolDir, 'llamacpp-worker.mjs'), 'bench', JSON.stringify({ gguf: rel(ggufFileFor(dtype)), threads, prompt: promptTokens, new: newTokens, runs, vocab })];

const loadBefore = os.loadavg();
const measurements = [];
const total = rounds * dtypes.length * cores.length * engines.length;
let order = 0;
for (let r = 1; r <= rounds; r++) {
  for (const dtype of dtypes) {
    for (const c of cores) {
      for (const engine of engines) {
        order++;
        const load1 = os.loadavg()[0];
        const t0 = performance.now();
        const head = `[${order}/${total}] round ${r}, ${dtype}, ${c} core${c > 1 ? 's' : ''}, ${NAMES[engine]}`;
        let result;
        let command;
        if (engine === 'llama-bench') {
          result = runLlamaBench(rel(ggufFileFor(dtype)), c, promptTokens, newTokens, runs);
          command = result.command;
          say(`${head}: ${command}`);
          say(`  pp${promptTokens} ${result.prefill_ms_runs.join(', ')} ms; tg${newTokens} ${result.decode_ms_per_token_runs.join(', ')} ms/token`);
        } else {
          const args = engine === 'tp' ? tpArgs(dtype, c) : llamaArgs(dtype, c);
          command = commandLine(args);
          say(`${head}: ${command}`);
          const stdout = await runNode(args, { prefix: '  ' });
          // One JSON object per measurement (tp: per tp size and batch; here one of each).
          const objects = stdout.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l)).filter((o) => typeof o.decode_ms_per_token === 'number');
          if (objects.length !== 1) throw new Error(`${engine} printed ${objects.length} measurements, expected 1`);
          result = objects[0];
        }
        measurements.push({ kind: 'bench', dtype, engine, cores: c, round: r, order, load_average_1m: round(load1, 2), wall_s: round((performance.now() - t0) / 1000, 1), command, ...result });
      }
    }
  }
}
const loadAfter = os.loadavg();

// 4. Per weight type: per-round ratios, their median and spread, per core count and metric.
const fmt = (v, digits = 2) => (Number.isFinite(v) ? v.toFixed(digits) : '—');
const pick = (dtype, engine, c, r) => measurements.find((m) => m.dtype === dtype && m.engine === engine && m.cores === c && m.round === r);
const METRICS = [
  { key: 'decode_ms_per_token', title: `decode ms/token (tp: after the first of ${newTokens} tokens; llama-bench: tg${newTokens})`, unit: 'ms/token', digits: 2 },
  { key: 'prefill_ms', title: `prefill ms, ${promptTokens}-token prompt (tp: time to the first token; llama-bench: pp${promptTokens})`, unit: 'ms', digits: 1 },
];

function summarize(dtype) {
  const out = [];
  for (const metric of METRICS) {
    for (const c of cores) {
      const perRound = Array.from({ length: rounds }, (_, i) => Object.fromEntries(engines.map((e) => [e, pick(dtype, e, c, i + 1)[metric.key]])));
      const row = { dtype, metric: metric.key, cores: c, rounds };
      for (const e of engines) {
        row[`${e}_ms_rounds`] = perRound.map((p) => p[e]);
        row[`${e}_ms_median`] = round(median(perRound.map((p) => p[e])), 3);
      }
      for (const e of refs) {
        const ratios = perRound.map((p) => p.tp / p[e]);
        row[`tp_over_${e}_rounds`] = ratios.map((v) => round(v, 4));
        row[`tp_over_${e}_median`] = round(median(ratios), 4);
        row[`tp_over_${e}_min`] = round(Math.min(...ratios), 4);
        row[`tp_over_${e}_max`] = round(Math.max(...ratios), 4);
      }
      out.push(row);
    }
  }
  return out;
}

function renderTable(rows, headers, alignLeft = 1) {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells) => cells.map((cell, i) => (i < alignLeft ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  ').trimEnd();
  return [line(headers), line(widths.map((w) => '─'.repeat(w))), ...rows.map(line)].join('\n');
}

/** The headline table of one weight type: per metric and core count, medians and the median ratio with its spread. */
function summaryTable(summary) {
  const blocks = [];
  for (const metric of METRICS) {
    const headers = ['cores'];
    for (const e of engines) headers.push(`${NAMES[e]} ${metric.unit}`);
    for (const e of refs) headers.push(`tp ÷ ${NAMES[e]}`, 'spread (min–max)');
    headers.push('tp ÷ llama-bench per round');
    const rows = summary
      .filter((s) => s.metric === metric.key)
      .map((s) => [
        `${s.cores} (TP=${s.cores} · -t ${s.cores})`,
        ...engines.map((e) => fmt(s[`${e}_ms_median`], metric.digits)),
        ...refs.flatMap((e) => [fmt(s[`tp_over_${e}_median`], 3), `${fmt(s[`tp_over_${e}_min`], 3)}–${fmt(s[`tp_over_${e}_max`], 3)}`]),
        s['tp_over_llama-bench_rounds'].map((v) => fmt(v, 3)).join(' '),
      ]);
    blocks.push(`${metric.title}\n${renderTable(rows, headers)}`);
  }
  return blocks.join('\n\n');
}

/** Every measurement of one weight type, in the order it ran. */
function detailTable(dtype) {
  const headers = ['round', 'cores', 'order', ...engines.flatMap((e) => [`${NAMES[e]} decode`, `${NAMES[e]} prefill`]), 'tp ÷ llama-bench decode', 'prefill', 'load 1m'];
  const rows = [];
  for (const c of cores) {
    for (let r = 1; r <= rounds; r++) {
      const m = Object.fromEntries(engines.map((e) => [e, pick(dtype, e, c, r)]));
      rows.push([
        String(r),
        String(c),
        engines.map((e) => m[e].order).join(','),
        ...engines.flatMap((e) => [fmt(m[e].decode_ms_per_token, 2), fmt(m[e].prefill_ms, 1)]),
        fmt(m.tp.decode_ms_per_token / m['llama-bench'].decode_ms_per_token, 3),
        fmt(m.tp.prefill_ms / m['llama-bench'].prefill_ms, 3),
        fmt(m.tp.load_average_1m, 2),
      ]);
    }
  }
  return renderTable(rows, headers, 3);
}

function memoryLine(dtype) {
  return cores
    .map((c) => {
      const tp = measurements.filter((m) => m.dtype === dtype && m.engine === 'tp' && m.cores === c);
      const ranks = tp.at(-1)?.rank_memory_mb;
      const rss = median(tp.map((m) => m.peak_rss_mb));
      return `TP=${c}: per-rank memory ${Array.isArray(ranks) ? ranks.map((v) => fmt(v, 0)).join(' / ') : '—'} MiB, peak RSS ${fmt(rss, 0)} MiB (median of rounds)`;
    })
    .join('; ');
}

const machine = machineInfo();
const versions = llamaCppVersions();
const lb = llamaBenchVersion();
let commit = 'unknown';
try {
  commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim();
  const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: root, encoding: 'utf8' }).trim() !== '';
  if (dirty) commit += ' (with uncommitted changes)';
} catch {
  // not a git checkout
}
const tpVersion = (() => {
  try {
    return JSON.parse(readFileSync(path.join(root, 'packages', 'cli', 'package.json'), 'utf8')).version;
  } catch {
    return undefined;
  }
})();
const roundsNote = rounds >= MIN_ROUNDS ? '' : ` — ${rounds} round${rounds > 1 ? 's' : ''}, fewer than the ${MIN_ROUNDS} of the protocol: not a result`;
const loadText = (l) => l.map((v) => v.toFixed(2)).join(' ');

const summaries = {};
const printed = [];
for (const dtype of dtypes) {
  const summary = summarize(dtype);
  summaries[dtype] = summary;
  const lbFirst = measurements.find((m) => m.dtype === dtype && m.engine === 'llama-bench');
  const header = [
    `${PRESET} (llama), ${DTYPE_NAMES[dtype]} weights${roundsNote}`,
    `tp: ${rel(modelDirFor(dtype))}${tpHasDtype ? ' --dtype auto' : ''} · llama-bench: ${rel(ggufFileFor(dtype))} (${lbFirst?.model_type ?? '?'}) · prompt ${promptTokens} · ${newTokens} new tokens · ${rounds} rounds × (1 warm-up + ${runs} runs, median)`,
    `medians over the rounds; tp ÷ llama-bench: median of the ${rounds} per-round ratios (below 1: tp is faster), spread: their min–max`,
  ].join('\n');
  const table = `${header}\n\n${summaryTable(summary)}\n\ntp memory: ${memoryLine(dtype)}`;
  printed.push(table);
  console.log(`\n${table}\n`);
}
if (dtypes.length > 1) {
  const headers = ['dtype', 'cores', 'tp decode', 'llama-bench decode', 'tp ÷ llama-bench', 'spread', 'tp prefill', 'llama-bench prefill', 'tp ÷ llama-bench', 'spread'];
  const rows = [];
  for (const dtype of dtypes) {
    for (const c of cores) {
      const d = summaries[dtype].find((s) => s.metric === 'decode_ms_per_token' && s.cores === c);
      const p = summaries[dtype].find((s) => s.metric === 'prefill_ms' && s.cores === c);
      const lbk = 'llama-bench';
      rows.push([dtype, String(c), fmt(d.tp_ms_median), fmt(d[`${lbk}_ms_median`]), fmt(d[`tp_over_${lbk}_median`], 3), `${fmt(d[`tp_over_${lbk}_min`], 3)}–${fmt(d[`tp_over_${lbk}_max`], 3)}`, fmt(p.tp_ms_median, 1), fmt(p[`${lbk}_ms_median`], 1), fmt(p[`tp_over_${lbk}_median`], 3), `${fmt(p[`tp_over_${lbk}_min`], 3)}–${fmt(p[`tp_over_${lbk}_max`], 3)}`]);
    }
  }
  const all = `all weight types, interleaved in every round (ms; ratios: median of per-round ratios, spread min–max)${roundsNote}\n${renderTable(rows, headers, 2)}`;
  printed.push(all);
  console.log(`${all}\n`);
}
console.log(`machine: ${describeMachine(machine)} · load average ${loadText(loadBefore)} before, ${loadText(loadAfter)} after`);
console.log(`llama-bench: llama.cpp ${lb?.release ?? '?'} (${lb?.commit ?? '?'}), ${rel(llamaBenchBin)} · tp ${commit} · Node ${process.version}`);

if (!values['no-write']) {
  const date = new Date().toISOString().slice(0, 10);
  const resultsDir = path.join(root, 'bench', 'results');
  await mkdir(resultsDir, { recursive: true });
  const argText = process.argv.slice(2).length ? ` ${process.argv.slice(2).map(shellQuote).join(' ')}` : '';
  const seconds = ((performance.now() - started) / 1000).toFixed(0);
  for (const dtype of dtypes) {
    const base = `cpu-vs-llamacpp-${dtype}-${date}`;
    const md = path.join(resultsDir, `${base}.md`);
    const jsonl = path.join(resultsDir, `${base}.jsonl`);
    const mine = measurements.filter((m) => m.dtype === dtype);
    const lbFirst = mine.find((m) => m.engine === 'llama-bench');
    const tpFirst = mine.find((m) => m.engine === 'tp');
    const tpStorage = tpFirst?.storage_dtype === undefined ? '' : ` tp stored the weights as ${tpFirst.storage_dtype}${tpFirst.kv_dtype ? `, its KV cache as ${tpFirst.kv_dtype}` : ''} (its JSON: storage_dtype, kv_dtype).`;
    const nlFirst = mine.find((m) => m.engine === 'llama.cpp');
    const v = verifications[dtype];
    const verifySection = v
      ? `## Correctness (the same model in both engines)

\`node tools/compare-llamacpp/verify.mjs --dtype ${dtype}\`: tp (on \`${v.model}\`) and llama.cpp through node-llama-cpp (on \`${v.gguf}\`) get the same
token ids (${v.prompts} prompts of 16 ids, tp's seeded generator) and generate ${v.steps} tokens greedily, tp at TP ${v.tp_sizes.join(' and ')}, llama.cpp with 1 thread,
once with its defaults (as benchmarked) and once with an F32 KV cache and flash attention off${v.configs.some((c) => c.name === 'f32-weights') ? `, and once on the same ${dtype}-rounded weights written as an F32 GGUF (F32 KV cache, flash attention off: llama.cpp then multiplies in f32 like tp)` : ''}. Logits are compared as log-softmax
(node-llama-cpp returns probabilities), max |Δ| over the ${vocab} vocabulary entries. ${v.tolerance_note}.

\`\`\`
${verifyTable(v)}
\`\`\`

${v.configs.map((c) => `- ${c.label}: greedy tokens ${c.tokens_match ? 'identical' : c.ok ? `identical up to ${c.near_ties} near-tie${c.near_ties === 1 ? '' : 's'} (tp's margin between the two tokens at most twice the measured |Δ|; later steps not compared)` : 'DIFFERENT'}; max |Δ| ${c.max_last_position_abs_diff.toExponential(2)} at the last prompt position, ${c.max_step_abs_diff.toExponential(2)} over the steps (tolerance ${c.tolerance}).`).join('\n')}
`
      : '## Correctness\n\nSkipped (--skip-verify).\n';
    const report = `# tp vs llama.cpp (llama-bench) on the CPU, ${DTYPE_NAMES[dtype]} weights, ${date}${roundsNote}

Machine: ${describeMachine(machine)} · load average (1, 5, 15 min) ${loadText(loadBefore)} before the timed runs, ${loadText(loadAfter)} after

Model: \`${PRESET}\` from tools/tiny-models (synthetic, random weights${dtype === 'f32' ? '' : `, written in ${dtype}: the f32 values rounded to nearest even`}).
tp reads \`${rel(modelDirFor(dtype))}\` (${DTYPE_NAMES[dtype]} safetensors)${tpHasDtype ? ' with `--dtype auto` (weights kept as stored)' : `; this tp's \`bench --help\` lists no --dtype, so it runs with its default`}.${tpStorage}
llama.cpp reads \`${rel(ggufFileFor(dtype))}\` (llama-bench: ${lbFirst?.model_type ?? '?'}, ${lbFirst?.model_size ?? '?'} bytes), converted from that folder by
\`${conversions[dtype]}\` (2-D weights ${DTYPE_NAMES[dtype]}, copied as stored; norm weights F32, as llama.cpp's converter keeps 1-D tensors; q/k permuted as its converter does).

Versions: tp ${tpVersion ?? '?'} at ${commit} · llama.cpp ${lb?.release ?? '?'} (commit ${lb?.commit ?? '?'}, llama-bench build ${lbFirst?.build_commit ?? '?'}), the sources node-llama-cpp ${versions.nodeLlamaCpp} ships · Node ${process.version}
llama-bench: ${lbFirst ? `backends ${lbFirst.backends}, CPU "${lbFirst.cpu_info}", flash attention ${lbFirst.flash_attn}, KV cache ${lbFirst.type_k}/${lbFirst.type_v}, batch ${lbFirst.n_batch}, poll ${lbFirst.poll}` : '?'}${nlFirst ? `
node-llama-cpp: ${versions.binaryPackage} ${versions.binaryPackageVersion} (${nlFirst.build} binary), context ${nlFirst.context_size}, batch ${nlFirst.batch_size}, flash attention ${nlFirst.flash_attention}, KV cache ${nlFirst.kv_cache_type}; system info \`${nlFirst.system_info}\`` : ''}

Command: \`pnpm bench:llamacpp${argText}\` (= \`node tools/compare-llamacpp/run.mjs${argText}\` after the build), ${seconds} s in all${dtypes.length > 1 ? `; weight types ${dtypes.join(', ')} interleaved in every round (one report each)` : ''}.

\`\`\`
${printed[dtypes.indexOf(dtype)]}
\`\`\`

Every measurement, in the order it ran (ms; order: position in the whole run; load 1m: the 1-minute load average when tp started):

\`\`\`
${detailTable(dtype)}
\`\`\`

- Protocol: ${rounds} rounds; in each, for each core count c, \`tp bench --tp c\` (c ranks, one thread each) and then \`llama-bench -t c\`${withNodeLlamaCpp ? ' and then node-llama-cpp with c threads' : ''}, each in its own process (A B A B …)${dtypes.length > 1 ? `, the weight types ${dtypes.join(', ')} one after the other inside each round` : ''}. Each measurement: one warm-up, ${runs} timed repetition${runs === 1 ? '' : 's'}, median. A ratio is tp ÷ llama-bench within one round; the result is the median of the ${rounds} ratios, the spread their min–max. Compare runs from different machines or days by their ratios, never by their milliseconds.
- tp: decode ms/token = time per generated token after the first (greedy, ${newTokens} tokens, never stopping early); prefill = time to the first token, a forward over ${promptTokens} random prompt ids (tp's seeded generator). Timed through the session API (\`onToken\`), sampling included.
- llama-bench: llama.cpp's own benchmark, built on this machine from the sources node-llama-cpp ${versions.nodeLlamaCpp} ships (llama/gitRelease.bundle; cmake ${CMAKE_FLAGS.join(' ')}, native CPU flags). It keeps a threadpool and times the model alone (no sampling, no JavaScript): tg${newTokens} decodes ${newTokens} tokens from an empty context (ms/token = its time ÷ ${newTokens}), pp${promptTokens} is one batch of ${promptTokens} tokens; its own warm-up, ${runs} repetition${runs === 1 ? '' : 's'} (-r ${runs}), median. Defaults otherwise (KV cache ${lbFirst?.type_k ?? 'f16'}, flash attention ${lbFirst?.flash_attn ?? 'auto'}).${withNodeLlamaCpp ? `
- node-llama-cpp: llama.cpp through node-llama-cpp's prebuilt binary with tp's protocol (same prompts, 1 warm-up, ${runs} runs, the time each token reaches JavaScript). It attaches no persistent ggml threadpool to its contexts, so at 2+ threads every decode step starts and joins ggml's worker threads.` : ''}
- tp memory: ${memoryLine(dtype)}.

## Commands, in the order they ran${dtypes.length > 1 ? ` (this weight type's; the other types' ran between them)` : ''}

\`\`\`sh
${mine.map((m) => `# ${m.order}: round ${m.round}, ${m.cores} core${m.cores > 1 ? 's' : ''}, ${NAMES[m.engine]} (${m.wall_s} s, load ${m.load_average_1m})\n${m.command}`).join('\n')}
\`\`\`

Per-run values are in [${path.basename(jsonl)}](${path.basename(jsonl)}).

${verifySection}
## Setup (done once by the script, all under .cache/)

- \`npm install --prefix .cache/llamacpp/npm --ignore-scripts --omit=optional --no-audit --no-fund\` of node-llama-cpp@${NODE_LLAMA_CPP_VERSION} and ${versions.binaryPackage}@${NODE_LLAMA_CPP_VERSION} (exact versions); no install scripts run. It provides llama.cpp's sources (llama/gitRelease.bundle) and, for verify.mjs${withNodeLlamaCpp ? ' and the node-llama-cpp engine' : ''}, the prebuilt binary (\`getLlama({ gpu: false, build: 'never' })\`).
- The checkpoint: tools/tiny-models preset \`${PRESET}\`${dtype === 'f32' ? '' : ` with \`dtype: '${dtype}'\``} (\`node tools/tiny-models/dist/bin.js --preset ${PRESET} ${rel(modelDirFor(dtype))}${dtype === 'f32' ? '' : ` --dtype ${dtype}`}\` writes the same files).
- The GGUF: \`${conversions[dtype]}\`.
- llama-bench, offline from the bundled sources:${llamaBenchBuild.length ? `\n\n  \`\`\`sh\n${llamaBenchBuild.map((l) => `  ${l}`).join('\n')}\n  \`\`\`` : ` reused \`${rel(llamaBenchBin)}\`, built with \`git clone <node-llama-cpp>/llama/gitRelease.bundle .cache/llamacpp/src\`, \`cmake -S .cache/llamacpp/src -B .cache/llamacpp/src/build -G Ninja ${CMAKE_FLAGS.join(' ')}\`, \`cmake --build .cache/llamacpp/src/build --target llama-bench\`.`}
`;
    await writeFile(md, report);
    const jsonLines = [
      ...mine,
      ...(v ? [{ kind: 'verify', dtype, ok: v.ok, model: v.model, gguf: v.gguf, steps: v.steps, configs: v.configs, checks: v.checks }] : []),
      ...summaries[dtype].map((s) => ({ kind: 'ratio', ...s })),
      {
        kind: 'summary',
        dtype,
        date,
        rounds,
        runs,
        prompt_tokens: promptTokens,
        new_tokens: newTokens,
        cores,
        dtypes_interleaved: dtypes,
        machine,
        load_average_before: loadBefore,
        load_average_after: loadAfter,
        tp_commit: commit,
        tp_version: tpVersion,
        tp_dtype_flag: tpHasDtype,
        model: rel(modelDirFor(dtype)),
        gguf: rel(ggufFileFor(dtype)),
        convert_command: conversions[dtype],
        llama_bench: { ...lb, binary: rel(llamaBenchBin), build_commands: llamaBenchBuild },
        node_llama_cpp: versions,
        command: `pnpm bench:llamacpp${argText}`,
      },
    ];
    await writeFile(jsonl, `${jsonLines.map((l) => JSON.stringify(l)).join('\n')}\n`);
    say(`wrote ${rel(md)} and ${rel(jsonl)}`);
  }
}
