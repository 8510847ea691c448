#!/usr/bin/env node
/**
 * pnpm bench:cpu — the CPU benchmark, reproducibly:
 *   1. write the synthetic 134M-parameter llama (tools/tiny-models preset bench-llama-134m) into
 *      .cache/models/bench-llama-134m, or reuse it when it is already there;
 *   2. run `tp bench` on it at TP=1 and TP=2 (prompt 16 tokens, 64 new tokens, median of 3 runs);
 *   3. write the table, the machine and the exact command to bench/results/cpu-<date>.md and the JSON
 *      lines to bench/results/cpu-<date>.jsonl.
 * Extra arguments are passed to `tp bench` (e.g. pnpm bench:cpu --runs 5).
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describeMachine, machineInfo, renderBenchTable } from '@tp/cli';
import { PRESETS, writeTinyModel } from '@tp/tiny-models';

const PRESET = 'bench-llama-134m';
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const modelDir = path.join(root, '.cache', 'models', PRESET);
const resultsDir = path.join(root, 'bench', 'results');
const bin = path.join(root, 'packages', 'cli', 'dist', 'bin.js');
const rel = (p) => path.relative(root, p);
const say = (text) => console.error(`bench:cpu: ${text}`);

// 1. The model, written once. Written beside its final place and renamed, so an interrupted write
//    never leaves a half-written model to be reused.
if (existsSync(path.join(modelDir, 'config.json')) && existsSync(path.join(modelDir, 'model.safetensors'))) {
  say(`reusing ${rel(modelDir)}`);
} else {
  const preset = PRESETS[PRESET];
  say(`writing ${PRESET}: ${preset.description} to ${rel(modelDir)} (once; later runs reuse it)`);
  const started = performance.now();
  const temp = `${modelDir}.partial-${process.pid}`;
  await rm(temp, { recursive: true, force: true });
  const written = await writeTinyModel(temp, preset.options);
  await rm(modelDir, { recursive: true, force: true });
  await rename(temp, modelDir);
  say(`wrote ${(written.parameters / 1e6).toFixed(1)}M parameters, ${(written.bytes / 1e6).toFixed(0)} MB in ${((performance.now() - started) / 1000).toFixed(1)} s`);
}

// 2. tp bench, as a user would run it. Its progress (stderr) is shown as it comes; stdout is JSON lines.
const args = ['bench', rel(modelDir), '--tp', '1,2', '--backend', 'cpu', '--prompt', '16', '--new', '64', ...process.argv.slice(2), '--json'];
const command = `node ${rel(bin)} ${args.join(' ')}`;
say(`running: ${command}`);
say('this loads the model once per tp size and runs 1 warm-up + 3 timed generations each; a few minutes on a small machine');
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

// 3. The results.
const table = renderBenchTable(results);
const machine = results[0]?.machine ?? machineInfo();
const date = new Date().toISOString().slice(0, 10);
await mkdir(resultsDir, { recursive: true });
const md = path.join(resultsDir, `cpu-${date}.md`);
const jsonl = path.join(resultsDir, `cpu-${date}.jsonl`);
const report = `# CPU benchmark, ${date}

Machine: ${describeMachine(machine)}

Model: \`${PRESET}\` from tools/tiny-models — ${PRESETS[PRESET].description}; synthetic, random weights.

Command (run from the repository root by \`pnpm bench:cpu\`, ${((performance.now() - started) / 1000).toFixed(0)} s):

\`\`\`sh
${command}
\`\`\`

\`\`\`
${table}
\`\`\`

- load s: wall time of \`initInference\` (plan, start one worker per rank, each rank reads its share of the weights).
- prefill ms: time to the first generated token, i.e. a forward over the ${results[0]?.prompt_tokens ?? 16}-token random prompt.
- decode ms/token: time per generated token after the first (greedy, no early stop).
- peak RSS MiB: the highest resident memory of the process (ranks are threads of one process), as the ranks sampled it.
- Times are the median of ${results[0]?.runs ?? 3} runs after one warm-up generation; per-run values are in [${path.basename(jsonl)}](${path.basename(jsonl)}).
`;
await writeFile(md, report);
await writeFile(jsonl, `${lines.join('\n')}\n`);
console.log(`\n${table}\n`);
console.log(`machine: ${describeMachine(machine)}`);
say(`wrote ${rel(md)} and ${rel(jsonl)}`);
