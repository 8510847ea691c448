/**
 * @tp/core for browsers: what runs in a page or a Web Worker, with no Node module anywhere in its
 * imports. A page reads a checkpoint's config and headers over HTTP (openCheckpointFrom with
 * httpByteSource: Range requests), analyzes and plans it as in Node, and starts one Web Worker per
 * rank; each worker runs hostRank with its own backend device and fetches only its own byte ranges,
 * then answers the same forward messages as Node's rank workers (messages.ts).
 *
 * openWebModel does all that for every kind the engine runs (runtime/web-session.ts): the page gets
 * `logits`, `generate` (greedy, sampling, beams; causal models and encoder–decoders),
 * `encoderOutputs` (encoders; an encoder–decoder's encoder states) and `seq2seqLogits` as from Node's
 * session (the tokenizer and generation_config.json fetched when the folder has them), and each
 * worker module calls `serveWebRank`.
 *
 * Bundlers resolve `@tp/core` to this entry under the `browser` condition, so backends written against
 * `@tp/core` bundle for browsers too. Not here: Node's session (initInference, pipelines), which starts
 * worker threads and reads the folder; openCheckpoint of a folder.
 */
export * from './errors/index.js';
export * from './backend/index.js';
export * from './checkpoint/dtype.js';
export * from './checkpoint/convert.js';
export { parseSafetensorsHeader, readSafetensorsHeaderFrom, MAX_HEADER_BYTES, type SafetensorsHeader, type TensorInfo } from './checkpoint/safetensors.js';
export type { Checkpoint, HfConfig } from './checkpoint/checkpoint.js';
export * from './checkpoint/slice.js';
export type { ByteSource } from './checkpoint/byte-source.js';
export * from './checkpoint/http-source.js';
export * from './checkpoint/source-checkpoint.js';
export * from './graph/index.js';
export * from './plan/index.js';
export * from './runtime/positions.js';
export * from './runtime/structure.js';
export * from './runtime/linear.js';
export * from './runtime/load.js';
export * from './runtime/engine.js';
export * from './runtime/sublayers.js';
export * from './runtime/layer.js';
export * from './runtime/decoder.js';
export * from './runtime/encoder.js';
export * from './runtime/seq2seq.js';
export * from './runtime/relative-bias.js';
export * from './runtime/sampling.js';
export { promptBatch, encoderBatch, decoderBatch } from './runtime/batches.js';
export { hostRank, loadRankShard, createEngine, tensorRuns, PREFETCH_WINDOW_BYTES, type RankChannel, type RankHostOptions } from './runtime/rank-host.js';
export type { FromWorker, ToWorker, WorkerError, WorkerStats } from './runtime/messages.js';
export {
  openWebModel,
  serveWebRank,
  WebModel,
  type RankWorker,
  type ServeWebRankOptions,
  type WebModelOptions,
  type WebRankInit,
  type WebRankScope,
} from './runtime/web-session.js';
export type { LoadProgressEvent, RankCoordinator, RankLoad } from './runtime/coordinator.js';
export type { EncoderInput, EncoderOutput, EncoderOutputOptions, LogitsOptions, Seq2SeqOutput } from './runtime/model-methods.js';
export type { BeamSequence, GenerateOptions, GenerateResult } from './runtime/decode-loop.js';
export { samplingWarnings, type SamplingNames } from './runtime/decode-loop.js';
export type { ModelPlanOptions } from './runtime/session-plan.js';
export { positionLimit } from './runtime/model-requests.js';
export { tokenizerFromJson, type TextTokenizer } from './runtime/tokenizer.js';
export { parseGenerationConfig, type GenerationDefaults } from './runtime/generation.js';
