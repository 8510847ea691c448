import '../../vitest.node20.js';
import { defineProject } from 'vitest/config';

export default defineProject({
  test: {
    name: 'device-tools',
    include: ['test/**/*.test.ts'],
    testTimeout: 300_000,
    hookTimeout: 300_000,
  },
});
