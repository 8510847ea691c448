/**
 * The `tp` command. Errors tp raises on purpose (bad files, bad input, unsplittable heads) are printed
 * as one clear line; anything else is a bug and says so.
 */
import { TpError } from '@tp/core';
import { planCommand, planHelp } from './commands/plan.js';
import { UsageError, type CliIo } from './io.js';

export const mainHelp = `tp — automatic tensor parallelism for Hugging Face checkpoints

Usage: tp <command> [options]

Commands:
  plan <model-dir>    show how every weight is split over N ranks (reads headers only)

Run "tp <command> --help" for a command's options.

Examples:
  tp plan ./Llama-3.2-1B --tp 4
  tp plan ./my-model --tp 2 --json
`;

const COMMANDS: Record<string, { run: (argv: string[], io: CliIo) => Promise<number>; help: string }> = {
  plan: { run: planCommand, help: planHelp },
};

export async function main(argv: string[], io: CliIo): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    io.stdout(mainHelp);
    return command === undefined ? 2 : 0;
  }
  const entry = COMMANDS[command];
  try {
    if (entry === undefined) throw new UsageError(`unknown command "${command}". Commands: ${Object.keys(COMMANDS).join(', ')}`);
    return await entry.run(rest, io);
  } catch (error) {
    if (error instanceof UsageError || (error instanceof TypeError && (error as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS'))) {
      io.stderr(`tp: ${error.message}\nRun "tp ${entry ? `${command} ` : ''}--help" for usage.\n`);
      return 2;
    }
    if (TpError.isInstance(error)) {
      io.stderr(`tp: error [${error.code}]: ${error.message}\n`);
      return 1;
    }
    io.stderr(`tp: internal error: ${(error as Error)?.stack ?? String(error)}\nThis is a bug in tp; please report it with the command you ran.\n`);
    return 70;
  }
}
