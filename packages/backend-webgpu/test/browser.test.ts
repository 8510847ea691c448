/**
 * The backend in a browser: headless Chromium (Debian's `chromium`, driven by playwright-core) opens a
 * page on 127.0.0.1 that runs the conformance suite's single-rank cases on the browser's own WebGPU
 * adapter (SwiftShader: no shader-f16, so f16 weights take the u32-packed path) and every collective
 * between two Web Workers, each with its own adapter and device, through SharedArrayBuffer (the page
 * is served with the COOP/COEP headers that make it cross-origin isolated).
 *
 * Without Chromium the test is skipped, saying why; under CI=true that is a failure (tools/setup.sh
 * installs it as root on Debian).
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const CHROMIUM = process.env.TP_CHROMIUM ?? '/usr/bin/chromium';
const hasChromium = existsSync(CHROMIUM);
if (!hasChromium && process.env.CI === 'true') {
  throw new Error(`CI=true but Chromium is missing at ${CHROMIUM}; CI must install it (bash tools/setup.sh as root on Debian)`);
}
const skip = hasChromium ? '' : ` (skipped: no Chromium at ${CHROMIUM}; set TP_CHROMIUM or install the chromium package)`;

const here = path.dirname(fileURLToPath(import.meta.url));
const PAGE = '<!doctype html><meta charset="utf-8"><title>tp webgpu</title><script type="module" src="/page.js"></script>';

let dir = '';
let server: Server | undefined;
let origin = '';

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
    const name = req.url === '/' ? 'index.html' : path.basename(req.url ?? '');
    const headers = { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' };
    if (name === 'index.html') {
      res.writeHead(200, { ...headers, 'Content-Type': 'text/html' }).end(PAGE);
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

describe(`WebGPU backend in headless Chromium${skip}`, () => {
  it.skipIf(!hasChromium)('every single-rank conformance case passes in the page, and every collective between two Web Workers with a device each', async () => {
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
      await page.goto(`${origin}/`);
      await page.waitForFunction(() => window.tpResults?.done === true, undefined, { timeout: 600_000, polling: 500 });
      const results = (await page.evaluate(() => window.tpResults))!;
      expect(results.error, `the page failed: ${results.error}\n${console.join('\n')}`).toBeUndefined();
      expect(results.crossOriginIsolated).toBe(true);
      const failed = results.outcomes.filter((o) => !o.ok);
      expect(failed.map((o) => `${o.name}: ${o.message}`), `adapter ${JSON.stringify(results.adapter)}`).toEqual([]);
      expect(results.outcomes.length).toBeGreaterThan(150);
      expect(results.outcomes.some((o) => o.name.includes('2 Web Workers'))).toBe(true);
    } finally {
      await browser.close();
    }
  }, 900_000);
});
