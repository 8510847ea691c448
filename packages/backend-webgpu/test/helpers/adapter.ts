/**
 * Whether this machine has a WebGPU adapter, decided once per test file. Without one the WebGPU tests
 * skip with the reason in their names — except under CI=true, where a missing adapter is a failure:
 * CI installs lavapipe (tools/setup.sh), so no adapter there means the setup is broken.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Backend } from '@tp/core';
import { backend as sourceBackend } from '../../src/index.js';

/**
 * The backend the tests use. Worker threads import `backend.moduleUrl`; from ../src that is a .ts
 * file a Node 20 worker cannot load, so the ranks load the built dist/index.js (pnpm build) instead.
 */
export const backend: Backend = (() => {
  if (!sourceBackend.moduleUrl.endsWith('.ts')) return sourceBackend;
  const built = fileURLToPath(new URL('../../dist/index.js', import.meta.url));
  if (!existsSync(built)) throw new Error(`the WebGPU backend is not built (${built} is missing); run pnpm build first`);
  return { ...sourceBackend, moduleUrl: pathToFileURL(built).href };
})();

const probe = await sourceBackend.probe();
if (!probe.available && process.env.CI === 'true') {
  throw new Error(`CI=true but WebGPU has no adapter: ${probe.reason}. CI must install lavapipe (bash tools/setup.sh as root on Debian)`);
}

/** Suffix for test names: empty when an adapter is available, else why the test is skipped. */
export const adapterSkip = probe.available ? '' : ` (skipped: no WebGPU adapter — ${probe.reason})`;
/** The adapter the tests run on, for names and reports. */
export const adapterText = probe.devices[0]?.name ?? 'none';
