/**
 * Opening one GPUDevice for a rank: the features and limits a tensor-parallel rank wants, asked for
 * explicitly (a device made without `requiredLimits` gets the spec's defaults — 128 MiB bindings,
 * 256 MiB buffers — whatever the adapter can do), each one only when the adapter has it.
 *
 * No Node-only import here: the Node entry passes the GPU object from `webgpu`'s `create()`, a browser
 * passes `navigator.gpu`.
 */
import { TpError } from '@tp/core';
import type { GpuGuard } from './guard.js';

/** Optional features a rank uses when present: f16 arithmetic, subgroup reductions, GPU timestamps. */
export const WANTED_FEATURES = ['shader-f16', 'subgroups', 'timestamp-query'] as const;

/** Limits raised to what the adapter allows (the rest keep their defaults). */
const RAISED_LIMITS = [
  'maxBufferSize',
  'maxStorageBufferBindingSize',
  'maxStorageBuffersPerShaderStage',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupsPerDimension',
] as const;

/** What a rank knows about its adapter: for reports (`tp devices`) and kernel choices. */
export interface AdapterSummary {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** A software rasteriser (lavapipe, SwiftShader, WARP): slow, and tuned differently. */
  fallback: boolean;
  features: string[];
  limits: { maxBufferSize: number; maxStorageBufferBindingSize: number; maxComputeWorkgroupStorageSize: number; maxComputeInvocationsPerWorkgroup: number; maxStorageBuffersPerShaderStage: number };
  subgroupMinSize?: number;
  subgroupMaxSize?: number;
}

export interface OpenedDevice {
  device: GPUDevice;
  adapter: AdapterSummary;
  /** shader-f16 granted: f16 weights are read as f16 in WGSL; otherwise unpacked from u32. */
  f16: boolean;
  subgroups: boolean;
  timestamps: boolean;
}

export function summarizeAdapter(adapter: GPUAdapter): AdapterSummary {
  const info = adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean; subgroupMinSize?: number; subgroupMaxSize?: number };
  const legacyFallback = (adapter as GPUAdapter & { isFallbackAdapter?: boolean }).isFallbackAdapter;
  const l = adapter.limits;
  return {
    vendor: info.vendor ?? '',
    architecture: info.architecture ?? '',
    device: info.device ?? '',
    description: info.description ?? '',
    fallback: Boolean(info.isFallbackAdapter ?? legacyFallback ?? false) || info.architecture === 'software',
    features: [...adapter.features].sort(),
    limits: {
      maxBufferSize: l.maxBufferSize,
      maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
      maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
      maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
    },
    ...(info.subgroupMinSize !== undefined ? { subgroupMinSize: info.subgroupMinSize } : {}),
    ...(info.subgroupMaxSize !== undefined ? { subgroupMaxSize: info.subgroupMaxSize } : {}),
  };
}

/** A short name for messages: "llvmpipe (LLVM 15.0.6, 256 bits) (mesa, software)". */
export function adapterName(a: AdapterSummary): string {
  const name = a.description || a.device || 'unnamed adapter';
  const what = [a.vendor, a.architecture].filter((s) => s !== '').join(', ');
  return what ? `${name} (${what})` : name;
}

/**
 * Request an adapter from `gpu` and a device with every wanted feature and raised limit it offers,
 * except the features in `without` (to exercise the fallbacks, e.g. f16 without shader-f16).
 */
export async function openDevice(gpu: GPU, label: string, without: readonly string[] = [], guard?: GpuGuard): Promise<OpenedDevice> {
  const wait = <T>(op: string, start: () => Promise<T>) => (guard ? guard.wait(op, start) : start());
  const adapter = await wait('requestAdapter', () => gpu.requestAdapter({ powerPreference: 'high-performance' }));
  if (adapter === null) {
    throw new TpError('backend-missing', `${label}: no WebGPU adapter is available (no GPU driver, or no Vulkan/Metal/D3D12; on Linux without a GPU install Mesa's lavapipe: bash tools/setup.sh as root)`);
  }
  const features = WANTED_FEATURES.filter((f) => adapter.features.has(f) && !without.includes(f));
  const requiredLimits: Record<string, number> = {};
  for (const name of RAISED_LIMITS) {
    const value = (adapter.limits as unknown as Record<string, number | undefined>)[name];
    if (typeof value === 'number') requiredLimits[name] = value;
  }
  let device: GPUDevice;
  try {
    device = await wait('requestDevice', () => adapter.requestDevice({ label, requiredFeatures: features as GPUFeatureName[], requiredLimits }));
  } catch (error) {
    throw new TpError('backend-missing', `${label}: the adapter refused a device (${(error as Error)?.message ?? String(error)})`, { cause: error });
  }
  return {
    device,
    adapter: summarizeAdapter(adapter),
    f16: device.features.has('shader-f16'),
    subgroups: device.features.has('subgroups'),
    timestamps: device.features.has('timestamp-query'),
  };
}
