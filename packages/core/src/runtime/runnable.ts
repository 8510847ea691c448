/**
 * Whether the engine runs a checkpoint, decided from its headers alone: the session asks before it
 * plans, and the CLI before it starts anything, so an unsupported model costs no weight reads.
 */
import { openCheckpoint, type Checkpoint } from '../checkpoint/index.js';
import { UnsupportedModelError } from '../errors/index.js';
import { analyzeModel, FAMILIES, type ModelGraph } from '../graph/index.js';
import { engineGap } from './engine.js';

/** The model types the engine runs (tp plan plans more), for the unsupported-model message. */
export function runnableModelTypes(): string[] {
  return FAMILIES.filter((f) => f.engineGap === undefined && f.refuse === undefined && (f.decoder !== undefined || f.encoder !== undefined || f.seq2seq !== undefined)).map((f) => f.modelType);
}

/**
 * The checkpoint's folder, config and graph, or an `unsupported-model` error naming what the engine
 * lacks for it and the model types it runs. `runs` says who runs models (the message's subject).
 */
export async function analyzeRunnable(dir: string, runs = 'The engine runs'): Promise<{ dir: string; config: Record<string, unknown>; graph: ModelGraph }> {
  const ckpt = await openCheckpoint(dir);
  return { dir: ckpt.dir, config: ckpt.config as Record<string, unknown>, graph: runnableGraph(ckpt, runs) };
}

/** As analyzeRunnable, for a checkpoint already open (from byte sources in a browser); closes it. */
export function runnableGraph(ckpt: Checkpoint, runs = 'The engine runs'): ModelGraph {
  let graph: ModelGraph;
  try {
    graph = analyzeModel(ckpt);
  } finally {
    ckpt.close();
  }
  const gap = engineGap(graph);
  if (gap !== undefined) {
    throw new UnsupportedModelError({ modelType: graph.modelType, reason: gap, hint: `tp plan still works for it. ${runs} these model types: ${runnableModelTypes().join(', ')}` });
  }
  return graph;
}
