/**
 * Each rank reads only its own shard: the bytes a rank read from disk are exactly the plan's bytes for
 * that rank, and with tp > 1 every rank reads less than the whole checkpoint.
 */
import { closeSync, openSync, readdirSync, readSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import type { LoadProgressEvent } from '@tp/core';
import { withSession } from './helpers/engine.js';
import { goldenDir, hasGolden, needsGolden } from './helpers/shared.js';
import { useTinyModels } from './helpers/tiny.js';

const tiny = useTinyModels();

/** Tensor data bytes of every *.safetensors file in `dir` (file size − 8 − header length). */
function tensorBytes(dir: string): number {
  let total = 0;
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.safetensors'))) {
    const full = path.join(dir, file);
    const fd = openSync(full, 'r');
    try {
      const head = Buffer.alloc(8);
      readSync(fd, head, 0, 8, 0);
      total += statSync(full).size - 8 - Number(head.readBigUInt64LE(0));
    } finally {
      closeSync(fd);
    }
  }
  return total;
}

async function checkBytes(dir: string, tp: number): Promise<void> {
  const whole = tensorBytes(dir);
  expect(whole).toBeGreaterThan(0);
  const progress: LoadProgressEvent[] = [];
  await withSession(dir, { tpSize: tp, onProgress: (e) => progress.push(e) }, async (s) => {
    const { ranks } = s.load;
    expect(ranks.map((r) => r.rank)).toEqual(Array.from({ length: tp }, (_, r) => r));
    expect(s.plan.ranks).toHaveLength(tp);
    for (let r = 0; r < tp; r++) {
      expect(ranks[r]!.bytesRead, `rank ${r}`).toBe(s.plan.ranks[r]!.bytesToRead);
      expect(ranks[r]!.bytesRead, `rank ${r}`).toBeGreaterThan(0);
      if (tp > 1) expect(ranks[r]!.bytesRead, `rank ${r} reads less than the whole checkpoint`).toBeLessThan(whole);
      else expect(ranks[r]!.bytesRead, 'tp 1 reads the whole checkpoint').toBe(whole);
      // The last progress report of each rank is complete and agrees with the load report.
      const last = progress.filter((e) => e.rank === r).at(-1);
      expect(last, `progress of rank ${r}`).toBeDefined();
      expect(last!.bytesRead).toBe(last!.bytesTotal);
      expect(last!.bytesTotal).toBe(s.plan.ranks[r]!.bytesToRead);
    }
    const sum = ranks.reduce((n, r) => n + r.bytesRead, 0);
    expect(sum).toBe(s.plan.ranks.reduce((n, r) => n + r.bytesToRead, 0));
    // Replicated tensors (norms, embeddings) are read by every rank, so the ranks together read at least the whole.
    expect(sum).toBeGreaterThanOrEqual(whole);
  });
}

describe.each(['llama', 'gpt2'])('golden %s', (name) => {
  test.skipIf(!hasGolden).each([1, 2, 3])(`tp %i: each rank reads exactly its planned bytes${needsGolden}`, async (tp) => {
    await checkBytes(goldenDir(name), tp);
  });
});

describe('a synthetic checkpoint in 3 shards', () => {
  test.each([1, 2, 3])('tp %i: each rank reads exactly its planned bytes across the shard files', async (tp) => {
    const { dir } = await tiny('sharded', { family: 'qwen2', hidden: 96, heads: 6, kvHeads: 3, intermediate: 160, vocab: 300, shards: 3, seed: 4, tokenizer: false });
    expect(readdirSync(dir).filter((f) => f.endsWith('.safetensors'))).toHaveLength(3);
    await checkBytes(dir, tp);
  });
});
