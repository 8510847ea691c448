/**
 * Error translation: what the addon throws (library, call, status, the library's own name and text)
 * becomes a CudaError — a TpError naming the library, the call, the status's name and the rank —
 * with tp's code (out-of-memory for allocation failures, rank-failed otherwise); names come from the
 * library when it gave one, else from our tables.
 */
import { TpError } from '@tp/core';
import { describe, expect, it } from 'vitest';
import { CUBLAS_STATUS_NAMES, CudaError, CUDA_STATUS_NAMES, NCCL_RESULT_NAMES, statusName, translate } from '../src/errors.js';

/** An error shaped as context.cc's throwStatus makes it. */
function nativeError(fields: Record<string, unknown>): Error {
  return Object.assign(new Error(`${String(fields['call'])} failed with status ${String(fields['status'])}`), fields);
}

describe('error translation', () => {
  it('a CUDA failure names the library, the call, the code (the driver’s own name) and the rank and GPU', () => {
    const e = translate(nativeError({ library: 'cuda', call: 'cuLaunchKernel', status: 700, statusName: 'CUDA_ERROR_ILLEGAL_ADDRESS', statusText: 'an illegal memory access was encountered' }), { rank: 3, device: 1 });
    expect(e).toBeInstanceOf(CudaError);
    expect(TpError.isInstance(e)).toBe(true);
    expect(e).toMatchObject({ code: 'rank-failed', library: 'cuda', call: 'cuLaunchKernel', status: 700, statusName: 'CUDA_ERROR_ILLEGAL_ADDRESS', rank: 3, device: 1 });
    expect(e.message).toBe('rank 3 (GPU 1): cuda cuLaunchKernel failed with CUDA_ERROR_ILLEGAL_ADDRESS (700): an illegal memory access was encountered.');
    expect((e as CudaError).cause).toBeInstanceOf(Error);
  });

  it('without the library’s name (not loaded, or an old library) the name comes from our tables, else “<library> status N”', () => {
    expect(translate(nativeError({ library: 'cuda', call: 'cuMemAllocAsync', status: 2 }), { rank: 0 })).toMatchObject({ code: 'out-of-memory', statusName: 'CUDA_ERROR_OUT_OF_MEMORY' });
    expect(translate(nativeError({ library: 'cublasLt', call: 'cublasLtMatmul', status: 15 }))).toMatchObject({ code: 'rank-failed', statusName: 'CUBLAS_STATUS_NOT_SUPPORTED', rank: undefined });
    expect(translate(nativeError({ library: 'cublasLt', call: 'cublasLtCreate', status: 3 }))).toMatchObject({ code: 'out-of-memory', statusName: 'CUBLAS_STATUS_ALLOC_FAILED' });
    expect(translate(nativeError({ library: 'nccl', call: 'ncclAllReduce', status: 6, detail: 'peer 1 closed the connection' }), { rank: 1 })).toMatchObject({
      code: 'rank-failed',
      statusName: 'ncclRemoteError',
      message: 'rank 1: nccl ncclAllReduce failed with ncclRemoteError (6); peer 1 closed the connection.',
    });
    expect(statusName('cuda', 123456)).toBe('cuda status 123456');
    expect(statusName('nccl', 7)).toBe('ncclInProgress');
  });

  it('hints say what to do for out of memory, kernels this GPU cannot run, and old drivers', () => {
    expect(translate(nativeError({ library: 'cuda', call: 'cuMemAllocAsync', status: 2 })).message).toMatch(/larger --tp.*--dtype bf16/);
    expect(translate(nativeError({ library: 'cuda', call: 'cuModuleLoadData', status: 209 })).message).toMatch(/sm_80\/sm_90/);
    expect(translate(nativeError({ library: 'cuda', call: 'cuModuleLoadData', status: 222 })).message).toMatch(/cannot run them/);
  });

  it('a missing library (no status) is backend-missing; TpErrors pass through; anything else is internal', () => {
    expect(translate(Object.assign(new Error('NCCL (libnccl.so.2) is not loaded'), { library: 'nccl', call: 'dlopen' }), { rank: 2 })).toMatchObject({ code: 'backend-missing', message: 'rank 2: NCCL (libnccl.so.2) is not loaded' });
    const mine = new TpError('timeout', 'late');
    expect(translate(mine)).toBe(mine);
    expect(translate(new TypeError('boom'), { rank: 0 })).toMatchObject({ code: 'internal', message: 'rank 0: the CUDA backend failed: boom' });
  });

  it('the tables hold the values of the libraries’ headers', () => {
    expect(CUDA_STATUS_NAMES[0]).toBe('CUDA_SUCCESS');
    expect(CUDA_STATUS_NAMES[600]).toBe('CUDA_ERROR_NOT_READY');
    expect(CUDA_STATUS_NAMES[719]).toBe('CUDA_ERROR_LAUNCH_FAILED');
    expect(CUBLAS_STATUS_NAMES[13]).toBe('CUBLAS_STATUS_EXECUTION_FAILED');
    expect(NCCL_RESULT_NAMES[5]).toBe('ncclInvalidUsage');
  });
});
