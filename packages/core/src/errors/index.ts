/**
 * One error base class for everything tp throws on purpose. Subclasses carry the fields a user (or a
 * script) needs to act — the file, the tensor, the rank — and build their message from them, ending
 * with what to do next. Tests assert `code` and fields, never message text.
 */
const MARKER = Symbol.for('@tp/core.TpError');

export type TpErrorCode =
  // checkpoint files
  | 'file-not-found'
  | 'not-a-directory'
  | 'no-weights'
  | 'pickle-refused'
  | 'header-too-short'
  | 'header-length-out-of-range'
  | 'header-too-large'
  | 'header-not-utf8'
  | 'header-not-json'
  | 'header-not-object'
  | 'duplicate-tensor'
  | 'bad-tensor-entry'
  | 'unknown-dtype'
  | 'bad-shape'
  | 'bad-offsets'
  | 'length-mismatch'
  | 'offset-out-of-range'
  | 'overlapping-tensors'
  | 'gap-between-tensors'
  | 'trailing-bytes'
  | 'file-truncated'
  | 'index-invalid'
  | 'index-escapes-folder'
  | 'index-missing-shard'
  | 'index-mismatch'
  | 'tensor-not-found'
  | 'bad-slice'
  | 'read-failed'
  // config and model analysis
  | 'config-invalid'
  | 'config-missing-key'
  | 'shape-mismatch'
  | 'unsupported-model'
  // storage dtypes
  | 'dtype-unsupported'
  // planning
  | 'indivisible'
  | 'tp-invalid'
  | 'policy-invalid'
  | 'policy-no-match'
  | 'split-mismatch'
  | 'plan-version'
  // running
  | 'backend-missing'
  | 'backend-load-failed'
  | 'backend-unavailable'
  | 'rank-failed'
  | 'timeout'
  | 'invalid-argument'
  | 'aborted'
  | 'out-of-memory'
  | 'kernel-invalid'
  | 'internal';

export interface TpErrorOptions {
  cause?: unknown;
}

export class TpError extends Error {
  private readonly [MARKER] = true;
  readonly code: TpErrorCode;

  constructor(code: TpErrorCode, message: string, options: TpErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'TpError';
    this.code = code;
  }

  /** True for a TpError from any copy of this package (two installed copies still agree). */
  static isInstance(value: unknown): value is TpError {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[MARKER] === true;
  }
}

/** Something is wrong with a file of the checkpoint: it names the file and, where known, the tensor. */
export class CheckpointError extends TpError {
  readonly file: string;
  readonly tensor: string | undefined;

  constructor(code: TpErrorCode, fields: { file: string; tensor?: string; detail: string; hint?: string }, options?: TpErrorOptions) {
    const where = fields.tensor === undefined ? fields.file : `${fields.file}, tensor "${fields.tensor}"`;
    super(code, `${where}: ${fields.detail}${fields.hint ? `. ${fields.hint}` : ''}`, options);
    this.name = 'CheckpointError';
    this.file = fields.file;
    this.tensor = fields.tensor;
  }
}

/** config.json is missing, unreadable or lacks a key the model needs. */
export class ConfigError extends TpError {
  readonly file: string;
  readonly key: string | undefined;

  constructor(code: 'config-invalid' | 'config-missing-key', fields: { file: string; key?: string; detail: string }) {
    super(code, `${fields.file}: ${fields.detail}`);
    this.name = 'ConfigError';
    this.file = fields.file;
    this.key = fields.key;
  }
}

/**
 * A tensor's stored shape disagrees with what the config implies (or with a sibling tensor). When the
 * config is the likely culprit, `key` names the config.json key, `value` its value (undefined when it
 * is not set and a default applied), `keys` every key involved and `file` the config.json path.
 * `expected` is the shape the config implies, when one can be given (a layer count has none).
 */
export class ShapeError extends TpError {
  readonly tensor: string;
  readonly expected: readonly number[] | undefined;
  readonly actual: readonly number[];
  readonly file: string | undefined;
  readonly key: string | undefined;
  readonly value: unknown;
  readonly keys: readonly string[];

