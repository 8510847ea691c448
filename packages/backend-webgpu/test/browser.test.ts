/**
 * The backend in a browser: headless Chromium (Debian's `chromium`, driven by playwright-core) opens a
 * page on 127.0.0.1 that runs the conformance suite's single-rank cases on the browser's own WebGPU
 * adapter (SwiftShader: no shader-f16, so f16 weights take the u32-packed path) and every collective
 * between two Web Workers, each with its own adapter and device, through SharedArrayBuffer (the page
 * is served with the COOP/COEP headers that make it cross-origin isolated).
 *
 * A second page runs the golden Llama at TP=2 (test/browser/model-page.ts) through core's
 * openWebModel: two Web Workers (serveWebRank), each with its own device, each fetching only its own
 * byte ranges of model.safetensors from this server (HTTP Range requests, counted per rank), the
 * logits at every position and 8 greedy tokens from `generate` compared with Hugging Face's; then the
 * golden BERT (an encoder) at TP=2, its `encoderOutputs` (last hidden state, masked-LM logits). That page
 * is bundled from `@tp/core/browser` (core's built browser entry) and this package's src/browser.ts
 * with esbuild for `platform: 'browser'` and no Node module marked external, so a Node builtin anywhere
 * in their imports fails the build.
 *
 * Without Chromium the test is skipped, saying why; under CI=true that is a failure (tools/setup.sh
 * installs it as root on Debian).
 */
