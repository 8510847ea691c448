#!/usr/bin/env node
/**
 * The CUDA backend's check on a GPU host (run through check.sh, from the folder bundle.sh makes, or
 * from the repository). It prints what it does as it goes and a short table last:
 *
 *   libraries   the driver, cuBLASLt and NCCL found (paths, versions), the GPUs, the fatbin's contents
 *   conformance @tp/core/testing's suite on CUDA (worlds 1–2 with --quick, 1–4 otherwise)
 *   golden      the decoder golden checkpoints at TP=1: f32 logits within 1e-4 of the spread and the
 *               greedy tokens; bf16 storage against an f32 computation on the same rounded weights
 *   TP=2        on one GPU against TP=1: the in-process collective, and NCCL when it allows two ranks
 *               per GPU (NCCL ≥ 2.30)
 *   bench       copy bandwidth, the decode GEMV's bandwidth, decode ms/token at batch 1 on a synthetic
 *               ~1B Llama in bf16 and its GB/s, and the same model through transformers generate
 *
 * Options: --quick (under 4 minutes: six golden families, worlds 1–2, no TP=2 bench), --dry-run (no
 * GPU: the CPU backend stands in, a small model, every step but the GPU ones), --golden DIR,
 * --model-dir DIR (where the synthetic checkpoint is written; reused when it matches), --skip STEP
 * (libraries | conformance | golden | bench), --cases REGEX (only the conformance cases whose names
 * match, e.g. --cases 'attention' with --skip golden,bench for a short kernel check), --json FILE
 * (the rows as JSON too).
 *
 * The conformance step runs every case of @tp/core/testing's suite, so cases added to it (interface
 * version 3's relative, expectation and per-sequence-bias attention among them) run here without a
 * change; their share is reported on its own row ("attention v3"), so a GPU run shows them at a glance.
 * Exit status: 0 when nothing failed.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';
import { conformanceCases } from '@tp/core/testing';
import { backend as cpu } from '@tp/backend-cpu';
import { backend as cuda, copyBandwidth, gemvBandwidth, loadLibraries, probeCuda, summarizeFatbin } from '@tp/backend-cuda';
import { decodeTiming, findPython, FULL, SMALL, syntheticModel, torchTiming } from './lib/bench.mjs';
import { BF16_TOL, FAMILIES, GOLDEN_TOL, goldenChecks, QUICK, summarize, TP_TOL } from './lib/golden.mjs';
import { ATTENTION_V3 } from './lib/cases.mjs';
import { elapsed, fmt, Report, withDeadline } from './lib/report.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const argv = process.argv.slice(2);
const flag = (name) => argv.includes(name);
const option = (name) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
};
const dryRun = flag('--dry-run');
const quick = flag('--quick');
const skip = new Set(argv.flatMap((a, i) => (argv[i - 1] === '--skip' ? a.split(',') : [])));
const casesPattern = option('--cases');
const casesFilter = casesPattern === undefined ? undefined : new RegExp(casesPattern, 'i');

const goldenDir = option('--golden') || process.env.TP_GOLDEN_DIR || [path.join(here, 'golden'), path.resolve(here, '../../../shared/golden')].find((d) => existsSync(d));
const modelDir = option('--model-dir') ?? path.join(os.tmpdir(), dryRun ? 'tp-check-llama-small' : 'tp-check-llama-1b');
const report = new Report();
const log = (text) => console.log(`          ${text.split('\n').join('\n          ')}`);
/** The backend under test: CUDA, or the CPU backend in a dry run. */
const backend = dryRun ? cpu : cuda;
const budget = quick ? { conformance: 100_000, golden: 60_000, bench: 120_000 } : { conformance: 600_000, golden: 600_000, bench: 600_000 };

console.log(`tp CUDA check${dryRun ? ' (dry run: the CPU backend stands in for CUDA, nothing runs on a GPU)' : ''}${quick ? ' --quick' : ''}`);
console.log(`node ${process.version} on ${os.hostname()} (${os.cpus().length} CPUs), golden: ${goldenDir ?? 'not found'}, model: ${modelDir}`);

