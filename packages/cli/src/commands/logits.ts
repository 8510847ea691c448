/** `tp logits <dir> --tokens 1,2,3`: the logits at every position, as JSON (for comparisons). */
import { ArgumentError } from '@tp/core';
import { float32ArrayJson } from '../format/floats.js';
import { UsageError, type CliIo } from '../io.js';
import { precheck } from '../checks.js';
import { checkWritable, writeFileAtomic } from '../output.js';
import { checkTokenIds, openSession, SESSION_HELP, SESSION_OPTIONS } from '../session.js';
import { DTYPE_HELP, DTYPE_OPTIONS, parseCommandLine, parseDtypeFlags, parsePositiveInt, parseTokenList } from './args.js';

export const logitsHelp = `Usage: tp logits <model-dir> (--tokens IDS | --text TEXT) [--out FILE] [options]

Run one forward pass over a sequence with tensor parallelism and write the logits at every position:
{"tokens": [t0, t1, ...], "logits": [[V floats for position 0], [V floats for position 1], ...]}
Each float is written with the fewest digits that read back as the same float32. Use it to compare
tp against another implementation (e.g. transformers) or one tp size against another.
A causal model writes its next-token logits; an encoder (BERT family) its masked-LM logits, and with
--hidden also "hidden": [[H floats] per position], its last hidden state (an encoder without an MLM
head, such as Splinter, writes no "logits" and needs --hidden). An encoder–decoder (T5, BART…)
writes the decoder logits of each decoder position and "decoder_tokens" (default: the decoder start
token alone); --hidden adds the encoder's last hidden state of each input position. Perceiver
writes its masked-LM logits at its decoder queries (max_position_embeddings positions, whatever the
input length), and --hidden writes its latents (num_latents rows × d_latents), not one row per token.

Options:
  --tokens IDS        the input as token ids separated by commas, e.g. --tokens 1,2,3
  --text TEXT         the input as text, encoded with the checkpoint's tokenizer.json
  --token-types IDS   encoders: the segment id of each token (default all 0), e.g. 0,0,1
  --hidden            encoders: also write the last hidden state of every position
  --decoder-tokens IDS  encoder–decoder models: the decoder input (default: the decoder start token)
  --out FILE          write the JSON to FILE (all or nothing: a temporary file in the same folder,
                      then renamed); without --out the JSON goes to stdout
${SESSION_HELP}
${DTYPE_HELP}
  -h, --help          show this help

Examples:
  tp logits ./my-model --tokens 1,2,3 --tp 2 --out logits-tp2.json
  tp logits ./my-model --text "Hello world" --tp 4 > logits.json
  tp logits ./my-model --tokens 5,6,7 | jq '.logits | length'     # positions
  tp logits ./my-model --tokens 1,2,3 --dtype f16 --out logits-f16.json  # weights held as f16
  tp logits ./my-bert --tokens 101,7592,102 --token-types 0,0,0 --hidden --out bert.json
  tp logits ./t5-small --tokens 13959,1566,12,2968,10,8774,1 --decoder-tokens 0,8774 --out t5.json
`;

