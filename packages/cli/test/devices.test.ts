/** `tp devices`: what each backend sees here, or the precise reason it cannot run. */
import os from 'node:os';
import { describe, expect, it } from 'vitest';
import { reportBackend } from '../src/commands/devices.js';
import { runCli } from './helpers.js';

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
});
