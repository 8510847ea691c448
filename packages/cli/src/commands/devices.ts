/** `tp devices`: the devices each backend sees, numbered as `--devices` / backendOptions.devices uses them. */
import { BACKENDS, resolveBackend, TpError, type BackendDevice, type BackendProbe } from '@tp/core';
import { UsageError, type CliIo } from '../io.js';
import { parseCommandLine } from './args.js';

export const devicesHelp = `Usage: tp devices [--backend cpu|webgpu|cuda] [--json]

List the devices each backend sees on this machine, numbered from 0 (rank r takes device r mod the
count unless --devices maps ranks to devices: tp run ... --tp 2 --devices 0,1), with what a choice
depends on: WebGPU adapters show vendor, architecture, whether they are software (lavapipe,
SwiftShader), their features (shader-f16, subgroups) and key limits; CUDA GPUs their compute
capability, multiprocessors and PCI bus. A backend that is not installed, fails to load
or cannot run here says why: the package to install, the load error, or what its probe found missing
(for CUDA: every place it looked for the driver and libraries).

Options:
  --backend NAME   one backend (default: all of ${Object.keys(BACKENDS).join(', ')})
  --json           one JSON object per backend: {backend, package, state, reason?,
                   devices: [{index, name, memoryBytes?, details?, unusable?}]}
  -h, --help       show this help

Examples:
  tp devices
  tp devices --backend cuda --json
`;

export interface DeviceReport {
  backend: string;
  package: string;
  /** `available`, or why not: `unknown`, `not-installed`, `load-failed`, `unavailable`. */
  state: string;
  reason?: string;
  devices: Array<{ index: number } & BackendDevice>;
}

/** What one backend reports: its probe's devices, or the reason it cannot be used here. */
export async function reportBackend(name: string): Promise<DeviceReport> {
  const packageName = BACKENDS[name]?.packageName ?? '';
  let probe: BackendProbe;
  try {
    const backend = await resolveBackend(name);
    probe = await backend.probe();
  } catch (error) {
    if (!TpError.isInstance(error)) throw error;
    const reason = (error as TpError & { reason?: string }).reason ?? error.code;
    return { backend: name, package: packageName, state: reason, reason: error.message, devices: [] };
  }
  const devices = probe.devices.map((d, index) => ({ index, ...d }));
  return { backend: name, package: packageName, state: probe.available ? 'available' : 'unavailable', ...(probe.reason ? { reason: probe.reason } : {}), devices };
}

export async function devicesCommand(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommandLine('devices', argv, {
    backend: { type: 'string' },
    json: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    io.stdout(devicesHelp);
    return 0;
  }
  if (positionals.length > 0) throw new UsageError(`tp devices takes no arguments; got ${positionals.join(' ')}`);
  if (values.backend !== undefined && BACKENDS[values.backend] === undefined) {
    throw new UsageError(`--backend must be one of ${Object.keys(BACKENDS).join(', ')}; got "${values.backend}"`);
  }
  const names = values.backend === undefined ? Object.keys(BACKENDS) : [values.backend];
  const reports: DeviceReport[] = [];
  for (const name of names) reports.push(await reportBackend(name));
  if (values.json) {
    for (const r of reports) io.stdout(`${JSON.stringify(r)}\n`);
    return 0;
  }
  for (const r of reports) {
    io.stdout(`${r.backend} (${r.package}): ${r.state}\n`);
    for (const d of r.devices) {
      io.stdout(`  ${d.index}  ${d.name}${d.memoryBytes !== undefined ? `  ${(d.memoryBytes / 2 ** 30).toFixed(1)} GiB` : ''}${d.unusable ? `  (unusable: ${d.unusable})` : ''}\n`);
      for (const [label, value] of Object.entries(d.details ?? {})) io.stdout(`       ${label}: ${formatDetail(value)}\n`);
    }
    if (r.state !== 'available' && r.reason) io.stdout(`  ${r.reason}\n`);
  }
  return 0;
}

/** A detail's value as one line: lists joined, booleans as yes/no, byte-like limits as written. */
function formatDetail(value: string | number | boolean | readonly string[]): string {
  if (typeof value === 'boolean') return value ? 'yes' : 'no';
  if (Array.isArray(value)) return value.length === 0 ? '(none)' : value.join(', ');
  return String(value);
}
