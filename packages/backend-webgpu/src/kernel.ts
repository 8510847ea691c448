/**
 * How a WGSL kernel is described: its storage bindings, its parameters (one uniform struct, written
 * per dispatch) and its code. One description is one pipeline; variants (a weight dtype, vec4 loads)
 * are separate descriptions with their own names, so a pipeline is compiled once per shape class and
 * sizes travel as parameters.
 */
import { TpError } from '@tp/core';

export type ParamType = 'u32' | 'i32' | 'f32';

export interface Binding {
  readonly name: string;
  /** The WGSL type of the storage variable, e.g. `array<f32>` or `array<vec4<f32>>`. */
  readonly type: string;
  /** read_write when true, read-only otherwise. */
  readonly write?: boolean;
}

export interface KernelDef {
  /** Unique per variant: it keys the pipeline cache and names the kernel in errors. */
  readonly name: string;
  readonly bindings: readonly Binding[];
  readonly params: ReadonlyArray<readonly [string, ParamType]>;
  /** WGSL after the declarations: helpers and `@compute @workgroup_size(...) fn main(...)`. */
  readonly code: string;
  /** Needs `enable f16;`. */
  readonly f16?: boolean;
}

/** Each dispatch's parameters occupy one slot of the uniform buffer (minUniformBufferOffsetAlignment). */
export const PARAM_SLOT_BYTES = 256;
const MAX_PARAMS = PARAM_SLOT_BYTES / 4;

/** Shared WGSL: flat workgroup indices over 2-D grids (a dimension holds at most 65535 workgroups). */
const PRELUDE = /* wgsl */ `
const NEG_BIG: f32 = -3.0e38;
fn flatGroup(wid: vec3u, nwg: vec3u) -> u32 { return wid.x + wid.y * nwg.x; }
`;

/** The full WGSL module of a kernel. Line numbers in compile errors refer to this text. */
export function kernelSource(def: KernelDef): string {
  if (def.params.length > MAX_PARAMS) throw new TpError('internal', `kernel ${def.name} has ${def.params.length} parameters; at most ${MAX_PARAMS} fit a slot`);
  const lines: string[] = [];
  if (def.f16) lines.push('enable f16;');
  def.bindings.forEach((b, i) => lines.push(`@group(0) @binding(${i}) var<storage, ${b.write ? 'read_write' : 'read'}> ${b.name}: ${b.type};`));
  // A struct with no members is not valid WGSL: kernels without parameters get a placeholder.
  const fields = def.params.length > 0 ? def.params : ([['unused', 'u32']] as const);
  lines.push(`struct Params { ${fields.map(([n, t]) => `${n}: ${t},`).join(' ')} }`);
  lines.push(`@group(0) @binding(${def.bindings.length}) var<uniform> p: Params;`);
  return `${lines.join('\n')}\n${PRELUDE}\n${def.code}\n`;
}

/** The parameter words of one dispatch, in the struct's order. */
export function encodeParams(def: KernelDef, values: Readonly<Record<string, number>>, out: ArrayBuffer, byteOffset: number): void {
  const u = new Uint32Array(out, byteOffset, def.params.length);
  const i = new Int32Array(out, byteOffset, def.params.length);
  const f = new Float32Array(out, byteOffset, def.params.length);
  def.params.forEach(([name, type], k) => {
    const v = values[name];
    if (v === undefined || !Number.isFinite(v)) throw new TpError('internal', `kernel ${def.name}: parameter ${name} is ${String(v)}`);
    if (type === 'f32') f[k] = v;
    else if (type === 'i32') i[k] = v;
    else u[k] = v >>> 0;
  });
}

/** Workgroup counts for `count` workgroups laid out in x, then y (kernels read them with flatGroup). */
export function grid(count: number): [number, number] {
  if (count <= 65535) return [Math.max(1, count), 1];
  const y = Math.ceil(count / 65535);
  return [Math.ceil(count / y), y];
}
