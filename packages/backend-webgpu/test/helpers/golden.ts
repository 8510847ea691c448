/**
 * ../shared (the golden checkpoints) sits beside the repository in CI. Tests that need it skip, with
 * the reason in their name, when it is absent — except under CI=true, where it must be there.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../..');
export const GOLDEN_DIR = path.join(process.env.TP_SHARED_DIR ?? path.resolve(repoRoot, '../shared'), 'golden');

export const hasGolden = existsSync(path.join(GOLDEN_DIR, 'summary.json'));
if (!hasGolden && process.env.CI === 'true') {
  throw new Error(`CI=true but the golden checkpoints are missing at ${GOLDEN_DIR}; CI must provide ../shared beside the repository`);
}
/** Suffix for the names of tests that need ../shared/golden. */
export const goldenSkip = hasGolden ? '' : ` (skipped: ${GOLDEN_DIR} is absent)`;