async function step(name, ms, body) {
  if (skip.has(name)) return report.add(name, 'skip', 'skipped (--skip)');
  console.log(`\n── ${name} ${'─'.repeat(Math.max(0, 60 - name.length))}`);
  try {
    await withDeadline(Promise.resolve().then(body), ms, name);
  } catch (error) {
    report.add(name, 'FAIL', error.message);
    log(error.stack ?? String(error));
  }
  return undefined;
}

// ───────────────────────────── libraries, GPUs, kernels ─────────────────────────────

let probe;
let ncclVersion;
await step('libraries', 60_000, async () => {
  probe = await probeCuda();
  for (const lib of probe.libraries) {
    const where = lib.loaded ? `${lib.path}${lib.versionText ? ` (${lib.versionText})` : ''}` : 'not found';
    report.add(lib.library, lib.loaded ? 'ok' : lib.library === 'cuda' && !dryRun ? 'FAIL' : dryRun ? 'info' : 'skip', where);
    for (const line of lib.looked) log(line);
  }
  ncclVersion = probe.libraries.find((l) => l.library === 'nccl')?.version;
  const nvidiaSmi = spawnSync('nvidia-smi', ['--query-gpu=name,driver_version,memory.total', '--format=csv,noheader'], { encoding: 'utf8' });
  if (nvidiaSmi.status === 0) log(`nvidia-smi: ${nvidiaSmi.stdout.trim()}`);
  const ldconfig = spawnSync('sh', ['-c', 'ldconfig -p 2>/dev/null | grep -E "libnccl|libcublasLt|libcuda\\.so"'], { encoding: 'utf8' });
  if (ldconfig.stdout.trim()) log(`ldconfig: ${ldconfig.stdout.trim()}`);
  if (probe.available) {
    report.add('GPUs', 'ok', probe.devices.map((d) => `${d.name}, ${(d.memoryBytes / 2 ** 30).toFixed(0)} GiB`).join('; '));
  } else {
    report.add('GPUs', dryRun ? 'info' : 'FAIL', `CUDA unavailable: ${probe.reason.split('\n')[0].replace(/ Looked in:$/, '')}`);
  }
  if (probe.kernels.error) {
    report.add('kernels', 'FAIL', probe.kernels.error);
  } else {
    const summary = summarizeFatbin(new Uint8Array(readFileSync(probe.kernels.path)));
    const sass = [...summary.sass.entries()].map(([arch, k]) => `sm_${arch} (${k.length} kernels)`);
    const ptx = [...summary.ptx.entries()].map(([arch, k]) => `compute_${arch} PTX (${k.size})`);
    report.add('kernels', 'ok', `${[...sass, ...ptx].join(', ')}: ${probe.kernels.path}`);
  }
});

const gpu = probe?.available === true;
if (!dryRun && !gpu) console.log('\nno usable GPU: the checks below that need one fail; run with --dry-run to check the plumbing only');
// Hold GPU 0's primary context for the whole run: the conformance suite makes and disposes a rank per
// case, and without another holder the driver would tear the context down and build it again each time.
let keeper;
if (!dryRun && gpu) {
  try {
    keeper = new (loadLibraries().libraries.native.Context)(0, { uploadStagingBytes: 2 ** 20, downloadStagingBytes: 2 ** 20, workspaceBytes: 2 ** 20 });
  } catch (error) {
    log(`could not hold the primary context: ${error.message}`);
  }
}

// ───────────────────────────── conformance ─────────────────────────────

