/**
 * @tp/backend-cuda/internals: the pieces of the backend below the `Backend` object, for tools and
 * tests that drive a rank over another device context (test/fixtures/emulator.mjs runs the
 * conformance suite against an emulated device). Not a stable API.
 */
export { CudaRank, CudaTensor, kernelNames, type CudaRankOptions, type RankDevice, type CudaCollective } from './rank.js';
export { DeviceCollective, NcclCollective, createCudaCommunicator, abortCudaCommunicator, chooseMode, type CudaCommunicatorInit } from './collective.js';
export { KERNELS, ATTENTION_PARTIAL_ORDER, argLayout, attentionPartialArgs, packArgs, DTYPE_CODE, ACTIVATION_CODE, type AttentionPartialArgs, type KernelName, type ArgKind } from './kernels.js';
export { attentionVariant, type AttentionShape, type AttentionVariant } from './attention.js';
export type { NativeContext, NativeDevice, NativeMath, Native, Handle } from './native.js';
export { loadNative, loadFatbin } from './native.js';
