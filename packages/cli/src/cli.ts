/**
 * The `tp` command. Errors tp raises on purpose (bad files, bad input, unsplittable heads) are printed
 * as one clear line; anything else is a bug and says so.
 */
import { readFileSync } from 'node:fs';
import { TpError } from '@tp/core';
import { benchCommand, benchHelp } from './commands/bench.js';
import { devicesCommand, devicesHelp } from './commands/devices.js';
import { logitsCommand, logitsHelp } from './commands/logits.js';
import { planCommand, planHelp } from './commands/plan.js';
import { runCommand, runHelp } from './commands/run.js';
import { UsageError, type CliIo } from './io.js';
import { CliError } from './output.js';

export const mainHelp = `tp — automatic tensor parallelism for Hugging Face checkpoints

Usage: tp <command> [options]

Commands:
  plan <model-dir>             show how every weight is split over N ranks (reads headers only)
  run <model-dir> <prompt>...  generate text over N ranks, streaming tokens as they come
  logits <model-dir>           the logits at every position of a sequence, as JSON
  bench <model-dir>            load time, prefill, decode speed and memory for each tp size
  devices                      the devices each backend (cpu, webgpu, cuda) sees, or why it cannot run

Run "tp <command> --help" for a command's options and examples; "tp --version" prints the version.
"--" ends the options: what follows is a prompt or folder even when it starts with "-".

Examples:
  tp plan ./Llama-3.2-1B --tp 4
  tp plan ./my-model --tp 2 --json
  tp run ./my-model --tp 2 "The capital of France is"
  tp logits ./my-model --tokens 1,2,3 --tp 2 --out logits.json
  tp bench ./my-model --tp 1,2 --prompt 16 --new 64

Exit codes: 0 done, 1 an error tp explains (tp: error [code]: ...), 2 a usage mistake.
`;

const COMMANDS: Record<string, { run: (argv: string[], io: CliIo) => Promise<number>; help: string }> = {
  plan: { run: planCommand, help: planHelp },
  run: { run: runCommand, help: runHelp },
  logits: { run: logitsCommand, help: logitsHelp },
  bench: { run: benchCommand, help: benchHelp },
  devices: { run: devicesCommand, help: devicesHelp },
};

/** The version of @tp/cli (its package.json, one folder above src/ and dist/). */
export function cliVersion(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

export async function main(argv: string[], io: CliIo): Promise<number> {
  const [command, ...rest] = argv;
  if (command === '--version' || command === '-v' || command === '-V' || command === 'version') {
    io.stdout(`tp ${cliVersion()}\n`);
    return 0;
  }
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    if (command === 'help' && rest[0] !== undefined && COMMANDS[rest[0]] !== undefined) {
      io.stdout(COMMANDS[rest[0]]!.help);
      return 0;
    }
    io.stdout(mainHelp);
    return command === undefined ? 2 : 0;
  }
  const entry = COMMANDS[command];
  try {
    if (entry === undefined) {
      throw new UsageError(command.startsWith('-') ? `"${command}" is not an option of tp itself (it has --help and --version); put a command first, e.g. tp run ./model "Hello"` : `unknown command "${command}". Commands: ${Object.keys(COMMANDS).join(', ')}`);
    }
    return await entry.run(rest, io);
  } catch (error) {
    if (error instanceof UsageError || (error instanceof TypeError && (error as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS'))) {
      io.stderr(`tp: ${error.message.split('\n').filter(Boolean).join(' ')}\nRun "tp ${entry ? `${command} ` : ''}--help" for usage.\n`);
      return 2;
    }
    // A broken invariant (TpError code `internal`) is a bug, not something the user can fix.
    if ((TpError.isInstance(error) && error.code !== 'internal') || error instanceof CliError) {
      io.stderr(`tp: error [${error.code}]: ${oneLine(error.message)}\n`);
      return 1;
    }
    const bug = TpError.isInstance(error) ? (process.env['TP_DEBUG'] ? (error.stack ?? error.message) : error.message) : ((error as Error)?.stack ?? String(error));
    io.stderr(`tp: internal error: ${bug}${TpError.isInstance(error) ? '' : '\nThis is a bug in tp; please report it with the command you ran.'}\n`);
    return 70;
  }
}

/** Errors are one line (a rank's stack, with TP_DEBUG set, stays on the following lines). */
function oneLine(message: string): string {
  return process.env['TP_DEBUG'] ? message : message.split('\n')[0]!;
}
