/**
 * Compute pipelines, compiled once per kernel variant and cached for the device's life.
 *
 * Compilation is synchronous (kernels are enqueued without waiting), and its errors are taken from the
 * device's uncaptured-error events rather than from an error scope: popErrorScope and
 * getCompilationInfo are promises, and a rank must not hold a GPU promise it does not need (a thread
 * terminated with one pending aborts the process; see guard.ts). Dawn's message carries the module's
 * label (the kernel) and "line:column"; the error is reported at the rank's next synchronisation point
 * as a WgslCompileError naming the kernel, the line and the column.
 */
import { TpError } from '@tp/core';
import { ShaderStage } from './constants.js';
import { kernelSource, type KernelDef } from './kernel.js';

export interface Compiled {
  readonly def: KernelDef;
  readonly pipeline: GPUComputePipeline;
  readonly layout: GPUBindGroupLayout;
}

export class WgslCompileError extends TpError {
  readonly kernel: string;
  readonly line: number;
  readonly column: number;

  constructor(kernel: string, line: number, column: number, detail: string, source: string | undefined) {
    const text = source?.split('\n')[line - 1];
    super('internal', `WGSL kernel "${kernel}" does not compile: line ${line}, column ${column}: ${detail}${text !== undefined ? `\n  ${text.trim()}` : ''}\nThis is a bug in @tp/backend-webgpu; please report it with this message.`);
    this.name = 'WgslCompileError';
    this.kernel = kernel;
    this.line = line;
    this.column = column;
  }
}

/**
 * Labels of shader modules as Dawn quotes them: `[ShaderModuleDescriptor ""gemv_f32""]` when a module
 * fails to parse, `[Invalid ShaderModule "gemv_f32"]` when a pipeline uses it.
 */
const LABEL = /ShaderModule(?:Descriptor)?\s+"+([^"]+)"+/;
/** Tint's position prefix: ":12:7 error: message". */
const POSITION = /:(\d+):(\d+) error: ([^\n]*)/;

/**
 * A kernel that needs WGSL extensions besides f16 (`enable subgroups;`): directives go first in a
 * module, before what kernelSource writes. Subgroup kernels also turn off the subgroup uniformity
 * diagnostic: they call subgroup operations where control flow is uniform per subgroup (each subgroup
 * takes its own rows), which WGSL's analysis, modelling only workgroup uniformity, cannot prove.
 */
export interface DirectedKernelDef extends KernelDef {
  readonly enable?: readonly string[];
}

/** The module's source: its directives (if any), then kernelSource. Compile errors' lines count both. */
export function withDirectives(def: DirectedKernelDef): string {
  const lines = (def.enable ?? []).map((name) => `enable ${name};`);
  if (def.enable?.includes('subgroups')) lines.push('diagnostic(off, subgroup_uniformity);');
  return lines.length === 0 ? kernelSource(def) : `${lines.join('\n')}\n${kernelSource(def)}`;
}

export class Pipelines {
  private readonly cache = new Map<string, Compiled>();
  private readonly sources = new Map<string, string>();
  private errors: TpError[] = [];

  constructor(private readonly device: GPUDevice) {}

  get(def: KernelDef): Compiled {
    let compiled = this.cache.get(def.name);
    if (compiled === undefined) {
      compiled = this.compile(def);
      this.cache.set(def.name, compiled);
    }
    return compiled;
  }

  /**
   * Claim a device error message that is about one of these kernels' WGSL; returns whether it was.
   * (The failing pipeline's later uses produce more errors; the first one is the cause.)
   */
  claim(message: string): boolean {
    const kernel = LABEL.exec(message)?.[1];
    const source = kernel === undefined ? undefined : this.sources.get(kernel);
    if (kernel === undefined || source === undefined) return false;
    const at = POSITION.exec(message);
    this.errors.push(at ? new WgslCompileError(kernel, Number(at[1]), Number(at[2]), at[3]!, source) : new TpError('internal', `WGSL kernel "${kernel}" failed: ${message}`));
    return true;
  }

  /**
   * Throw the compile error claimed since the last check, if any: the one with a position (the
   * module's), before those that only say a pipeline made from it is invalid.
   */
  check(): void {
    const errors = this.errors;
    this.errors = [];
    const first = errors.find((e) => e instanceof WgslCompileError) ?? errors[0];
    if (first !== undefined) throw first;
  }

  get size(): number {
    return this.cache.size;
  }

  private compile(def: KernelDef): Compiled {
    const device = this.device;
    const source = withDirectives(def);
    this.sources.set(def.name, source);
    const entries: GPUBindGroupLayoutEntry[] = def.bindings.map((b, i) => ({
      binding: i,
      visibility: ShaderStage.COMPUTE,
      buffer: { type: b.write ? 'storage' : 'read-only-storage' },
    }));
    entries.push({ binding: def.bindings.length, visibility: ShaderStage.COMPUTE, buffer: { type: 'uniform' } });
    const layout = device.createBindGroupLayout({ label: def.name, entries });
    const module = device.createShaderModule({ label: def.name, code: source });
    const pipeline = device.createComputePipeline({
      label: def.name,
      layout: device.createPipelineLayout({ label: def.name, bindGroupLayouts: [layout] }),
      compute: { module, entryPoint: 'main' },
    });
    return { def, pipeline, layout };
  }
}
