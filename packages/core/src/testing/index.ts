/**
 * @tp/core/testing: the backend conformance suite and the host reference kernels it checks against.
 * Test-framework agnostic: a backend's test runs `for (const c of conformanceCases(backend)) it(c.name, c.run)`.
 */
export { conformanceCases, type ConformanceCase, type ConformanceOptions } from './conformance.js';
export * as reference from './reference.js';
export { goldenCases, relativeToSpread, type GoldenOptions } from './golden.js';
