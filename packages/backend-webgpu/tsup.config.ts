import { defineConfig } from 'tsup';

export default defineConfig({
  // `./browser` (src/browser.ts) is the Node-free entry: ranks on navigator.gpu in Web Workers. Chunks
  // it shares with index hold only modules it reaches itself, so no Dawn or node: import comes with it.
  entry: { index: 'src/index.ts', browser: 'src/browser.ts' },
  format: ['esm'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'node20',
  platform: 'node',
  external: ['webgpu'],
});
