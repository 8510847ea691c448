/** `tp run <dir> "prompt"`: generate text with tensor parallelism, streaming tokens as they come. */
import { ArgumentError, fillOne, samplingWarnings, type GenerateOptions, type GenerateResult, type InferenceSession } from '@tp/core';
import { precheck } from '../checks.js';
import { checkTokenIds } from '../session.js';
import { StreamingDecoder, visibleText } from '../format/text.js';
import { UsageError, type CliIo } from '../io.js';
import { openSession, SESSION_HELP, SESSION_OPTIONS } from '../session.js';
import { DTYPE_HELP, DTYPE_OPTIONS, parseCommandLine, parseDtypeFlags, parseNonNegativeInt, parseNumber, parsePositiveInt, parseTokenList } from './args.js';

export const runHelp = `Usage: tp run <model-dir> <prompt>... [options]

Load a Hugging Face checkpoint split over N tensor-parallel ranks (each rank reads only its own
share of the weights) and generate a continuation of each prompt (for an encoder–decoder such as T5,
BART or Marian: the output for each input, after " → ", honouring generation_config.json). The text is printed as it is
generated: the prompt, then each token's text as soon as it is decoded. Several prompts run as one
batch; the first one streams and the others are printed when the batch ends.

Options:
${SESSION_HELP}
${DTYPE_HELP}
  --max-new-tokens N  tokens to generate per prompt (default 64)
  --temperature T     0 (default) = greedy; above 0 samples from softmax(logits / T)
  --top-k K           sample only among the K most likely tokens
  --top-p P           sample only among the most likely tokens whose probabilities add up to P
  --seed N            seed of the sampler (default 0): the same seed gives the same text
  --ignore-eos        keep generating after the end-of-sequence token (Ctrl-C stops at the next
                      token, printing the text so far; exit code 130)
  --tokens IDS        a prompt given as token ids, e.g. --tokens 1,2,3 (repeatable; for models
                      without tokenizer.json)
  --json              print one JSON object per prompt when done (one per line), and nothing else:
                      prompt, prompt_tokens, text, tokens, finish_reason, tp, backend and timings
                      (load_s, prefill_ms, decode_ms_per_token, tokens_per_s, total_ms)
  -h, --help          show this help

Control characters in the generated text are shown as \\xNN on the terminal; --json gives the exact
text. Loading shows a progress bar per rank on stderr when stderr is a terminal.

Examples:
  tp run ./Llama-3.2-1B --tp 2 "The capital of France is"
  tp run ./my-model --tp 4 --max-new-tokens 128 --temperature 0.8 --top-p 0.95 --seed 7 "Once upon a time"
  tp run ./my-model "First prompt" "Second prompt"           # a batch of two
  tp run ./my-model --tp 2 --json "Hello" | jq -r .text
  tp run ./my-model --tp 2 --dtype bf16 --kv-dtype bf16 "Hello"   # half the weight memory
  tp run ./t5-small --tp 2 "translate English to German: Hello"   # an encoder–decoder
  tp run ./my-bert --tp 2 "Paris is the [MASK] of France."         # an encoder: fill the mask

On an encoder with a masked-LM head (BERT family), tp run fills each mask token of each prompt
([MASK] or <mask>, as the tokenizer names it) and prints the 5 most likely tokens with their
probabilities; --json prints {prompt, prompt_tokens, masks: [[{score, token, token_str, sequence}]]}.
`;

interface SequenceTiming {
  firstMs: number | undefined;
  lastMs: number | undefined;
  count: number;
}

