/** `tp devices`: what each backend sees here, or the precise reason it cannot run. */
import os from 'node:os';
import { describe, expect, it } from 'vitest';
import { reportBackend } from '../src/commands/devices.js';
import { runCli, tinyLlama } from './helpers.js';

// WebGPU runs here on lavapipe (tools/setup.sh installs it; CI=true requires it).
const webgpu = await reportBackend('webgpu');
const noWebgpu = webgpu.state !== 'available' && process.env['CI'] !== 'true';
const webgpuSkip = noWebgpu ? ` (skipped: WebGPU is not available here: ${webgpu.reason})` : '';

describe('tp devices', () => {
  it('the CPU backend is available with one device: this machine', async () => {
    const report = await reportBackend('cpu');
    expect(report.state).toBe('available');
    expect(report.devices).toHaveLength(1);
    expect(report.devices[0]!.index).toBe(0);
    expect(report.devices[0]!.memoryBytes).toBe(os.totalmem());
  });

  it('--json prints one object per backend, every backend by default, each with a state', async () => {
    const { code, stdout } = await runCli(['devices', '--json']);
    expect(code).toBe(0);
    const reports = stdout.trim().split('\n').map((l) => JSON.parse(l) as { backend: string; state: string; reason?: string; devices: unknown[] });
    expect(reports.map((r) => r.backend)).toEqual(['cpu', 'webgpu', 'cuda']);
    for (const r of reports) {
      expect(['available', 'unavailable', 'not-installed', 'load-failed']).toContain(r.state);
      // a backend that cannot run says why
      if (r.state !== 'available') expect(r.reason).toBeTruthy();
      else expect(r.devices.length).toBeGreaterThan(0);
    }
  });

  it('--backend cuda on a machine without the NVIDIA driver is not available, with the reason', async () => {
    const report = await reportBackend('cuda');
    expect(report.state).not.toBe('available');
    expect(report.devices).toEqual([]);
    expect(report.reason).toMatch(/cuda/i);
  });

  it('an unknown backend is a usage error (exit 2) naming the backends', async () => {
    const { code, stderr } = await runCli(['devices', '--backend', 'tpu']);
    expect(code).toBe(2);
    expect(stderr).toContain('cpu, webgpu, cuda');
  });

  it.skipIf(noWebgpu)(`webgpu: every adapter in Dawn's order with what a choice depends on — vendor, architecture, software or not, features, limits${webgpuSkip}`, async () => {
    expect(webgpu.state).toBe('available');
    const usable = webgpu.devices.filter((d) => d.unusable === undefined);
    expect(usable.length).toBeGreaterThan(0);
    webgpu.devices.forEach((d, i) => expect(d.index).toBe(i));
    for (const d of usable) {
      expect(Object.keys(d.details ?? {}).slice(0, 5)).toEqual(['vendor', 'architecture', 'Dawn backend', 'software', 'features']);
      expect(typeof d.details!['software']).toBe('boolean');
      expect(Array.isArray(d.details!['features'])).toBe(true);
      expect(d.details!['maxStorageBufferBindingSize']).toBeGreaterThan(0);
    }
    const { code, stdout } = await runCli(['devices', '--backend', 'webgpu']);
    expect(code).toBe(0);
    expect(stdout).toMatch(/^webgpu \(@tp\/backend-webgpu\): available\n  0  .+\n {7}vendor: .*\n {7}architecture: .*\n {7}Dawn backend: .*\n {7}software: (yes|no)\n {7}features: .+\n {7}maxBufferSize: \d+\n/);
  });
});

describe('--devices', () => {
  it('is refused on the cpu backend, and must give one device per rank (exit 2, before loading)', async () => {
    const dir = await tinyLlama('devices-llama');
    const cpu = await runCli(['logits', dir, '--tokens', '1,2', '--devices', '0']);
    expect(cpu.code).toBe(2);
    expect(cpu.stderr).toMatch(/^tp: --devices places ranks on GPUs \(--backend webgpu or cuda\); the cpu backend runs every rank on this machine's cores\n/);
    const bad = await runCli(['logits', dir, '--tokens', '1,2', '--devices', '0,x']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--devices takes device numbers separated by commas, one per rank (e.g. 0,1 — see tp devices); "x" is not one');
    const bench = await runCli(['bench', dir, '--tp', '1,2', '--devices', '0', '--read-bandwidth', '1']);
    expect(bench.code).toBe(2);
    expect(bench.stderr).toContain('--devices lists 1 device, but --tp 2 needs one per rank');
  });

  it.skipIf(noWebgpu)(`webgpu: a list of the wrong length is a usage error; a device that does not exist is named${webgpuSkip}`, async () => {
    const dir = await tinyLlama('devices-llama-gpu');
    const short = await runCli(['logits', dir, '--tokens', '1,2', '--backend', 'webgpu', '--tp', '2', '--devices', '0']);
    expect(short.code).toBe(2);
    expect(short.stderr).toContain('--devices lists 1 device for 2 ranks (--tp 2): give one per rank, e.g. --devices 0,1');
    const missing = await runCli(['logits', dir, '--tokens', '1,2', '--backend', 'webgpu', '--devices', String(webgpu.devices.length + 3)]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain(`device ${webgpu.devices.length + 3} does not exist: WebGPU sees`);
  });
});
