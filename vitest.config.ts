import './vitest.node20.js';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // Every package, tool and app with its own vitest.config.ts is a project.
    projects: ['packages/*/vitest.config.ts', 'tools/*/vitest.config.ts', 'apps/*/vitest.config.ts'],
  },
});
