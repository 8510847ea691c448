#!/usr/bin/env node
/**
 * pnpm bench:llamacpp — tp against llama.cpp on this machine, in one run, as ratios.
 *
 *   node tools/compare-llamacpp/run.mjs [--cores 1,2] [--rounds 2] [--runs 3] [--prompt 16] [--new 64] [--llama-bench] [--skip-verify] [--no-write]
 *
 * 1. prepares, once, under .cache: the synthetic 134M llama (as `pnpm bench:cpu` writes it), node-llama-cpp
 *    with its prebuilt CPU binary (npm, --ignore-scripts) and the model converted to an F32 GGUF;
 * 2. checks the conversion: both engines, the same ids, greedy tokens and logits (verify.mjs);
 * 3. measures, back to back, each in its own process, for every core count c: llama.cpp with c threads
 *    through node-llama-cpp (A), then `tp bench --tp c` (B), then with --llama-bench llama.cpp's own
 *    llama-bench built offline from the sources node-llama-cpp ships (C, see llama-bench.mjs); the whole
 *    sequence twice (A B A B ...) so drift on a shared machine shows as a difference between rounds. Each measurement: one warm-up generation, then --runs timed
 *    greedy generations of --new tokens from the same --prompt random ids; decode ms/token after the
 *    first token, median of the runs;
 * 4. prints the table and writes it, with the machine, the versions and the exact commands, to
 *    bench/results/cpu-vs-llamacpp-<date>.md and the measurements to .jsonl.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { cliDist, ggufFile, median, modelDir, NODE_LLAMA_CPP_VERSION, PRESET, rel, root, round, runNode, toolDir, tpBin } from './common.mjs';
import { ensureLlamaBench, llamaBenchVersion, runLlamaBench } from './llama-bench.mjs';
import { ensureNodeLlamaCpp, llamaCppVersions } from './llamacpp.mjs';
import { ensureGguf, ensureModel } from './prepare.mjs';
import { verify, verifyTable } from './verify.mjs';

const { values } = parseArgs({
  options: {
    cores: { type: 'string' },
    rounds: { type: 'string' },
    runs: { type: 'string' },
    prompt: { type: 'string' },
    new: { type: 'string' },
    'llama-bench': { type: 'boolean' },
    'skip-verify': { type: 'boolean' },
    'no-write': { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (values.help) {
  console.log('usage: node tools/compare-llamacpp/run.mjs [--cores 1,2] [--rounds 2] [--runs 3] [--prompt 16] [--new 64] [--llama-bench] [--skip-verify] [--no-write]');
  process.exit(0);
}
const positiveInt = (text, name, fallback) => {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got ${text}`);
  return n;
};
const cores = values.cores === undefined ? [1, 2] : values.cores.split(',').map((c) => positiveInt(c, 'cores'));
const rounds = positiveInt(values.rounds, 'rounds', 2);
const runs = positiveInt(values.runs, 'runs', 3);
const promptTokens = positiveInt(values.prompt, 'prompt', 16);
const newTokens = positiveInt(values.new, 'new', 64);
if (newTokens < 2) throw new Error('--new must be at least 2');
const say = (text) => console.error(`bench:llamacpp: ${text}`);
const started = performance.now();
const { describeMachine, machineInfo } = await import(cliDist);

// 1. Everything under .cache, once.
await ensureModel({ log: say });
const install = ensureNodeLlamaCpp({ log: say });
if (!install.installed) say(`reusing node-llama-cpp ${NODE_LLAMA_CPP_VERSION} in ${rel(path.join(root, '.cache', 'llamacpp', 'npm'))}`);
await ensureGguf({ log: say });
const withLlamaBench = values['llama-bench'] === true;
const llamaBenchBuild = withLlamaBench ? ensureLlamaBench({ log: say }) : [];
const vocab = JSON.parse(readFileSync(path.join(modelDir, 'config.json'), 'utf8')).vocab_size;

// 2. The conversion is right, or the benchmark means nothing.
let verification;
if (!values['skip-verify']) {
  say('checking the GGUF against tp: same ids, greedy tokens and logits (tools/compare-llamacpp/verify.mjs)');
  verification = await verify({ log: (t) => say(`verify: ${t}`) });
  console.error(`\n${verifyTable(verification)}\n`);
  if (!verification.ok) {
    say('verify FAILED: the engines disagree, so the timings would not compare the same model; stopping');
    process.exit(1);
  }
}

// 3. Back to back: for each round, for each core count, llama.cpp (A) then tp (B).
const llamaArgs = (threads) => [path.join(toolDir, 'llamacpp-worker.mjs'), 'bench', JSON.stringify({ gguf: rel(ggufFile), threads, prompt: promptTokens, new: newTokens, runs, vocab })];
const tpArgs = (tp) => [tpBin, 'bench', rel(modelDir), '--tp', String(tp), '--backend', 'cpu', '--prompt', String(promptTokens), '--new', String(newTokens), '--runs', String(runs), '--json'];
const shellQuote = (a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);
const commandLine = (args) => `node ${args.map((a) => shellQuote(path.isAbsolute(a) ? rel(a) : a)).join(' ')}`;

const engines = withLlamaBench ? ['llama.cpp', 'tp', 'llama-bench'] : ['llama.cpp', 'tp'];
const loadBefore = os.loadavg();
const measurements = [];
let order = 0;
for (let r = 1; r <= rounds; r++) {
  for (const c of cores) {
    for (const engine of engines) {
      order++;
      const t0 = performance.now();
      let result;
      let command;
      if (engine === 'llama-bench') {
        say(`[${order}/${rounds * cores.length * engines.length}] round ${r}, ${c} core${c > 1 ? 's' : ''}, ${engine}`);
        result = runLlamaBench(rel(ggufFile), c, promptTokens, newTokens, runs);
        command = result.command;
        say(`  llama-bench: threads ${c}: pp${promptTokens} ${result.prefill_ms_runs.join(', ')} ms; tg${newTokens} ${result.decode_ms_per_token_runs.join(', ')} ms/token`);
      } else {
        const args = engine === 'llama.cpp' ? llamaArgs(c) : tpArgs(c);
        command = commandLine(args);
        say(`[${order}/${rounds * cores.length * engines.length}] round ${r}, ${c} core${c > 1 ? 's' : ''}, ${engine}: ${command}`);
        const stdout = await runNode(args, { prefix: '  ' });
        const lines = stdout.split('\n').filter((l) => l.trim() !== '');
        if (lines.length !== 1) throw new Error(`${engine} printed ${lines.length} JSON lines, expected 1`);
        result = JSON.parse(lines[0]);
      }
      measurements.push({ kind: 'bench', engine, cores: c, round: r, order, wall_s: round((performance.now() - t0) / 1000, 1), command, ...result });
    }
  }
}
const loadAfter = os.loadavg();

// 4. The tables: decode and prefill, one row per core count and round, then the pooled runs.
const pick = (engine, c, r) => measurements.find((m) => m.engine === engine && m.cores === c && m.round === r);
const pooled = (engine, c, key) => median(measurements.filter((m) => m.engine === engine && m.cores === c).flatMap((m) => m[`${key}_runs`]));
const fmt = (v, digits = 2) => v.toFixed(digits);
const NAMES = { 'llama.cpp': 'node-llama-cpp', tp: 'tp', 'llama-bench': 'llama-bench' };
const refs = engines.filter((e) => e !== 'tp');
const ratios = {};
function renderTable(key, unit, digits) {
  const header = ['cores', 'round', 'order'];
  for (const e of engines) header.push(`${NAMES[e]} ${unit}`);
  for (const e of refs) header.push(`tp ÷ ${NAMES[e]}`);
  const rows = [];
  for (const c of cores) {
    for (let r = 1; r <= rounds; r++) {
      const m = Object.fromEntries(engines.map((e) => [e, pick(e, c, r)]));
      rows.push([String(c), String(r), engines.map((e) => m[e].order).join(','), ...engines.map((e) => fmt(m[e][key], digits)), ...refs.map((e) => fmt(m.tp[key] / m[e][key], 3))]);
    }
    const p = Object.fromEntries(engines.map((e) => [e, pooled(e, c, key)]));
    rows.push([String(c), 'all', `${rounds}×${runs} runs`, ...engines.map((e) => fmt(p[e], digits)), ...refs.map((e) => fmt(p.tp / p[e], 3))]);
    ratios[c] ??= {};
    for (const e of engines) ratios[c][`${e}_${key}`] = round(p[e], 3);
    for (const e of refs) ratios[c][`tp_over_${e}_${key}`] = round(p.tp / p[e], 4);
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells) => cells.map((cell, i) => (i < 3 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  ');
  return [line(header), line(widths.map((w) => '─'.repeat(w))), ...rows.map(line)].join('\n');
}
const drift = cores
  .map((c) => {
    const parts = engines.map((engine) => {
      const first = pick(engine, c, 1).decode_ms_per_token;
      const last = pick(engine, c, rounds).decode_ms_per_token;
      return `${NAMES[engine]} ${last >= first ? '+' : ''}${fmt(((last - first) / first) * 100, 1)}%`;
    });
    return `${c} core${c > 1 ? 's' : ''}: ${parts.join(', ')}`;
  })
  .join('; ');
const spread = cores
  .map((c) => {
    const all = measurements.filter((m) => m.engine === 'llama.cpp' && m.cores === c).map((m) => m.decode_token_ms_percentiles);
    return `${c} core${c > 1 ? 's' : ''}: ${all.map((p) => `${p.min} / ${p.p10} / ${p.p50} / ${p.p90} / ${p.max}`).join(' and ')}`;
  })
  .join('; ');
const table = [
  `${PRESET} (llama, F32) · prompt ${promptTokens} tokens · ${newTokens} new tokens, greedy · median of ${runs} runs after 1 warm-up · cores = llama.cpp threads = tp ranks`,
  `llama.cpp through node-llama-cpp ${NODE_LLAMA_CPP_VERSION} (prebuilt CPU binary)${withLlamaBench ? ' and through its own llama-bench (built here from the same release)' : ''}`,
  '',
  'decode ms/token (after the first token)',
  renderTable('decode_ms_per_token', 'ms/token', 2),
  '',
  `prefill ms (time to the first token, ${promptTokens}-token prompt)`,
  renderTable('prefill_ms', 'ms', 1),
  '',
  `ratio < 1: tp is faster. order: position of each measurement in the run. all: median over the ${rounds}×${runs} timed runs of each engine.`,
  `Drift, round ${rounds} vs round 1 (decode): ${rounds > 1 ? drift : 'one round only'}.`,
  `node-llama-cpp single decode steps, ms (min / p10 / p50 / p90 / max, one group per round): ${spread}.`,
  ...(withLlamaBench ? [`llama-bench: tg${newTokens} from an empty context and pp${promptTokens}, the model alone (no sampling, no JavaScript), persistent threadpool.`] : []),
].join('\n');

console.log(`\n${table}\n`);
const machine = machineInfo();
const versions = llamaCppVersions();
let commit = 'unknown';
try {
  commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim();
  const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: root, encoding: 'utf8' }).trim() !== '';
  if (dirty) commit += ' (with uncommitted changes)';
} catch {
  // not a git checkout
}
const llamaFirst = measurements.find((m) => m.engine === 'llama.cpp');
console.log(`machine: ${describeMachine(machine)} · load average ${loadBefore.map((v) => v.toFixed(2)).join(' ')} before, ${loadAfter.map((v) => v.toFixed(2)).join(' ')} after`);
console.log(`node-llama-cpp ${versions.nodeLlamaCpp} (${versions.binaryPackage} ${versions.binaryPackageVersion}, llama.cpp ${versions.llamaCpp?.tag ?? 'unknown'}) · tp ${commit}`);

if (!values['no-write']) {
  const date = new Date().toISOString().slice(0, 10);
  const resultsDir = path.join(root, 'bench', 'results');
  await mkdir(resultsDir, { recursive: true });
  const md = path.join(resultsDir, `cpu-vs-llamacpp-${date}.md`);
  const jsonl = path.join(resultsDir, `cpu-vs-llamacpp-${date}.jsonl`);
  const verifySection = verification
    ? `## Correctness (same model in both engines)

tp and node-llama-cpp get the same token ids (${verification.prompts} prompts of 16 ids, tp's seeded generator) and generate ${verification.steps} tokens greedily,
tp at TP ${verification.tp_sizes.join(' and ')}, llama.cpp with 1 thread, once with its defaults (as benchmarked) and once with an F32 KV cache and
flash attention off. Logits are compared as log-softmax (node-llama-cpp returns probabilities): the logit difference without the
free additive constant, max over the ${vocab} vocabulary entries.

\`\`\`
${verifyTable(verification)}
\`\`\`

${verification.configs.map((c) => `- ${c.label}: greedy tokens ${c.tokens_match ? 'identical' : 'DIFFERENT'}; max |Δ| ${c.max_last_position_abs_diff.toExponential(2)} at the last prompt position, ${c.max_step_abs_diff.toExponential(2)} over all steps (tolerance ${c.tolerance}).`).join('\n')}
`
    : '## Correctness\n\nSkipped (--skip-verify).\n';
  const argText = process.argv.slice(2).length ? ` ${process.argv.slice(2).join(' ')}` : '';
  const report = `# tp vs llama.cpp on the CPU, ${date}

Machine: ${describeMachine(machine)} · load average (1, 5, 15 min) ${loadBefore.map((v) => v.toFixed(2)).join(' ')} before the timed runs, ${loadAfter.map((v) => v.toFixed(2)).join(' ')} after

Model: \`${PRESET}\` from tools/tiny-models (synthetic, random weights, F32). tp reads \`${rel(modelDir)}\` (safetensors);
llama.cpp reads \`${rel(ggufFile)}\`, converted from it by tools/compare-llamacpp/convert.mjs (F32, q/k permuted as llama.cpp's converter does).

Versions: tp ${commit} · node-llama-cpp ${versions.nodeLlamaCpp} with its prebuilt CPU binary ${versions.binaryPackage} ${versions.binaryPackageVersion} (llama.cpp ${versions.llamaCpp?.tag ?? 'unknown'} from ${versions.llamaCpp?.llamaCppGithubRepo ?? '?'}) · Node ${process.version}
node-llama-cpp settings: ${llamaFirst.build} binary, gpu ${llamaFirst.gpu}, context ${llamaFirst.context_size}, batch ${llamaFirst.batch_size}, flash attention ${llamaFirst.flash_attention}, KV cache ${llamaFirst.kv_cache_type}, threads = cores
node-llama-cpp's llama.cpp system info: \`${llamaFirst.system_info}\`

Command: \`pnpm bench:llamacpp${argText}\` (= \`node tools/compare-llamacpp/run.mjs${argText}\` after the build), ${((performance.now() - started) / 1000).toFixed(0)} s in all.

\`\`\`
${table}
\`\`\`

- decode ms/token: time per generated token after the first (greedy, never stopping early), median of the runs; prefill ms: time to the first token (a forward over the prompt).
- tp and llama.cpp (node-llama-cpp) use the same protocol and the same prompts: tp's seeded random ids (seed 999 for the warm-up, 0..${runs - 1} for the runs), 1 warm-up generation, ${runs} timed ones, each measurement in its own process, loaded once. llama.cpp is timed through node-llama-cpp (the time each token reaches JavaScript), as tp is timed through its session API (\`onToken\`).
- Ratios are tp ÷ llama.cpp for the same core count, measured in this run on this machine; the rounds interleave the engines (order column) to expose drift on a shared machine.
- node-llama-cpp attaches no persistent ggml threadpool to its contexts: with 2 threads every decode step starts and joins ggml's worker thread ("disposable threadpool" in ggml-cpu.c), hence the wide spread of its single steps at 2 cores.${withLlamaBench ? `
- llama.cpp (llama-bench): llama.cpp's own benchmark, built on this machine from the sources node-llama-cpp ${versions.nodeLlamaCpp} ships (llama/gitRelease.bundle, commit ${llamaBenchVersion()?.commit}, release ${llamaBenchVersion()?.release}; cmake ${llamaBenchVersion()?.cmake_flags}, native CPU flags). It keeps a threadpool, runs the model alone (no sampling, no JavaScript), its tg${newTokens} decodes from an empty context and its pp${promptTokens} is one batch without choosing a token; its own warm-up, ${runs} repetitions, median. Defaults: F16 KV cache, flash attention auto.` : ''}

## Commands, in the order they ran

\`\`\`sh
${measurements.map((m) => `# ${m.order}: round ${m.round}, ${m.cores} core${m.cores > 1 ? 's' : ''}, ${NAMES[m.engine]} (${m.wall_s} s)\n${m.command}`).join('\n')}
\`\`\`

Per-run values are in [${path.basename(jsonl)}](${path.basename(jsonl)}).

${verifySection}
## Setup (done once by the script, all under .cache/)

- \`npm install --prefix .cache/llamacpp/npm --ignore-scripts --omit=optional --no-audit --no-fund\` of node-llama-cpp@${NODE_LLAMA_CPP_VERSION} and ${versions.binaryPackage}@${NODE_LLAMA_CPP_VERSION} (exact versions); no install scripts run; node-llama-cpp loads its prebuilt binary with \`getLlama({ gpu: false, build: 'never' })\`, so it never downloads or compiles llama.cpp.
- \`node tools/compare-llamacpp/convert.mjs ${rel(modelDir)} ${rel(ggufFile)}\`.${withLlamaBench ? `
- llama-bench (--llama-bench), offline from the bundled sources:${llamaBenchBuild.length ? `\n\n  \`\`\`sh\n${llamaBenchBuild.map((l) => `  ${l}`).join('\n')}\n  \`\`\`` : ` reused \`${rel(path.join(root, '.cache/llamacpp/src/build/bin/llama-bench'))}\`, built with \`git clone <node-llama-cpp>/llama/gitRelease.bundle .cache/llamacpp/src\`, \`cmake -S .cache/llamacpp/src -B .cache/llamacpp/src/build -G Ninja ${llamaBenchVersion()?.cmake_flags}\`, \`cmake --build .cache/llamacpp/src/build --target llama-bench\``}.` : ''}
`;
  await writeFile(md, report);
  const jsonLines = [...measurements, ...(verification ? [{ kind: 'verify', ok: verification.ok, steps: verification.steps, configs: verification.configs, checks: verification.checks }] : []), { kind: 'summary', date, machine, load_average_before: loadBefore, load_average_after: loadAfter, versions, llama_bench: withLlamaBench ? llamaBenchVersion() : undefined, tp_commit: commit, ratios }];
  await writeFile(jsonl, `${jsonLines.map((l) => JSON.stringify(l)).join('\n')}\n`);
  say(`wrote ${rel(md)} and ${rel(jsonl)}`);
}
