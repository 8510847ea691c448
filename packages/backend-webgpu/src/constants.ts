/**
 * WebGPU's flag values (fixed by the specification). Dawn in Node exposes the GPU* namespaces only
 * through `webgpu`'s `globals`, a browser on `globalThis`; the numbers are the same everywhere, so the
 * rank code uses them directly and needs neither.
 */
export const BufferUsage = { MAP_READ: 0x1, COPY_SRC: 0x4, COPY_DST: 0x8, UNIFORM: 0x40, STORAGE: 0x80 } as const;
export const ShaderStage = { COMPUTE: 0x4 } as const;
export const MapMode = { READ: 0x1 } as const;