export async function logitsCommand(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommandLine('logits', argv, {
    ...SESSION_OPTIONS,
    ...DTYPE_OPTIONS,
    tokens: { type: 'string' },
    text: { type: 'string' },
    out: { type: 'string' },
    'token-types': { type: 'string' },
    hidden: { type: 'boolean' },
    'decoder-tokens': { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    io.stdout(logitsHelp);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'the model folder is missing: tp logits <model-dir> --tokens 1,2,3' : `one model folder, please; got ${positionals.length} arguments (quote the --text)`);
  const dir = positionals[0]!;
  if ((values.tokens === undefined) === (values.text === undefined)) throw new UsageError('give the input as --tokens 1,2,3 or as --text "..." (one of them)');
  if (values.text === '') throw new UsageError('--text is empty');
  const tokens = values.tokens === undefined ? undefined : parseTokenList(values.tokens, '--tokens');
  const tokenTypes = values['token-types'] === undefined ? undefined : parseTokenList(values['token-types'], '--token-types');
  if (tokenTypes !== undefined && tokens !== undefined && tokenTypes.length !== tokens.length) {
    throw new UsageError(`--token-types has ${tokenTypes.length} ids but --tokens has ${tokens.length}; give one segment id per token`);
  }
  const decoderTokens = values['decoder-tokens'] === undefined ? undefined : parseTokenList(values['decoder-tokens'], '--decoder-tokens');
  const tpSize = values.tp === undefined ? 1 : parsePositiveInt(values.tp, '--tp');
  const dtypes = parseDtypeFlags(values);
  const out = values.out;
  if (out !== undefined) await checkWritable(out);
  // The input is checked (tokenizer, vocabulary, positions) before any rank starts.
  await precheck(dir, [tokens ?? values.text!, ...(decoderTokens ? [decoderTokens] : [])]);

  // With --out, stdout stays empty and stderr shows progress; without it stdout is the JSON.
  const { session } = await openSession(dir, tpSize, values, io, out === undefined, dtypes);
  let json: string;
  let summary: string;
  try {
    const ids = tokens ?? session.encode(values.text!);
    checkTokenIds(session, ids);
    const kind = session.graph.kind;
    const encoder = kind === 'encoder';
    if ((kind === 'causal' && values.hidden) || (!encoder && tokenTypes !== undefined)) {
      throw new ArgumentError({ argument: values.hidden ? 'hidden' : 'token-types', detail: `--${values.hidden ? 'hidden' : 'token-types'} is for encoders${values.hidden ? ' and encoder–decoders' : ''}; ${session.graph.title} is a ${kind} model` });
    }
    if (values['decoder-tokens'] !== undefined && kind !== 'seq2seq') {
      throw new ArgumentError({ argument: 'decoder-tokens', detail: `--decoder-tokens is for encoder–decoder models; ${session.graph.title} is a ${kind} model` });
    }
    if (tokenTypes !== undefined && tokenTypes.length !== ids.length) {
      throw new UsageError(`--token-types has ${tokenTypes.length} ids but the text encodes to ${ids.length} tokens; give one segment id per token`);
    }
    const wantLogits = !encoder || session.plan.lmHead !== null;
    if (!wantLogits && !values.hidden) {
      throw new ArgumentError({ argument: 'hidden', detail: `${session.graph.title} (${dir}) has no masked-LM head, so it has no logits; pass --hidden to write its last hidden state` });
    }
    let logits: Float32Array | undefined;
    let hidden: Float32Array | undefined;
    let decoderIds: number[] | undefined;
    // Rows of their own (Perceiver's decoder queries and latents) instead of one per input token.
    let logitRows: number | undefined;
    let hiddenRows: number | undefined;
    if (kind === 'seq2seq') {
      const [result] = await session.seq2seqLogits([ids], { ...(decoderTokens ? { decoderTokens: [decoderTokens] } : {}), hidden: values.hidden === true });
      logits = result!.logits;
      hidden = result!.hidden;
      decoderIds = result!.decoderTokens;
    } else if (encoder) {
      const [result] = await session.encoderOutputs([{ tokens: ids, ...(tokenTypes ? { tokenTypes } : {}) }], { hidden: values.hidden === true, logits: wantLogits });
      logits = result!.logits;
      hidden = result!.hidden;
      logitRows = result!.logitRows;
      hiddenRows = result!.hiddenRows;
    } else {
      [logits] = await session.logits([ids]);
    }
    const parts = [`{"tokens": ${JSON.stringify(ids)}`];
    const sizes: string[] = [];
    if (decoderIds) parts.push(`"decoder_tokens": ${JSON.stringify(decoderIds)}`);
    if (logits) {
      // An encoder–decoder's logits are the decoder's, one row per decoder position.
      const rows = decoderIds?.length ?? logitRows ?? ids.length;
      parts.push(`"logits": ${matrixJson(logits, rows)}`);
      sizes.push(`logits [${rows} ${decoderIds ? 'decoder ' : logitRows !== undefined ? 'query ' : ''}positions × ${logits.length / rows} vocabulary]`);
    }
    if (hidden) {
      const rows = hiddenRows ?? ids.length;
      parts.push(`"hidden": ${matrixJson(hidden, rows)}`);
      sizes.push(`hidden [${rows} ${hiddenRows !== undefined ? 'latents' : 'positions'} × ${hidden.length / rows}]`);
    }
    json = `${parts.join(', ')}}\n`;
    summary = sizes.join(', ');
  } finally {
    await session.dispose();
  }
  if (out === undefined) {
    io.stdout(json);
  } else {
    await writeFileAtomic(out, json);
    io.stderr(`wrote ${out}: ${summary}\n`);
  }
  return 0;
}

/** [rows × width] floats as a JSON array of rows, one row per line. */
function matrixJson(data: Float32Array, rows: number): string {
  const width = data.length / rows;
  const out: string[] = [];
  for (let t = 0; t < rows; t++) out.push(float32ArrayJson(data.subarray(t * width, (t + 1) * width)));
  return `[\n${out.join(',\n')}\n]`;
}
