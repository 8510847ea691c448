export * from './errors/index.js';
export * from './checkpoint/index.js';
export * from './graph/index.js';
export * from './plan/index.js';
export * from './backend/index.js';
export * from './runtime/index.js';
