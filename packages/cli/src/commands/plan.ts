/** `tp plan <dir>`: the tensor-parallel plan of a checkpoint, from its headers alone. */
import { analyzeModel, openCheckpoint, planTensorParallel } from '@tp/core';
import { renderPlan } from '../format/plan-table.js';
import { UsageError, type CliIo } from '../io.js';
import { readPolicy } from '../session.js';
import { DTYPE_HELP, DTYPE_OPTIONS, parseCommandLine, parseDtypeFlags, parsePositiveInt } from './args.js';

export const planHelp = `Usage: tp plan <model-dir> [--tp N] [--json] [--policy file.json] [--vocab-parallel] [--grain N] [--dtype T] [--kv-dtype T]

Decide, from config.json and the safetensors headers alone, how every weight of a Hugging Face
checkpoint is split over N tensor-parallel ranks: no weight bytes are read, so this works for any
model size on any machine.

Options:
  --tp N              number of ranks (default 2)
  --json              print the whole plan as JSON (for scripts); every tensor has name, shape,
                      dtype, role, split (replicate|column|row|vocab), dim and per-rank ranges
  --policy FILE       override the automatic decisions with a policy: DeepSpeed's form
                      {"model.layers.*": ["o_proj", "down_proj"]} (listed linears are row-parallel,
                      the other linears of those blocks column-parallel) or a Hugging Face tp_plan
                      {"layers.*.self_attn.q_proj": "colwise", ...}
  --vocab-parallel    split the embedding and LM head by vocabulary (logits all-gathered) instead
                      of splitting the LM head by hidden (logits all-reduced)
  --grain N           split MLP and vocabulary widths in multiples of N (default 64)
${DTYPE_HELP}
                      (these set the memory columns: params in the storage dtype, KV bytes per token
                      in the KV dtype)
  -h, --help          show this help

Examples:
  tp plan ./Llama-3.2-1B --tp 4
  tp plan ./my-model --tp 8 --json > plan.json
  tp plan ./my-model --tp 2 --policy policy.json
  tp plan ./my-model --tp 4 --dtype bf16 --kv-dtype bf16   # memory with bf16 weights and KV cache
`;

export async function planCommand(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommandLine('plan', argv, {
    tp: { type: 'string' },
    json: { type: 'boolean' },
    policy: { type: 'string' },
    'vocab-parallel': { type: 'boolean' },
    grain: { type: 'string' },
    ...DTYPE_OPTIONS,
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    io.stdout(planHelp);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'the model folder is missing: tp plan <model-dir> [--tp N]' : `one model folder, please; got ${positionals.length} arguments: ${positionals.join(' ')}`);
  const dir = positionals[0]!;
  const tpSize = values.tp === undefined ? 2 : parsePositiveInt(values.tp, '--tp');
  const grain = values.grain === undefined ? undefined : parsePositiveInt(values.grain, '--grain');
  const { dtype, kvDtype } = parseDtypeFlags(values);

  const policy = await readPolicy(values.policy);

  const ckpt = await openCheckpoint(dir);
  try {
    const graph = analyzeModel(ckpt);
    const plan = planTensorParallel(graph, {
      tpSize,
      ...(policy !== undefined ? { policy } : {}),
      vocabParallel: values['vocab-parallel'] ?? false,
      ...(grain !== undefined ? { grain } : {}),
      ...(dtype !== undefined ? { storageDtype: dtype } : {}),
      ...(kvDtype !== undefined ? { kvDtype } : {}),
    });
    io.stdout(values.json ? `${JSON.stringify(plan, null, 1)}\n` : `${renderPlan(plan, dir)}\n`);
    return 0;
  } finally {
    ckpt.close();
  }
}
