#!/usr/bin/env node
import { main } from './cli.js';
import { processIo } from './io.js';

// A reader that stops early (`tp logits ... | head`) closes the pipe: stop quietly, like other tools.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(0);
  throw error;
});

process.exitCode = await main(process.argv.slice(2), processIo);
