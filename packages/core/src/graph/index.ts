export * from './roles.js';
export * from './descriptor.js';
export * from './decoder-spec.js';
export * from './config.js';
export * from './match.js';
export * from './tree.js';
export * from './generic.js';
export * from './analyze.js';
export { FAMILIES, findFamily, knownModelTypes } from './families/index.js';