await step('conformance', budget.conformance, async () => {
  if (!dryRun && !gpu) return report.add('conformance', 'FAIL', 'no usable GPU');
  let cases = conformanceCases(backend, { worlds: quick ? [1, 2] : [1, 2, 3, 4] });
  if (casesFilter) cases = cases.filter((c) => casesFilter.test(c.name));
  else if (dryRun) cases = cases.filter((_, i) => i % 12 === 0 || /collectives world 2/.test(_.name) || ATTENTION_V3.test(_.name)); // the harness, not the CPU backend
  if (cases.length === 0) return report.add('conformance', 'FAIL', `no conformance case matches --cases ${casesPattern}`);
  const failures = [];
  const started = Date.now();
  for (const c of cases) {
    try {
      await withDeadline(c.run(), 120_000, c.name);
    } catch (error) {
      failures.push({ name: c.name, message: error.message });
      log(`FAIL ${c.name}\n  ${error.message.split('\n').slice(0, 6).join('\n  ')}`);
    }
  }
  const text = `${cases.length - failures.length}/${cases.length} cases passed in ${elapsed(started)}${casesFilter ? ` (--cases ${casesPattern})` : dryRun ? ' (a sample, on the CPU backend)' : ''}`;
  report.add('conformance', failures.length ? 'FAIL' : 'ok', failures.length ? `${text}; first: ${failures[0].name}: ${failures[0].message.split('\n')[0]}` : text);
  const v3 = cases.filter((c) => ATTENTION_V3.test(c.name));
  const v3Failed = failures.filter((f) => ATTENTION_V3.test(f.name));
  if (v3.length === 0) report.add('attention v3', casesFilter ? 'skip' : 'FAIL', casesFilter ? 'no relative, expectation or per-sequence bias case among the cases run' : 'the suite has no relative, expectation or per-sequence bias attention case: is @tp/core older than interface version 3?');
  else report.add('attention v3', v3Failed.length ? 'FAIL' : 'ok', `relative terms, expectation scoring, per-sequence and masking bias: ${v3.length - v3Failed.length}/${v3.length} cases passed${v3Failed.length ? `; first: ${v3Failed[0].name}` : ''}`);
});

// ───────────────────────────── golden ─────────────────────────────

await step('golden', budget.golden + (quick ? 0 : 300_000), async () => {
  if (!goldenDir) return report.add('golden', 'FAIL', 'no golden checkpoints (--golden DIR, or bundle.sh copies them next to check.mjs)');
  if (!dryRun && !gpu) return report.add('golden', 'FAIL', 'no usable GPU');
  const families = quick || dryRun ? QUICK : FAMILIES;
  const modes = ['device'];
  let ncclNote;
  if (dryRun) ncclNote = 'dry run (the CPU backend has one collective, its host one)';
  else if ((ncclVersion ?? 0) >= 23000) modes.push('nccl');
  else ncclNote = ncclVersion ? `NCCL ${fmtNccl(ncclVersion)} refuses two ranks per GPU (2.30 allows it)` : 'NCCL was not found';
  const r = await goldenChecks({ goldenDir, families, backend, tp2Modes: modes, log });
  const f32 = summarize(r.f32, GOLDEN_TOL);
  report.add('golden f32 TP=1', f32.ok ? 'ok' : 'FAIL', `logits: ${f32.text}`);
  const greedy = summarize(r.greedy, GOLDEN_TOL);
  report.add('golden greedy TP=1', greedy.ok ? 'ok' : 'FAIL', `8 new tokens and their step logits: ${greedy.text}`);
  const bf16 = summarize(r.bf16, BF16_TOL);
  report.add('golden bf16 TP=1', bf16.ok ? 'ok' : 'FAIL', `vs f32 compute on the same bf16 weights (CPU backend): ${bf16.text}`);
  for (const [mode, list] of r.tp2) {
    const s = summarize(list, TP_TOL);
    report.add(`TP=2 one GPU (${mode})`, s.ok ? 'ok' : 'FAIL', `vs TP=1${dryRun ? ' (dry run: CPU backend)' : ''}: ${s.text}`);
  }
  if (ncclNote) report.add('TP=2 one GPU (nccl)', 'skip', ncclNote);
});

function fmtNccl(v) {
  return `${Math.floor(v / 10000)}.${Math.floor((v % 10000) / 100)}.${v % 100}`;
}

