/**
 * `pipeline('text-generation', dir, options)`, shaped like transformers': an async factory returning a
 * callable that takes a prompt (or prompts) and gives `[{ generated_text }]`, with `dispose()`.
 */
import { ArgumentError } from '../errors/index.js';
import { initInference, type GenerateOptions, type InferenceOptions, type InferenceSession } from './session.js';

export interface TextGenerationOutput {
  generated_text: string;
}

export interface TextGenerationPipeline {
  (prompt: string, options?: GenerateOptions & { max_new_tokens?: number; return_full_text?: boolean }): Promise<TextGenerationOutput[]>;
  (prompts: string[], options?: GenerateOptions & { max_new_tokens?: number; return_full_text?: boolean }): Promise<TextGenerationOutput[][]>;
  readonly session: InferenceSession;
  dispose(): Promise<void>;
}

const TASKS = ['text-generation'] as const;

export async function pipeline(task: (typeof TASKS)[number], dir: string, options: InferenceOptions = {}): Promise<TextGenerationPipeline> {
  if (!TASKS.includes(task)) throw new ArgumentError({ argument: 'task', detail: `unsupported task "${task}". Tasks: ${TASKS.join(', ')}` });
  const session = await initInference(dir, options);
  if (session.tokenizer === undefined) {
    await session.dispose();
    throw new ArgumentError({ argument: 'dir', detail: `${dir} has no tokenizer.json, which the text-generation pipeline needs` });
  }
  const tokenizer = session.tokenizer;
  const run = async (input: string | string[], opts: GenerateOptions & { max_new_tokens?: number; return_full_text?: boolean } = {}) => {
    const prompts = typeof input === 'string' ? [input] : input;
    const results = await session.generate(prompts, { ...opts, maxNewTokens: opts.maxNewTokens ?? opts.max_new_tokens ?? 32 });
    const outputs = results.map((r, i) => [{ generated_text: (opts.return_full_text ?? true ? prompts[i]! : '') + tokenizer.decode(r.tokens) }]);
    return typeof input === 'string' ? outputs[0]! : outputs;
  };
  return Object.assign(run, { session, dispose: () => session.dispose() }) as TextGenerationPipeline;
}
