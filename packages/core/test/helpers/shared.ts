/**
 * ../shared (golden checkpoints and reference fixtures) sits beside the repository in CI. Tests that
 * need it skip with the reason when it is absent — except under CI=true, where it must be there.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../..');
export const SHARED_DIR = process.env.TP_SHARED_DIR ?? path.resolve(repoRoot, '../shared');
export const GOLDEN_DIR = path.join(SHARED_DIR, 'golden');
export const FIXTURES_DIR = path.join(SHARED_DIR, 'reference', 'fixtures');

export const hasShared = existsSync(GOLDEN_DIR) && existsSync(FIXTURES_DIR);
if (!hasShared && process.env.CI === 'true') {
  throw new Error(`CI=true but the shared reference data is missing at ${SHARED_DIR}; CI must provide ../shared beside the repository`);
}
/** Suffix for test names that need ../shared. */
export const needsShared = hasShared ? '' : ` (skipped: ${SHARED_DIR} is absent)`;