import { createReadStream, existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { analyzeModel, openCheckpoint, planTensorParallel } from '@tp/core';
import { relativeToSpread } from '@tp/core/testing';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { browserBackend } from '../src/browser.js';
import { GOLDEN_DIR, goldenSkip, hasGolden } from './helpers/golden.js';
import type { ModelResults } from './browser/model-page.js';

const CHROMIUM = process.env.TP_CHROMIUM ?? '/usr/bin/chromium';
const hasChromium = existsSync(CHROMIUM);
if (!hasChromium && process.env.CI === 'true') {
  throw new Error(`CI=true but Chromium is missing at ${CHROMIUM}; CI must install it (bash tools/setup.sh as root on Debian)`);
}
const skip = hasChromium ? '' : ` (skipped: no Chromium at ${CHROMIUM}; set TP_CHROMIUM or install the chromium package)`;

const here = path.dirname(fileURLToPath(import.meta.url));
const page = (script: string) => `<!doctype html><meta charset="utf-8"><title>tp webgpu</title><script type="module" src="/${script}"></script>`;
const LLAMA = path.join(GOLDEN_DIR, 'llama');
const BERT = path.join(GOLDEN_DIR, 'bert');
const llamaTokenizer = existsSync(path.join(LLAMA, 'tokenizer.json'));
/** What the model page reported, for the tests after the one that ran it. */
let modelResults: ModelResults | undefined;
/** max |ours − golden| / spread of golden, as the Node golden tests use (golden's floats have 6 digits). */
const GOLDEN_TOL = 1e-4;

let dir = '';
let server: Server | undefined;
let origin = '';
/** Body bytes and requests the server sent for /golden/llama/*, by the `rank` query parameter. */
const served = new Map<string, { bytes: number; requests: number }>();

/**
 * A file of a golden folder (the Llama's, the BERT's), with single-range Range requests (206 and
 * Content-Range) and HEAD, as a static server or a CDN answers them; the bytes sent for the Llama's
 * are counted per `?rank=`.
 */
async function serveGolden(req: IncomingMessage, res: ServerResponse, folder: string, name: string, headers: Record<string, string>): Promise<void> {
  const file = path.join(folder, path.basename(name));
  const info = await stat(file).catch(() => undefined);
  if (info === undefined) {
    res.writeHead(404, headers).end();
    return;
  }
  const who = new URL(req.url ?? '/', 'http://127.0.0.1').searchParams.get('rank') ?? 'none';
  // Another folder's bytes are sent but not counted.
  const count = folder === LLAMA ? (served.get(who) ?? { bytes: 0, requests: 0 }) : { bytes: 0, requests: 0 };
  if (folder === LLAMA) served.set(who, count);
  count.requests++;
  const type = name.endsWith('.json') ? 'application/json' : 'application/octet-stream';
  if (req.method === 'HEAD') {
    res.writeHead(200, { ...headers, 'Content-Type': type, 'Content-Length': info.size, 'Accept-Ranges': 'bytes' }).end();
    return;
  }
  const range = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
  const start = range ? Number(range[1]) : 0;
  const end = range ? Math.min(Number(range[2]), info.size - 1) : info.size - 1;
  if (start > end) {
    res.writeHead(416, { ...headers, 'Content-Range': `bytes */${info.size}` }).end();
    return;
  }
  count.bytes += end - start + 1;
  res.writeHead(range ? 206 : 200, { ...headers, 'Content-Type': type, 'Content-Length': end - start + 1, ...(range ? { 'Content-Range': `bytes ${start}-${end}/${info.size}` } : {}) });
  createReadStream(file, { start, end }).pipe(res);
}

beforeAll(async () => {
  if (!hasChromium) return;
  dir = await mkdtemp(path.join(os.tmpdir(), 'tp-webgpu-browser-'));
  // The backend and core's conformance suite from their sources, '@tp/core' narrowed to what runs in a browser.
  await build({
    entryPoints: { page: path.join(here, 'browser/page.ts'), worker: path.join(here, 'browser/worker.ts') },
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'chrome120',
    outdir: dir,
    alias: { '@tp/core': path.join(here, 'browser/core-shim.ts') },
    // Reached only by the suite's collective cases, which the page does not run.
    external: ['node:*'],
    logLevel: 'silent',
  });
  server = createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const name = url.pathname === '/' ? 'index.html' : path.basename(url.pathname);
    const headers = { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' };
    if (name === 'index.html' || name === 'model.html') {
      res.writeHead(200, { ...headers, 'Content-Type': 'text/html' }).end(page(name === 'index.html' ? 'page.js' : 'model-page.js'));
      return;
    }
    if (url.pathname.startsWith('/golden/llama/') || url.pathname.startsWith('/golden/bert/')) {
      await serveGolden(req, res, url.pathname.startsWith('/golden/llama/') ? LLAMA : BERT, url.pathname, headers);
      return;
    }
    try {
      const body = await readFile(path.join(dir, name));
      res.writeHead(200, { ...headers, 'Content-Type': 'text/javascript' }).end(body);
    } catch {
      res.writeHead(404, headers).end();
    }
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  origin = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Open `url` in headless Chromium, collecting the console, and run `use` on the page. */
async function withPage<T>(url: string, use: (page: import('playwright-core').Page, console: string[]) => Promise<T>): Promise<T> {
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--enable-unsafe-webgpu', '--enable-features=Vulkan', '--no-sandbox', '--disable-background-networking', '--no-first-run'],
  });
  try {
    const page = await browser.newPage();
    const console: string[] = [];
    page.on('console', (m) => console.push(m.text()));
    page.on('pageerror', (e) => console.push(`page error: ${e.message}`));
    await page.goto(url);
    return await use(page, console);
  } finally {
    await browser.close();
  }
}

/**
 * esbuild for browsers, nothing external: a Node builtin anywhere in the imports fails the build.
 * Returns the bundled files, relative to the repository root.
 */
async function bundleForBrowser(entries: Record<string, string> | { source: string }, outdir: string) {
  const input = 'source' in entries ? { stdin: { contents: entries.source, resolveDir: path.resolve(here, '..'), loader: 'ts' as const } } : { entryPoints: entries };
  const result = await build({ ...input, bundle: true, format: 'esm', platform: 'browser', target: 'chrome120', outdir, metafile: true, logLevel: 'silent', absWorkingDir: path.resolve(here, '../../..') });
  return Object.keys(result.metafile.inputs);
}

describe(`WebGPU backend in headless Chromium${skip}`, () => {
  it.skipIf(!hasChromium)('every single-rank conformance case passes in the page, and every collective between two Web Workers with a device each', async () => {
    await withPage(`${origin}/`, async (page, console) => {
      await page.waitForFunction(() => window.tpResults?.done === true, undefined, { timeout: 600_000, polling: 500 });
      const results = (await page.evaluate(() => window.tpResults))!;
      expect(results.error, `the page failed: ${results.error}\n${console.join('\n')}`).toBeUndefined();
      expect(results.crossOriginIsolated).toBe(true);
      const failed = results.outcomes.filter((o) => !o.ok);
      expect(failed.map((o) => `${o.name}: ${o.message}`), `adapter ${JSON.stringify(results.adapter)}`).toEqual([]);
      expect(results.outcomes.length).toBeGreaterThan(150);
      expect(results.outcomes.some((o) => o.name.includes('2 Web Workers'))).toBe(true);
    });
  }, 900_000);

  it.skipIf(!hasChromium || !hasGolden)(`openWebModel: the golden Llama at TP=2 in two Web Workers, each fetching only its share over HTTP Range requests, gives Hugging Face's logits within ${GOLDEN_TOL} of their spread and its 8 greedy tokens${goldenSkip}`, async () => {
    // @tp/core resolves to its built browser entry (the `browser` condition); the backend from its sources.
    const inputs = await bundleForBrowser({ 'model-page': path.join(here, 'browser/model-page.ts'), 'model-worker': path.join(here, 'browser/model-worker.ts') }, dir);
    expect(inputs.filter((i) => i.startsWith('node:'))).toEqual([]);
    expect(inputs).toContain('packages/core/dist/browser.js');
    expect(inputs).toContain('packages/backend-webgpu/src/browser.ts');
    served.clear();
    const golden = JSON.parse(readFileSync(path.join(LLAMA, 'golden.json'), 'utf8')) as { input_ids: number[][]; logits: number[][][]; greedy: { new_tokens: number[][]; step_logits: number[][][] } };
    const results = await withPage(`${origin}/model.html`, async (page, console) => {
      await page.waitForFunction(() => window.tpModel?.done === true, undefined, { timeout: 600_000, polling: 500 });
      const r = (await page.evaluate(() => window.tpModel)) as ModelResults;
      expect(r.error, `the page failed: ${r.error}\n${console.join('\n')}`).toBeUndefined();
      return r;
    });
    modelResults = results;
    expect(results.crossOriginIsolated).toBe(true);
    // The page planned from headers fetched over HTTP exactly as Node plans from the folder.
    const ckpt = await openCheckpoint(LLAMA);
    const nodePlan = planTensorParallel(analyzeModel(ckpt), { tpSize: 2, storageDtype: 'auto', kvDtype: 'f32', supportedStorage: browserBackend.storageDtypes, supportedKv: browserBackend.kvDtypes });
    ckpt.close();
    expect(results.plan).toEqual(JSON.parse(JSON.stringify(nodePlan)));

    // Each worker fetched its plan's share of the weights plus the header, nothing else of the file.
    const weights = readFileSync(path.join(LLAMA, 'model.safetensors'));
    const fileSize = weights.length;
    const headerBytes = 8 + Number(weights.readBigUInt64LE(0));
    const share = results.ranks!.map((r) => r.bytesToRead);
    const config = readFileSync(path.join(LLAMA, 'config.json')).length;
    for (const rank of [0, 1]) {
      const fetched = served.get(String(rank))!;
      expect(results.ranks![rank]!.bytesRead, `rank ${rank} loaded its plan's share`).toBe(share[rank]);
      expect(fetched.bytes, `rank ${rank}: config, header and its share`).toBe(config + headerBytes + share[rank]!);
      expect(share[rank]!).toBeLessThan(0.6 * fileSize);
    }
    // The page itself read the config, the header and the folder's small JSON files only (no weight byte).
    const optional = ['generation_config.json', 'tokenizer.json', 'tokenizer_config.json'].map((f) => path.join(LLAMA, f)).filter((f) => existsSync(f));
    expect(served.get('page')!.bytes).toBe(config + headerBytes + optional.reduce((n, f) => n + readFileSync(f).length, 0));
    const ours = Float32Array.from(results.logits!.flat());
    expect(ours.length).toBe(golden.logits.flat(2).length);
    const error = relativeToSpread(ours, golden.logits.flat(2));
    const stepErrors = golden.input_ids.map((_, b) => relativeToSpread(Float32Array.from(results.stepLogits![b]!.flat()), golden.greedy.step_logits[b]!.flat()));
    process.stdout.write(
      `browser TP=2 llama: file ${fileSize} bytes; rank 0 fetched ${served.get('0')!.bytes} bytes in ${served.get('0')!.requests} requests, rank 1 ${served.get('1')!.bytes} in ${served.get('1')!.requests} ` +
        `(weights ${share.join(' + ')}, header ${headerBytes}, config ${config}); logits ${error.toExponential(2)} of the spread, step logits ${stepErrors.map((e) => e.toExponential(2)).join(', ')}\n`,
    );
    expect(error).toBeLessThanOrEqual(GOLDEN_TOL);
    expect(results.tokens).toEqual(golden.greedy.new_tokens);
    expect(results.finishReasons).toEqual(golden.input_ids.map(() => 'length'));
    stepErrors.forEach((e, b) => expect(e, `step logits of sequence ${b}`).toBeLessThanOrEqual(GOLDEN_TOL));
    // Disposed: every worker released, and a later request refused saying so.
    expect(results.afterDispose).toMatch(/disposed/);
    expect(results.hasTokenizer).toBe(llamaTokenizer);
  }, 900_000);

  it.skipIf(!hasChromium || !hasGolden)(`openWebModel: the golden BERT (an encoder) at TP=2 in two Web Workers gives Hugging Face's last hidden state and masked-LM logits within ${GOLDEN_TOL} of their spread${goldenSkip}`, async () => {
    expect(modelResults, 'the model page ran (the test before this one)').toBeDefined();
    expect(modelResults!.bertError, `the BERT failed in the page: ${modelResults!.bertError}`).toBeUndefined();
    const bert = modelResults!.bert!;
    const golden = JSON.parse(readFileSync(path.join(BERT, 'golden.json'), 'utf8')) as { last_hidden_state: number[][][]; logits: number[][][] };
    const ckpt = await openCheckpoint(BERT);
    const nodePlan = planTensorParallel(analyzeModel(ckpt), { tpSize: 2, storageDtype: 'auto', kvDtype: 'f32', supportedStorage: browserBackend.storageDtypes, supportedKv: browserBackend.kvDtypes });
    ckpt.close();
    expect(bert.plan).toEqual(JSON.parse(JSON.stringify(nodePlan)));
    const hidden = Float32Array.from(bert.hidden.flat());
    const logits = Float32Array.from(bert.logits.flat());
    expect(hidden.length).toBe(golden.last_hidden_state.flat(2).length);
    expect(logits.length).toBe(golden.logits.flat(2).length);
    const hiddenError = relativeToSpread(hidden, golden.last_hidden_state.flat(2));
    const logitsError = relativeToSpread(logits, golden.logits.flat(2));
    process.stdout.write(`browser TP=2 bert: last hidden state ${hiddenError.toExponential(2)} of the spread, masked-LM logits ${logitsError.toExponential(2)}\n`);
    expect(hiddenError).toBeLessThanOrEqual(GOLDEN_TOL);
    expect(logitsError).toBeLessThanOrEqual(GOLDEN_TOL);
  });

  it.skipIf(!hasChromium || !hasGolden || !llamaTokenizer)(
    `openWebModel: a text prompt round-trips through the fetched tokenizer.json${llamaTokenizer ? '' : ` (skipped: ${LLAMA} has no tokenizer.json; the golden checkpoints carry none)`}${goldenSkip}`,
    () => {
      expect(modelResults, 'the golden Llama page ran (the test before this one)').toBeDefined();
      const trip = modelResults!.roundTrip!;
      expect(trip.ids.length).toBeGreaterThan(0);
      expect(trip.decoded.trim()).toBe(trip.text);
      expect(typeof trip.generated).toBe('string');
    },
  );
});

describe('the browser entries', () => {
  it('@tp/core/browser and @tp/backend-webgpu/browser, as built, bundle for browsers with no Node module', async () => {
    const out = await mkdtemp(path.join(os.tmpdir(), 'tp-webgpu-entries-'));
    try {
      const source = "export * from '@tp/core/browser';\nexport * from '@tp/backend-webgpu/browser';\n";
      const inputs = await bundleForBrowser({ source }, out).catch((error: Error) => {
        throw new Error(`${error.message}\n(are both packages built? pnpm --filter @tp/core build && pnpm --filter @tp/backend-webgpu build)`);
      });
      expect(inputs).toContain('packages/core/dist/browser.js');
      expect(inputs).toContain('packages/backend-webgpu/dist/browser.js');
      expect(inputs.filter((i) => i.startsWith('node:') || i.includes('node_modules/webgpu'))).toEqual([]);
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  });
});
