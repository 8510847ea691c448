export { main, mainHelp } from './cli.js';
export { processIo, UsageError, type CliIo } from './io.js';
export { renderPlan, collapseRows } from './format/plan-table.js';