  constructor(
    fields:
      | { tensor: string; expected: readonly number[]; actual: readonly number[]; why: string }
      | {
          tensor: string;
          expected?: readonly number[];
          actual: readonly number[];
          file: string;
          key: string;
          value: unknown;
          keys?: readonly string[];
          /** How the config's side reads; default `"key" is value`. */
          setting?: string;
          /** What disagrees, after `<setting>, but`. */
          detail: string;
          /** What to do. */
          fix: string;
        },
  ) {
    const message =
      'why' in fields
        ? `tensor "${fields.tensor}" has shape [${fields.actual.join(', ')}] but ${fields.why} implies ` +
          `[${(fields.expected ?? []).join(', ')}]. The checkpoint and its config.json disagree; check that they come from the same model.`
        : `${fields.file}: ${fields.setting ?? `"${fields.key}" is ${fields.value === undefined ? 'not set' : JSON.stringify(fields.value)}`}, but ${fields.detail}. ${fields.fix}`;
    super('shape-mismatch', message);
    this.name = 'ShapeError';
    this.tensor = fields.tensor;
    this.expected = fields.expected;
    this.actual = fields.actual;
    if ('why' in fields) {
      this.file = undefined;
      this.key = undefined;
      this.value = undefined;
      this.keys = [];
    } else {
      this.file = fields.file;
      this.key = fields.key;
      this.value = fields.value;
      this.keys = fields.keys ?? [fields.key];
    }
  }
}

/** A model type tp refuses, with the precise reason. */
export class UnsupportedModelError extends TpError {
  readonly modelType: string;
  readonly reason: string;

  constructor(fields: { modelType: string; reason: string; hint?: string }) {
    super(
      'unsupported-model',
      `model_type "${fields.modelType}" is not supported: ${fields.reason}${fields.hint ? `. ${fields.hint}` : ''}`,
    );
    this.name = 'UnsupportedModelError';
    this.modelType = fields.modelType;
    this.reason = fields.reason;
  }
}

/** The planner cannot split the model as asked. */
export class PlanError extends TpError {
  readonly weight: string | undefined;
  readonly validTp: readonly number[] | undefined;

  constructor(
    code: 'indivisible' | 'tp-invalid' | 'split-mismatch' | 'plan-version',
    fields: { weight?: string; detail: string; validTp?: readonly number[] },
  ) {
    const hint =
      fields.validTp === undefined
        ? ''
        : fields.validTp.length === 0
          ? ' No tensor-parallel size above 1 works for this model.'
          : ` tp values that work: ${fields.validTp.join(', ')}.`;
    super(code, `${fields.weight ? `${fields.weight}: ` : ''}${fields.detail}${hint}`);
    this.name = 'PlanError';
    this.weight = fields.weight;
    this.validTp = fields.validTp;
  }
}

/** A user policy is malformed or names something the model does not have. */
export class PolicyError extends TpError {
  readonly pattern: string | undefined;
  readonly closest: readonly string[];

  constructor(
    code: 'policy-invalid' | 'policy-no-match',
    fields: { pattern?: string; detail: string; closest?: readonly string[] },
  ) {
    const closest = fields.closest ?? [];
    const hint = closest.length > 0 ? ` Closest names in this model: ${closest.join(', ')}.` : '';
    super(code, `${fields.pattern !== undefined ? `policy entry "${fields.pattern}": ` : ''}${fields.detail}${hint}`);
    this.name = 'PolicyError';
    this.pattern = fields.pattern;
    this.closest = closest;
  }
}

/** A bad argument to a public function (tp size, options). */
export class ArgumentError extends TpError {
  readonly argument: string;

  constructor(fields: { argument: string; detail: string }) {
    super('invalid-argument', `${fields.argument}: ${fields.detail}`);
    this.name = 'ArgumentError';
    this.argument = fields.argument;
  }
}

/**
 * A weight (or the KV cache) cannot be held in the storage dtype asked for: the backend does not
 * store it, the conversion would lose values (bf16 → f16), or the tensor is not floating point. It
 * names the tensor and says what to use instead.
 */
export class DtypeError extends TpError {
  /** The tensor, or undefined for the KV cache or a whole-model choice. */
  readonly tensor: string | undefined;
  /** The tensor's dtype in the checkpoint (`BF16`). */
  readonly dtype: string | undefined;
  /** The storage dtype asked for (`f16`, `auto`). */
  readonly requested: string;
  /** What the backend stores. */
  readonly supported: readonly string[];

  constructor(fields: { tensor?: string; dtype?: string; requested: string; supported: readonly string[]; detail: string; hint: string }) {
    super('dtype-unsupported', `${fields.tensor !== undefined ? `tensor "${fields.tensor}": ` : ''}${fields.detail}. ${fields.hint}`);
    this.name = 'DtypeError';
    this.tensor = fields.tensor;
    this.dtype = fields.dtype;
    this.requested = fields.requested;
    this.supported = fields.supported;
  }
}

/** An invariant of tp itself was broken: a bug in tp, never a problem with the model or the input. */
export class InternalError extends TpError {
  constructor(detail: string) {
    super('internal', `${detail}. This is a bug in tp; please report it with the command you ran`);
    this.name = 'InternalError';
  }
}
