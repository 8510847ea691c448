export * from './dtype.js';
export * from './convert.js';
export * from './safetensors.js';
export * from './checkpoint.js';
export * from './slice.js';
export * from './write.js';
