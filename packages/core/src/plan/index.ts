export * from './split.js';
export * from './layouts.js';
export * from './policy.js';
export * from './types.js';
export * from './storage.js';
export * from './planner.js';
export { SplitMismatchError, type SplitChoice } from './validate.js';