export async function runCommand(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommandLine('run', argv, {
    ...SESSION_OPTIONS,
    ...DTYPE_OPTIONS,
    'max-new-tokens': { type: 'string' },
    temperature: { type: 'string' },
    'top-k': { type: 'string' },
    'top-p': { type: 'string' },
    seed: { type: 'string' },
    'ignore-eos': { type: 'boolean' },
    tokens: { type: 'string', multiple: true },
    json: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    io.stdout(runHelp);
    return 0;
  }
  if (positionals.length === 0) throw new UsageError('the model folder and the prompt are missing: tp run <model-dir> "prompt"');
  const [dir, ...textPrompts] = positionals as [string, ...string[]];
  const tokenPrompts = (values.tokens ?? []).map((t) => parseTokenList(t, '--tokens'));
  if (textPrompts.length + tokenPrompts.length === 0) throw new UsageError('the prompt is missing: give it after the model folder, e.g. tp run ./model "Hello" (or --tokens 1,2,3)');
  if (textPrompts.some((p) => p === '')) throw new UsageError('a prompt is empty');
  const tpSize = values.tp === undefined ? 1 : parsePositiveInt(values.tp, '--tp');
  const maxNewTokens = values['max-new-tokens'] === undefined ? 64 : parsePositiveInt(values['max-new-tokens'], '--max-new-tokens');
  const sampling: GenerateOptions = {
    maxNewTokens,
    stopAtEos: !values['ignore-eos'],
    ...(values.temperature !== undefined ? { temperature: parseNumber(values.temperature, '--temperature', { min: 0 }) } : {}),
    ...(values['top-k'] !== undefined ? { topK: parsePositiveInt(values['top-k'], '--top-k') } : {}),
    ...(values['top-p'] !== undefined ? { topP: parseNumber(values['top-p'], '--top-p', { min: 0, max: 1, exclusiveMin: true }) } : {}),
    ...(values.seed !== undefined ? { seed: parseNonNegativeInt(values.seed, '--seed') } : {}),
  };
  const json = values.json ?? false;
  const dtypes = parseDtypeFlags(values);
  const prompts: Array<string | number[]> = [...textPrompts, ...tokenPrompts];

  // Everything that needs no weights is checked before any rank starts.
  const pre = await precheck(dir, prompts, { maxNewTokens });
  const generationFlags = (['max-new-tokens', 'temperature', 'top-k', 'top-p', 'seed', 'ignore-eos'] as const).filter((f) => values[f] !== undefined);
  const warnings =
    pre.graph.kind === 'encoder'
      ? generationFlags.length > 0
        ? [`${generationFlags.map((f) => `--${f}`).join(', ')} ${generationFlags.length === 1 ? 'has' : 'have'} no effect on an encoder (tp run fills its mask tokens)`]
        : []
      : samplingWarnings(sampling, { temperature: '--temperature', topK: '--top-k', topP: '--top-p', seed: '--seed' });
  for (const w of warnings) io.stderr(`tp: warning: ${w}\n`);

  const { session, loadMs } = await openSession(dir, tpSize, values, io, json, dtypes);
  try {
    if (session.graph.kind === 'encoder') return await fillMasks(session, prompts, { io, json, tpSize });
    return await generate(session, prompts, sampling, { io, json, loadMs, tpSize, backend: session.backend.name });
  } finally {
    await session.dispose();
  }
}

async function generate(
  session: InferenceSession,
  prompts: Array<string | number[]>,
  sampling: GenerateOptions,
  context: { io: CliIo; json: boolean; loadMs: number; tpSize: number; backend: string },
): Promise<number> {
  const { io, json } = context;
  const batch = prompts.length > 1;
  const tokenizer = session.tokenizer;
  const promptText = (p: string | number[]) => (typeof p === 'string' ? p : tokenizer ? tokenizer.decode(p) : undefined);
  const label = (i: number) => (batch ? `[${i + 1}] ` : '');
  // A causal model continues the prompt; an encoder–decoder's output is a text of its own.
  const separator = session.graph.kind === 'seq2seq' ? ' → ' : '';
  const head = (i: number) => {
    const p = prompts[i]!;
    const text = promptText(p);
    return `${label(i)}${text !== undefined ? visibleText(text) : `${(p as number[]).join(' ')} |`}${separator}`;
  };
  // Encode and check up front so that a prompt the model cannot take fails before anything is printed.
  const encoded = prompts.map((p) => (typeof p === 'string' ? session.encode(p) : p));
  for (const ids of encoded) checkTokenIds(session, ids);

  const timings: SequenceTiming[] = prompts.map(() => ({ firstMs: undefined, lastMs: undefined, count: 0 }));
  // Ctrl-C stops at the next step boundary and prints what was generated; a second one ends the process.
  const stop = new AbortController();
  const onInterrupt = () => stop.abort();
  process.once('SIGINT', onInterrupt);
  const stream = new StreamingDecoder(tokenizer);
  let streaming = false;
  const started = performance.now();
  let results: GenerateResult[];
  try {
    if (!json) {
      io.stdout(head(0));
      streaming = true;
    }
    results = await session.generate(encoded, {
      ...sampling,
      signal: stop.signal,
      onToken: ({ sequence, token }) => {
        const now = performance.now() - started;
        const t = timings[sequence]!;
        t.firstMs ??= now;
        t.lastMs = now;
        t.count++;
        if (!json && sequence === 0) io.stdout(visibleText(stream.push(token)));
      },
    });
  } finally {
    process.removeListener('SIGINT', onInterrupt);
    if (streaming) io.stdout(`${visibleText(stream.flush())}\n`);
  }
  // Interrupted: the text so far is printed (and the JSON, with finish_reason "aborted"); exit 130 as a shell expects.
  const exitCode = results.some((r) => r.finishReason === 'aborted') ? 130 : 0;
  const totalMs = performance.now() - started;

  if (json) {
    results.forEach((r, i) => {
      const t = timings[i]!;
      const decodeMsPerToken = t.count > 1 ? (t.lastMs! - t.firstMs!) / (t.count - 1) : null;
      const object = {
        prompt: promptText(prompts[i]!) ?? null,
        prompt_tokens: r.promptTokens,
        text: r.text ?? null,
        tokens: r.tokens,
        finish_reason: r.finishReason,
        tp: context.tpSize,
        backend: context.backend,
        timings: {
          load_s: round(context.loadMs / 1000, 3),
          prefill_ms: round(t.firstMs ?? 0, 2),
          decode_ms_per_token: decodeMsPerToken === null ? null : round(decodeMsPerToken, 3),
          tokens_per_s: decodeMsPerToken === null || decodeMsPerToken === 0 ? null : round(1000 / decodeMsPerToken, 2),
          total_ms: round(totalMs, 2),
        },
      };
      io.stdout(`${JSON.stringify(object)}\n`);
    });
    return exitCode;
  }

  for (let i = 1; i < results.length; i++) {
    const r = results[i]!;
    io.stdout(`${head(i)}${visibleText(r.text ?? ` ${r.tokens.join(' ')}`)}\n`);
  }
  const t = timings[0]!;
  const tokens = results.reduce((n, r) => n + r.tokens.length, 0);
  const perToken = t.count > 1 ? (t.lastMs! - t.firstMs!) / (t.count - 1) : undefined;
  const parts = [
    `${tokens} token${tokens === 1 ? '' : 's'}${batch ? ` (${results.length} prompts)` : ''} in ${(totalMs / 1000).toFixed(2)} s`,
    `prefill ${(t.firstMs ?? 0).toFixed(1)} ms`,
    ...(perToken !== undefined ? [`decode ${perToken.toFixed(1)} ms/token (${(1000 / perToken).toFixed(1)} tokens/s${batch ? ' per prompt' : ''})`] : []),
    `load ${(context.loadMs / 1000).toFixed(2)} s`,
    `tp ${context.tpSize} · ${context.backend}`,
    `stopped: ${[...new Set(results.map((r) => r.finishReason))].join(', ')}`,
  ];
  io.stderr(`${parts.join(' · ')}\n`);
  return exitCode;
}

export function round(value: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** Encoders: the top 5 tokens for every mask of every prompt, or what the model can do instead. */
async function fillMasks(session: InferenceSession, prompts: Array<string | number[]>, ctx: { io: CliIo; json: boolean; tpSize: number }): Promise<number> {
  const { io } = ctx;
  const title = session.graph.title;
  if (session.plan.lmHead === null) {
    throw new ArgumentError({ argument: 'prompt', detail: `${title} is an encoder without a masked-LM head: tp run has nothing to generate or fill; "tp logits --hidden" writes its last hidden states` });
  }
  const tokenizer = session.tokenizer;
  const mask = tokenizer?.maskToken;
  if (tokenizer === undefined || mask === undefined) {
    throw new ArgumentError({ argument: 'prompt', detail: `${title} is an encoder: tp run fills mask tokens, but ${tokenizer ? 'its tokenizer has no mask token' : 'the folder has no tokenizer.json'}; "tp logits --tokens ..." writes its masked-LM logits` });
  }
  const encoded = prompts.map((p) => (typeof p === 'string' ? session.encode(p) : p));
  encoded.forEach((ids, i) => {
    checkTokenIds(session, ids);
    if (!ids.includes(mask.id)) {
      throw new ArgumentError({ argument: 'prompt', detail: `${title} is an encoder: tp run fills ${mask.text} tokens, and prompt ${i + 1} has none (e.g. "Paris is the ${mask.text} of France.")` });
    }
  });
  const outputs = await session.encoderOutputs(encoded, { hidden: false, logits: true });
  outputs.forEach((o, i) => {
    const ids = encoded[i]!;
    const vocab = o.logits!.length / ids.length;
    const masks = ids.flatMap((id, t) => (id === mask.id ? [fillOne(tokenizer, ids, t, o.logits!.subarray(t * vocab, (t + 1) * vocab), 5)] : []));
    const prompt = prompts[i]!;
    if (ctx.json) {
      io.stdout(`${JSON.stringify({ prompt: typeof prompt === 'string' ? prompt : null, prompt_tokens: ids, masks, tp: ctx.tpSize, backend: session.backend.name })}\n`);
      return;
    }
    io.stdout(`${typeof prompt === 'string' ? visibleText(prompt) : `[${prompt.join(',')}]`}\n`);
    masks.forEach((candidates, m) => {
      if (masks.length > 1) io.stdout(`  ${mask.text} ${m + 1}:\n`);
      for (const c of candidates) io.stdout(`  ${c.score.toFixed(4)}  ${JSON.stringify(c.token_str)} (${c.token})  ${visibleText(c.sequence)}\n`);
    });
  });
  return 0;
}
