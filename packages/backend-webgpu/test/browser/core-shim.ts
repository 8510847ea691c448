/**
 * What the backend imports from '@tp/core', taken from core's sources for the conformance page's
 * bundle: that page runs core's conformance suite from its sources, so the backend must see the same
 * modules (one TpError, one HostCollective), not core's built browser entry. (The model page uses the
 * built entry, `@tp/core/browser`, as a user's bundle would.)
 */
export * from '../../../core/src/errors/index.js';
export * from '../../../core/src/backend/index.js';
