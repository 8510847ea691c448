export { main, mainHelp } from './cli.js';
export { processIo, UsageError, type CliIo } from './io.js';
export { renderPlan, collapseRows } from './format/plan-table.js';
export { renderBenchTable, machineInfo, describeMachine, type BenchResult, type MachineInfo } from './format/bench-table.js';
export { StreamingDecoder, visibleText } from './format/text.js';
export { float32Text } from './format/floats.js';
export { renderBar, LoadProgressView } from './progress.js';
export { selectBackend } from './session.js';
export { CliError, writeFileAtomic } from './output.js';
