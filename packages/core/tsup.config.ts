import { defineConfig } from 'tsup';

export default defineConfig({
  // The rank worker is its own entry: the coordinator starts it with new Worker(dist/worker.js).
  entry: { index: 'src/index.ts', worker: 'src/runtime/worker.ts' },
  format: ['esm'],
  dts: { entry: { index: 'src/index.ts' } },
  sourcemap: true,
  clean: true,
  target: 'node20',
  platform: 'node',
});
