/**
 * What the backend imports from '@tp/core', taken from core's sources for the browser bundle: the
 * package's own entry also pulls in the engine, which imports Node modules.
 */
export * from '../../../core/src/errors/index.js';
export * from '../../../core/src/backend/index.js';
