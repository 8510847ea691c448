/** `tp logits <dir> --tokens 1,2,3`: the logits at every position, as JSON (for comparisons). */
import { parseArgs } from 'node:util';
import { float32ArrayJson } from '../format/floats.js';
import { UsageError, type CliIo } from '../io.js';
import { checkWritable, writeFileAtomic } from '../output.js';
import { checkTokenIds, openSession, SESSION_HELP, SESSION_OPTIONS } from '../session.js';
import { DTYPE_HELP, DTYPE_OPTIONS, parseDtypeFlags, parsePositiveInt, parseTokenList } from './args.js';

export const logitsHelp = `Usage: tp logits <model-dir> (--tokens IDS | --text TEXT) [--out FILE] [options]

Run one forward pass over a sequence with tensor parallelism and write the logits at every position:
{"tokens": [t0, t1, ...], "logits": [[V floats for position 0], [V floats for position 1], ...]}
Each float is written with the fewest digits that read back as the same float32. Use it to compare
tp against another implementation (e.g. transformers) or one tp size against another.

Options:
  --tokens IDS        the input as token ids separated by commas, e.g. --tokens 1,2,3
  --text TEXT         the input as text, encoded with the checkpoint's tokenizer.json
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
`;

export async function logitsCommand(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      ...SESSION_OPTIONS,
      ...DTYPE_OPTIONS,
      tokens: { type: 'string' },
      text: { type: 'string' },
      out: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    io.stdout(logitsHelp);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'tp logits needs a model folder' : `tp logits takes one model folder, got ${positionals.length} arguments (quote the --text)`);
  const dir = positionals[0]!;
  if ((values.tokens === undefined) === (values.text === undefined)) throw new UsageError('tp logits needs either --tokens 1,2,3 or --text "..." (one of them)');
  if (values.text === '') throw new UsageError('--text is empty');
  const tokens = values.tokens === undefined ? undefined : parseTokenList(values.tokens, '--tokens');
  const tpSize = values.tp === undefined ? 1 : parsePositiveInt(values.tp, '--tp');
  const dtypes = parseDtypeFlags(values);
  const out = values.out;
  if (out !== undefined) await checkWritable(out);

  // With --out, stdout stays empty and stderr shows progress; without it stdout is the JSON.
  const { session } = await openSession(dir, tpSize, values, io, out === undefined, dtypes);
  let json: string;
  let ids: number[];
  let vocab: number;
  try {
    ids = tokens ?? session.encode(values.text!);
    checkTokenIds(session, ids);
    const [logits] = await session.logits([ids]);
    vocab = logits!.length / ids.length;
    const rows: string[] = [];
    for (let t = 0; t < ids.length; t++) rows.push(float32ArrayJson(logits!.subarray(t * vocab, (t + 1) * vocab)));
    json = `{"tokens": ${JSON.stringify(ids)}, "logits": [\n${rows.join(',\n')}\n]}\n`;
  } finally {
    await session.dispose();
  }
  if (out === undefined) {
    io.stdout(json);
  } else {
    await writeFileAtomic(out, json);
    io.stderr(`wrote ${out}: logits [${ids.length} positions × ${vocab} vocabulary]\n`);
  }
  return 0;
}
