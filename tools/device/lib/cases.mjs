/** Which conformance cases the check reports on their own rows. */

/**
 * The cases of interface version 3's attention additions in @tp/core/testing's suite: relative
 * terms, YOSO's expectation scoring, per-sequence and masking bias, and their enqueue errors.
 */
export const ATTENTION_V3 = /^attention (relative|bias|expectation), |^attention with (a relative|relative tables|a bias neither)/;
