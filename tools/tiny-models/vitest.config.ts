import '../../vitest.node20.js';
import { defineProject } from 'vitest/config';

export default defineProject({
  test: {
    name: 'tiny-models',
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
  },
});
