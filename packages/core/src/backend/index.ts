export * from './types.js';
export * from './host-collective.js';
