/**
 * WebGPU adapters in Node, through Dawn (`webgpu`'s `create()`).
 *
 * - Every object `create()` returns is kept referenced for the thread's life: Dawn polls its instance
 *   in the background, and collecting it while a device is alive crashes the process.
 * - WebGPU has no call that lists adapters. Dawn's `adapter=<name>` flag does, in its error when no
 *   adapter matches ("Available adapters: * backend: 'vulkan', name: '…'"), so the list is read from
 *   there, and a listed adapter is opened again with `adapter=<its name>`. Identical GPUs have identical
 *   names; Dawn then opens the first one for each of them (see the README).
 */
import { create } from 'webgpu';
import { summarizeAdapter, type AdapterSummary } from '../device.js';

const instances = new Map<string, GPU>();

/** The GPU object for these `create()` flags, made once per thread and never released. */
export function gpuFor(flags: readonly string[]): GPU {
  const key = flags.join('\n');
  let gpu = instances.get(key);
  if (gpu === undefined) {
    gpu = create([...flags]);
    instances.set(key, gpu);
  }
  return gpu;
}

export interface ListedAdapter {
  /** Dawn's backend for it: vulkan, metal, d3d12, … */
  backend: string;
  /** Dawn's native name, the value of the `adapter=` flag. */
  name: string;
}

/** A name no adapter has: Dawn answers with the list of the ones it sees. */
const NO_SUCH_ADAPTER = 'adapter=\u0001tp-list-adapters';

let listed: Promise<ListedAdapter[]> | undefined;

/** The adapters Dawn sees, in its enumeration order (once per thread). */
export function listAdapters(): Promise<ListedAdapter[]> {
  listed ??= (async () => {
    try {
      await gpuFor([NO_SUCH_ADAPTER]).requestAdapter();
      return [];
    } catch (error) {
      return parseAdapterList(String((error as Error)?.message ?? error));
    }
  })();
  return listed;
}

/** The " * backend: 'vulkan', name: 'llvmpipe (…)'" lines of Dawn's message. */
export function parseAdapterList(message: string): ListedAdapter[] {
  const out: ListedAdapter[] = [];
  for (const m of message.matchAll(/^\s*\*\s*backend:\s*'([^']*)',\s*name:\s*'(.*)'\s*$/gm)) out.push({ backend: m[1]!, name: m[2]! });
  return out;
}

/** `create()` flags that open listed adapter `a`. */
export function flagsFor(a: ListedAdapter): string[] {
  return [`backend=${a.backend}`, `adapter=${a.name}`];
}

/** What a listed adapter offers (features, limits), for `tp devices`. */
export async function describeAdapter(a: ListedAdapter): Promise<AdapterSummary | undefined> {
  const adapter = await gpuFor(flagsFor(a)).requestAdapter();
  return adapter === null ? undefined : summarizeAdapter(adapter);
}
