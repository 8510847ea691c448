/** Writing result files: all or nothing, and one clear error when the place cannot be written. */
import { randomBytes } from 'node:crypto';
import { stat, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';

/** A failure of the CLI itself (not of the model): printed as `tp: error [code]: message`, exit 1. */
export class CliError extends Error {
  constructor(
    readonly code: 'write-failed',
    message: string,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/** Fail early — before a model is loaded — when `file` cannot be written to. */
export async function checkWritable(file: string): Promise<void> {
  // "out/" names a folder, whether or not it exists: never write a file called "out".
  if (/[\\/]$/.test(file) || file === '.' || file === '..') {
    const exists = (await stat(file).catch(() => undefined))?.isDirectory() === true;
    throw new CliError('write-failed', `cannot write ${file}: it names a folder${exists ? '' : ' (which does not exist)'}; give a file name, e.g. ${path.join(file, 'logits.json')}`);
  }
  const folder = path.dirname(path.resolve(file));
  const folderStat = await stat(folder).catch(() => undefined);
  if (folderStat === undefined || !folderStat.isDirectory()) throw new CliError('write-failed', `cannot write ${file}: the folder ${folder} does not exist`);
  const target = await stat(file).catch(() => undefined);
  if (target?.isDirectory()) throw new CliError('write-failed', `cannot write ${file}: it is a folder; give a file name`);
}

/**
 * Write `text` to `file` atomically: into a temporary file in the same folder, then renamed over the
 * target. A reader sees either the old file or the whole new one, never a partial file.
 */
export async function writeFileAtomic(file: string, text: string): Promise<void> {
  const resolved = path.resolve(file);
  const temp = path.join(path.dirname(resolved), `.${path.basename(resolved)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    await writeFile(temp, text, { flag: 'wx' });
    await rename(temp, resolved);
  } catch (cause) {
    await rm(temp, { force: true });
    throw new CliError('write-failed', `cannot write ${file}: ${(cause as Error).message}`);
  }
}
