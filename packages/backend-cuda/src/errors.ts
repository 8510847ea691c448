/**
 * Every failure of a CUDA, cuBLASLt or NCCL call becomes a CudaError: a TpError naming the library,
 * the call, the status code and its name, and the rank (and GPU) it happened on. The addon throws
 * plain Errors carrying { library, call, status, statusName?, statusText? } (context.cc,
 * throwStatus); `translate` turns them into CudaErrors where the rank is known.
 */
import { TpError, type TpErrorCode } from '@tp/core';

export type CudaLibrary = 'cuda' | 'cublasLt' | 'nccl';

/** CUresult names (CUDA 13.0 include/cuda.h) of the statuses a user is likely to meet. */
export const CUDA_STATUS_NAMES: Readonly<Record<number, string>> = {
  0: 'CUDA_SUCCESS',
  1: 'CUDA_ERROR_INVALID_VALUE',
  2: 'CUDA_ERROR_OUT_OF_MEMORY',
  3: 'CUDA_ERROR_NOT_INITIALIZED',
  4: 'CUDA_ERROR_DEINITIALIZED',
  34: 'CUDA_ERROR_STUB_LIBRARY',
  36: 'CUDA_ERROR_CALL_REQUIRES_NEWER_DRIVER',
  46: 'CUDA_ERROR_DEVICE_UNAVAILABLE',
  100: 'CUDA_ERROR_NO_DEVICE',
  101: 'CUDA_ERROR_INVALID_DEVICE',
  200: 'CUDA_ERROR_INVALID_IMAGE',
  201: 'CUDA_ERROR_INVALID_CONTEXT',
  209: 'CUDA_ERROR_NO_BINARY_FOR_GPU',
  217: 'CUDA_ERROR_PEER_ACCESS_UNSUPPORTED',
  218: 'CUDA_ERROR_INVALID_PTX',
  222: 'CUDA_ERROR_UNSUPPORTED_PTX_VERSION',
  300: 'CUDA_ERROR_INVALID_SOURCE',
  400: 'CUDA_ERROR_INVALID_HANDLE',
  500: 'CUDA_ERROR_NOT_FOUND',
  600: 'CUDA_ERROR_NOT_READY',
  700: 'CUDA_ERROR_ILLEGAL_ADDRESS',
  701: 'CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES',
  702: 'CUDA_ERROR_LAUNCH_TIMEOUT',
  704: 'CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED',
  705: 'CUDA_ERROR_PEER_ACCESS_NOT_ENABLED',
  709: 'CUDA_ERROR_CONTEXT_IS_DESTROYED',
  710: 'CUDA_ERROR_ASSERT',
  715: 'CUDA_ERROR_ILLEGAL_INSTRUCTION',
  716: 'CUDA_ERROR_MISALIGNED_ADDRESS',
  719: 'CUDA_ERROR_LAUNCH_FAILED',
  801: 'CUDA_ERROR_NOT_SUPPORTED',
  803: 'CUDA_ERROR_SYSTEM_DRIVER_MISMATCH',
  804: 'CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE',
  909: 'CUDA_ERROR_TIMEOUT',
  999: 'CUDA_ERROR_UNKNOWN',
};

/** cublasStatus_t (cublas_api.h). */
export const CUBLAS_STATUS_NAMES: Readonly<Record<number, string>> = {
  0: 'CUBLAS_STATUS_SUCCESS',
  1: 'CUBLAS_STATUS_NOT_INITIALIZED',
  3: 'CUBLAS_STATUS_ALLOC_FAILED',
  7: 'CUBLAS_STATUS_INVALID_VALUE',
  8: 'CUBLAS_STATUS_ARCH_MISMATCH',
  11: 'CUBLAS_STATUS_MAPPING_ERROR',
  13: 'CUBLAS_STATUS_EXECUTION_FAILED',
  14: 'CUBLAS_STATUS_INTERNAL_ERROR',
  15: 'CUBLAS_STATUS_NOT_SUPPORTED',
  16: 'CUBLAS_STATUS_LICENSE_ERROR',
};

/** ncclResult_t (nccl.h). */
export const NCCL_RESULT_NAMES: Readonly<Record<number, string>> = {
  0: 'ncclSuccess',
  1: 'ncclUnhandledCudaError',
  2: 'ncclSystemError',
  3: 'ncclInternalError',
  4: 'ncclInvalidArgument',
  5: 'ncclInvalidUsage',
  6: 'ncclRemoteError',
  7: 'ncclInProgress',
  8: 'ncclTimeout',
};

