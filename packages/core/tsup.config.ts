import { defineConfig } from 'tsup';

export default defineConfig({
  // The rank worker is its own entry: the coordinator starts it with new Worker(dist/worker.js).
  // @tp/core/testing (the backend conformance suite) is built to dist/testing/, next to the worker
  // script its collective cases start (dist/testing/collective-worker.js). @tp/core/browser is the
  // Node-free part (src/browser.ts); chunks it shares with index hold only modules it reaches itself.
  entry: {
    index: 'src/index.ts',
    browser: 'src/browser.ts',
    worker: 'src/runtime/worker.ts',
    'testing/index': 'src/testing/index.ts',
    'testing/collective-worker': 'src/testing/collective-worker.ts',
  },
  format: ['esm'],
  dts: { entry: { index: 'src/index.ts', browser: 'src/browser.ts', 'testing/index': 'src/testing/index.ts' } },
  sourcemap: true,
  clean: true,
  target: 'node20',
  platform: 'node',
});
