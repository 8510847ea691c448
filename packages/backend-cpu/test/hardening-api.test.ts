/**
 * The library side of issue 11: generate's AbortSignal (stops at a step boundary with the tokens so
 * far), warnings for sampling options with no effect, the position limit saying how many tokens fit,
 * pipeline() with token ids when there is no tokenizer, the unsupported-model message naming what
 * runs, and a process that never calls dispose() still exiting by itself (after a caught error too).
 */
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, test } from 'vitest';
import { initInference, pipeline, UnsupportedModelError } from '@tp/core';
import { backend, expectTpError, withSession } from './helpers/engine.js';
import { hasGolden, needsGolden } from './helpers/shared.js';
import { useTinyModels } from './helpers/tiny.js';
import { useGoldenVariants } from './helpers/variant.js';

const tiny = useTinyModels();
// max_position_embeddings 64, no tokenizer.json
const llama = () => tiny('llama', { family: 'llama', vocab: 256, maxPositions: 64, seed: 4, tokenizer: false });

describe('generate', () => {
  test('an AbortSignal stops at the next step boundary: the tokens so far, finishReason aborted', async () => {
    const { dir } = await llama();
    await withSession(dir, { tpSize: 2 }, async (s) => {
      const stop = new AbortController();
      const seen: number[] = [];
      const [r] = await s.generate([[1, 2, 3]], {
        maxNewTokens: 40,
        stopAtEos: false,
        signal: stop.signal,
        onToken: ({ token, step }) => {
          seen.push(token);
          if (step === 2) stop.abort();
        },
      });
      expect(r!.finishReason).toBe('aborted');
      expect(r!.tokens).toEqual(seen);
      expect(r!.tokens).toHaveLength(3);
      const [full] = await s.generate([[1, 2, 3]], { maxNewTokens: 3, stopAtEos: false });
      expect(full!.tokens).toEqual(r!.tokens); // the same greedy tokens, and the session still works
      const [before] = await s.generate([[1, 2, 3]], { maxNewTokens: 5, signal: AbortSignal.abort() });
      expect([before!.tokens, before!.finishReason]).toEqual([[], 'aborted']);
    });
  });

  test('sampling options with no effect give warnings in the result; effective ones do not', async () => {
    const { dir } = await llama();
    await withSession(dir, {}, async (s) => {
      const [greedy] = await s.generate([[1, 2]], { maxNewTokens: 2, topK: 5, seed: 9 });
      expect(greedy!.warnings).toEqual(['topK, seed have no effect at temperature 0 (greedy: the most likely token every time); set temperature above 0 to sample']);
      const [plain] = await s.generate([[1, 2]], { maxNewTokens: 2 });
      expect(plain!.warnings).toBeUndefined();
      expect(greedy!.tokens).toEqual(plain!.tokens);
      const [sampled] = await s.generate([[1, 2]], { maxNewTokens: 2, temperature: 0.8, topK: 5 });
      expect(sampled!.warnings).toBeUndefined();
    });
  });

  test('prompt + new tokens beyond max_position_embeddings is refused before any step, saying how many fit', async () => {
    const { dir } = await llama();
    await withSession(dir, {}, async (s) => {
      expect(s.positionLimit).toBe(64);
      const e = await expectTpError(s.generate([[1, 2, 3, 4]], { maxNewTokens: 5_000_000 }), 'invalid-argument', { argument: 'maxNewTokens' });
      expect(e.message).toMatch(/a prompt of 4 tokens plus 5000000 new tokens needs 5000004 positions, but Llama takes at most 64: 60 new tokens fit/);
      const [r] = await s.generate([[1, 2, 3, 4]], { maxNewTokens: 60, stopAtEos: false });
      expect(r!.tokens).toHaveLength(60);
    });
  });
});

describe('pipeline', () => {
  test('text-generation takes token ids when the checkpoint has no tokenizer; text is refused naming the fix', async () => {
    const { dir } = await llama();
    const generator = await pipeline('text-generation', dir, { backend, tpSize: 2 });
    try {
      const [out] = await generator([1, 2, 3], { max_new_tokens: 4, stopAtEos: false });
      expect(out!.generated_token_ids.slice(0, 3)).toEqual([1, 2, 3]);
      expect(out!.generated_token_ids).toHaveLength(7);
      expect(out!.generated_text).toBeUndefined();
      const [batch] = await generator([[1, 2, 3]], { max_new_tokens: 4, stopAtEos: false, return_full_text: false });
      expect(batch![0]!.generated_token_ids).toEqual(out!.generated_token_ids.slice(3));
      await expectTpError(generator('hello'), 'invalid-argument', { argument: 'dir' });
    } finally {
      await generator.dispose();
    }
  });
});

const variant = useGoldenVariants();

describe('unsupported models', () => {
  test.skipIf(!hasGolden)(`the refusal names the model types the engine runs${needsGolden}`, async () => {
    const dir = await variant('longformer', 'roberta', { config: { model_type: 'longformer', architectures: ['LongformerForMaskedLM'], attention_window: [4, 4] } });
    const error = await expectTpError(initInference(dir, { backend }), 'unsupported-model', { modelType: 'longformer' });
    expect(error).toBeInstanceOf(UnsupportedModelError);
    expect(error.message).toMatch(/The engine runs these model types: llama, .*\bbert\b.*\bt5\b/);
  });
});

describe('a script that never calls dispose() still exits', () => {
  const coreUrl = pathToFileURL(path.resolve(fileURLToPath(import.meta.url), '../../../core/dist/index.js')).href;
  const cpuUrl = pathToFileURL(path.resolve(fileURLToPath(import.meta.url), '../../dist/index.js')).href;

  async function runScript(dir: string, body: string): Promise<{ code: number | null; signal: string | null; out: string; ms: number }> {
    const file = path.join(dir, `..`, `no-dispose-${Math.random().toString(36).slice(2)}.mjs`);
    await writeFile(file, `import { initInference } from '${coreUrl}';\nimport { backend } from '${cpuUrl}';\n${body}\n`);
    const started = Date.now();
    return new Promise((resolve) => {
      const child = spawn(process.execPath, [file], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (out += d));
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      child.on('exit', (code, signal) => {
        clearTimeout(timer);
        resolve({ code, signal, out, ms: Date.now() - started });
      });
    });
  }

  test('initInference + generate at tp 2, no dispose: the process exits on its own', async () => {
    const { dir } = await llama();
    const r = await runScript(dir, `const s = await initInference(${JSON.stringify(dir)}, { backend, tpSize: 2 });\nconst [out] = await s.generate([[1, 2, 3]], { maxNewTokens: 4 });\nconsole.log('tokens', out.tokens.length);`);
    expect(r.signal, r.out).toBeNull();
    expect(r.code, r.out).toBe(0);
    expect(r.out).toMatch(/tokens 4/);
  }, 40_000);

  test('the same after a caught error from a request', async () => {
    const { dir } = await llama();
    const r = await runScript(
      dir,
      `const s = await initInference(${JSON.stringify(dir)}, { backend, tpSize: 2 });\ntry { await s.generate([[1, 99999]], { maxNewTokens: 4 }); } catch (e) { console.log('caught', e.code); }\nawait s.generate([[1, 2]], { maxNewTokens: 2 });\nconsole.log('done');`,
    );
    expect(r.signal, r.out).toBeNull();
    expect(r.code, r.out).toBe(0);
    expect(r.out).toMatch(/caught invalid-argument\ndone/);
  }, 40_000);
});