const TABLES: Record<CudaLibrary, Readonly<Record<number, string>>> = { cuda: CUDA_STATUS_NAMES, cublasLt: CUBLAS_STATUS_NAMES, nccl: NCCL_RESULT_NAMES };

/** The status's name: the library's own (when it gave one), else ours, else `<library> status N`. */
export function statusName(library: CudaLibrary, status: number, reported?: string): string {
  return reported || TABLES[library][status] || `${library} status ${status}`;
}

/** Out of memory in any library is tp's `out-of-memory`; everything else fails the rank. */
function codeFor(library: CudaLibrary, status: number): TpErrorCode {
  if ((library === 'cuda' && status === 2) || (library === 'cublasLt' && status === 3)) return 'out-of-memory';
  return 'rank-failed';
}

function hint(library: CudaLibrary, status: number): string {
  if (library === 'cuda' && status === 2) return ' Use more ranks (a larger --tp), half-precision weights (--dtype bf16) or a smaller batch.';
  if (library === 'cuda' && (status === 209 || status === 222)) return ' The kernels were built for sm_80/sm_90 (and compute_90 PTX); this GPU or driver cannot run them.';
  if (library === 'cuda' && (status === 35 || status === 803)) return ' Update the NVIDIA driver (CUDA 13 needs 580 or newer).';
  return '';
}

export class CudaError extends TpError {
  readonly library: CudaLibrary;
  readonly call: string;
  readonly status: number;
  readonly statusName: string;
  /** The rank it happened in, when known. */
  readonly rank: number | undefined;
  readonly device: number | undefined;

  constructor(fields: { library: CudaLibrary; call: string; status: number; statusName?: string; statusText?: string; detail?: string; rank?: number; device?: number }, options?: { cause?: unknown }) {
    const name = statusName(fields.library, fields.status, fields.statusName);
    const where = fields.rank === undefined ? '' : `rank ${fields.rank}${fields.device === undefined ? '' : ` (GPU ${fields.device})`}: `;
    const text = fields.statusText ? `: ${fields.statusText}` : '';
    const detail = fields.detail ? `; ${fields.detail}` : '';
    super(codeFor(fields.library, fields.status), `${where}${fields.library} ${fields.call} failed with ${name} (${fields.status})${text}${detail}.${hint(fields.library, fields.status)}`, options);
    this.name = 'CudaError';
    this.library = fields.library;
    this.call = fields.call;
    this.status = fields.status;
    this.statusName = name;
    this.rank = fields.rank;
    this.device = fields.device;
  }
}

interface NativeFailure {
  library?: unknown;
  call?: unknown;
  status?: unknown;
  statusName?: unknown;
  statusText?: unknown;
  detail?: unknown;
}

/**
 * An error thrown by the addon, as a CudaError naming `rank` (and `device`); TpErrors pass through;
 * anything else is wrapped as an internal failure of the CUDA backend.
 */
export function translate(error: unknown, where: { rank?: number; device?: number } = {}): TpError {
  if (TpError.isInstance(error)) return error;
  const e = error as Error & NativeFailure;
  if (e && typeof e === 'object' && (e.library === 'cuda' || e.library === 'cublasLt' || e.library === 'nccl') && typeof e.call === 'string') {
    if (typeof e.status !== 'number') {
      return new TpError('backend-missing', `${where.rank === undefined ? '' : `rank ${where.rank}: `}${e.message}`, { cause: error });
    }
    return new CudaError(
      {
        library: e.library,
        call: e.call,
        status: e.status,
        ...(typeof e.statusName === 'string' ? { statusName: e.statusName } : {}),
        ...(typeof e.statusText === 'string' ? { statusText: e.statusText } : {}),
        ...(typeof e.detail === 'string' ? { detail: e.detail } : {}),
        ...where,
      },
      { cause: error },
    );
  }
  return new TpError('internal', `${where.rank === undefined ? '' : `rank ${where.rank}: `}the CUDA backend failed: ${e?.message ?? String(error)}`, { cause: error });
}

/** Run `fn`, turning an addon failure into a CudaError for this rank. */
export function guarded<T>(where: { rank?: number; device?: number }, fn: () => T): T {
  try {
    return fn();
  } catch (error) {
    throw translate(error, where);
  }
}
