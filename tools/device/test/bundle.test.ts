/**
 * tools/device without a GPU: bundle.sh assembles the folder (here without the compressed node, which
 * takes minutes to make; the size limit is checked with the node it would ship) and the bundled
 * check.sh --dry-run --quick runs every step but the GPU ones, printing its table last.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { KERNELS } from '@tp/backend-cuda/internals';
import { conformanceCases } from '@tp/core/testing';
import { backend as cpu } from '@tp/backend-cpu';
import { ATTENTION_V3 } from '../lib/cases.mjs';

const repo = fileURLToPath(new URL('../../..', import.meta.url));
const golden = process.env['TP_GOLDEN_DIR'] ?? path.resolve(repo, '../shared/golden');
const cudaDist = path.join(repo, 'packages/backend-cuda/dist');
const missing = [
  !existsSync(golden) && `no golden checkpoints at ${golden}`,
  !existsSync(path.join(cudaDist, 'tp_cuda.node')) && 'the CUDA addon is not built (no C++ compiler at pnpm build)',
  !existsSync(path.join(cudaDist, 'kernels.fatbin')) && 'the CUDA kernels are not built (no nvcc at pnpm build)',
].filter(Boolean);
const n = Object.keys(KERNELS).length;
const skipped = missing.length > 0 ? ` (skipped: ${missing.join('; ')})` : '';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'tp-device-bundle-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function du(dir: string): number {
  return Number(spawnSync('du', ['-sb', dir], { encoding: 'utf8' }).stdout.split('\t')[0]);
}

describe.skipIf(missing.length > 0)('tools/device', () => {
  const out = path.join(tmp, 'bundle');

  it(`bundle.sh makes a self-contained folder under 60 MB with the node it ships${skipped}`, () => {
    const r = spawnSync('bash', [path.join(repo, 'tools/device/bundle.sh'), '--out', out, '--golden', golden, '--no-node', '--no-build'], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    for (const f of ['check.sh', 'check.mjs', 'torch_bench.py', 'lib/golden.mjs', 'lib/bench.mjs', 'README.txt', 'node_modules/@tp/core/dist/index.js', 'node_modules/@tp/backend-cuda/dist/tp_cuda.node', 'node_modules/@tp/backend-cuda/dist/kernels.fatbin', 'node_modules/@huggingface/tokenizers/package.json', 'golden/llama/golden.json', 'golden/xglm/model.safetensors']) {
      expect(existsSync(path.join(out, f)), f).toBe(true);
    }
    expect(existsSync(path.join(out, 'golden/bert')), 'encoders stay out').toBe(false);
    // node compresses to about a quarter of its size with xz -6 (24 MB for Node 20's 99 MB)
    const withNode = du(out) + statSync(process.execPath).size * 0.3;
    expect(withNode).toBeLessThan(60 * 1024 * 1024);
  });

  it(`the bundled check.sh --dry-run --quick passes every step it can without a GPU and ends with the table${skipped}`, () => {
    const json = path.join(tmp, 'rows.json');
    const r = spawnSync('bash', [path.join(out, 'check.sh'), '--dry-run', '--quick', '--model-dir', path.join(tmp, 'model'), '--json', json], {
      encoding: 'utf8',
      env: { ...process.env, TP_CUDA_NO_PYTHON: '1', TP_GOLDEN_DIR: '' },
      timeout: 240_000,
    });
    expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
    const tail = r.stdout.trim().split('\n').slice(-3).join('\n');
    expect(tail).toMatch(/checks, 0 failed, in/);
    const rows = (JSON.parse(readFileSync(json, 'utf8')) as { rows: Array<{ check: string; status: string; detail: string }> }).rows;
    const byName = new Map(rows.map((row) => [row.check, row]));
    expect(byName.get('kernels')).toMatchObject({ status: 'ok', detail: expect.stringContaining(`sm_80 (${n} kernels), sm_90 (${n} kernels), compute_90 PTX (${n})`) });
    for (const check of ['conformance', 'golden f32 TP=1', 'golden greedy TP=1', 'golden bf16 TP=1', 'TP=2 one GPU (device)']) expect(byName.get(check)?.status, check).toBe('ok');
    // every case of interface version 3's attention additions runs, even in the dry run's sample
    const v3 = conformanceCases(cpu, { worlds: [1, 2] }).filter((c) => ATTENTION_V3.test(c.name)).map((c) => c.name);
    for (const kind of ['attention relative, ', 'attention expectation, ', 'attention bias, ', 'attention with a relative index']) expect(v3.some((name) => name.startsWith(kind)), kind).toBe(true);
    expect(byName.get('attention v3')).toMatchObject({ status: 'ok', detail: expect.stringContaining(`: ${v3.length}/${v3.length} cases passed`) });
    expect(byName.get('cuda')).toMatchObject({ status: 'info', detail: 'not found' });
    expect(rows.some((row) => row.check.startsWith('decode TP=1'))).toBe(true);
  });
});