// ───────────────────────────── bench ─────────────────────────────

await step('bench', budget.bench + 300_000, async () => {
  if (!dryRun && !gpu) return report.add('bench', 'FAIL', 'no usable GPU');
  const dims = dryRun ? SMALL : FULL;
  const newTokens = dryRun ? 16 : 128;
  let copy;
  if (!dryRun) {
    copy = await copyBandwidth(0, 2 ** 30, 20);
    report.add('copy bandwidth', 'info', `device-to-device ${fmt(copy.gbPerSecond, 4)} GB/s (bytes read + written)`);
    const { CudaRank } = await import('@tp/backend-cuda');
    const rank = await cuda.createRank({ rank: 0, world: 1, communicator: cuda.createCommunicator(1, { timeoutMs: 60_000 }), options: {} });
    try {
      if (!(rank instanceof CudaRank)) throw new Error('not a CUDA rank');
      const shapes = [
        [dims.intermediate, dims.hidden],
        [dims.hidden, dims.intermediate],
        [dims.vocab, dims.hidden],
        [14336, 4096],
      ];
      const parts = [];
      for (const [N, K] of shapes) {
        const g = await gemvBandwidth(rank, N, K, 'bf16', 1, 50);
        parts.push(`[${N}×${K}] ${fmt(g.gbPerSecond, 4)} GB/s (${fmt(g.microseconds)} µs, ${fmt((100 * g.gbPerSecond) / copy.gbPerSecond)}%)`);
      }
      report.add('decode GEMV bf16', 'info', `${parts.join(', ')} — target ≥ 85% of the copy`);
    } finally {
      await rank.dispose();
    }
  }
  mkdirSync(path.dirname(modelDir), { recursive: true });
  const model = await syntheticModel(modelDir, dims, log);
  const kvDtype = backend.kvDtypes.includes('bf16') ? 'bf16' : 'f32';
  const tp1 = await decodeTiming({ dir: model.dir, backend, tpSize: 1, newTokens, kvDtype });
  const gbs = model.bytes / (tp1.decodeMs / 1000) / 1e9;
  const share = copy ? ` = ${fmt((100 * gbs) / copy.gbPerSecond)}% of the copy` : '';
  report.add(`decode TP=1 ${dryRun ? '(CPU, small model)' : 'bf16 ~1B'}`, 'info', `${fmt(tp1.decodeMs, 4)} ms/token (${newTokens} new tokens after a 16-token prompt; prefill ${fmt(tp1.prefillMs)} ms), ${fmt(gbs, 4)} GB/s of weights${share}`);
  if (!dryRun && !quick) {
    const tp2 = await decodeTiming({ dir: model.dir, backend, tpSize: 2, newTokens, kvDtype, env: { TP_CUDA_COLLECTIVE: 'device' } });
    report.add('decode TP=2 one GPU', 'info', `${fmt(tp2.decodeMs, 4)} ms/token (in-process collective; both ranks share the GPU's bandwidth)`);
  }
  const py = findPython();
  if (!py.python) {
    report.add('transformers generate', 'skip', py.why);
  } else {
    const t = torchTiming({ python: py.python, dir: model.dir, newTokens, dryRun });
    if (t.error) report.add('transformers generate', 'FAIL', t.error);
    else if (t.skipped) report.add('transformers generate', 'skip', `${t.skipped}${t.torch ? ` (torch ${t.torch}, transformers ${t.transformers})` : ''}`);
    else report.add('transformers generate', 'info', `${fmt(t.ms_per_token, 4)} ms/token eager bf16 (torch ${t.torch}, transformers ${t.transformers}): tp is ${fmt(t.ms_per_token / tp1.decodeMs)}× faster (target ≥ 3×)`);
  }
});

keeper?.dispose();
console.log(report.table());
const json = option('--json');
if (json) writeFileSync(json, `${JSON.stringify({ dryRun, quick, rows: report.rows }, null, 2)}\n`);
process.exit(report.failed > 0 ? 1 : 0);
