/**
 * One rank of the conformance suite's collective cases, in its own worker thread (host collectives
 * block the thread in Atomics.wait, so ranks cannot share one). It imports the backend from
 * `moduleUrl`, creates its rank from the communicator it was given, runs the scenario and posts the
 * results; the suite compares them on the main thread.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { Backend, DeviceTensor, HostTensor, Rank } from '../backend/index.js';
import {
  ALL_REDUCES,
  allGatherInput,
  allReduceInput,
  broadcastInput,
  type CollectiveResult,
  type CollectiveWorkerData,
  type CollectiveWorkerMessage,
} from './collective-data.js';

const data = workerData as CollectiveWorkerData;
const port = parentPort!;
const post = (m: CollectiveWorkerMessage) => port.postMessage(m);
let stage = 'import';

const f32 = (values: Float32Array, shape: number[]): HostTensor => ({ bytes: new Uint8Array(values.buffer, values.byteOffset, values.byteLength), dtype: 'f32', shape });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function result(rank: Rank, t: DeviceTensor): Promise<CollectiveResult> {
  const values = await rank.download(t);
  return { shape: [...t.shape], dtype: t.dtype, values: Array.from(values) };
}

async function collectives(rank: Rank): Promise<Record<string, CollectiveResult>> {
  const results: Record<string, CollectiveResult> = {};
  rank.beginStep();
  for (const name of ALL_REDUCES) {
    stage = name;
    const input = allReduceInput(name, data.rank);
    const t = rank.upload(f32(input.values, input.shape));
    await rank.collective.allReduce(t);
    results[name] = await result(rank, t);
  }
  for (const twoD of [false, true]) {
    const name = twoD ? 'allGather 2-D' : 'allGather 1-D';
    stage = name;
    const input = allGatherInput(twoD, data.rank);
    const t = rank.upload(f32(input.values, input.shape));
    results[name] = await result(rank, await rank.collective.allGather(t));
  }
  for (let root = 0; root < data.world; root++) {
    const name = `broadcast root ${root}`;
    stage = name;
    const input = broadcastInput(root, data.rank);
    const t = rank.upload(f32(input.values, input.shape));
    await rank.collective.broadcast(t, root);
    results[name] = await result(rank, t);
  }
  // Barrier: every rank increments a shared counter before it; after it, each must see all increments.
  const counters = new Int32Array(data.counters!);
  const seen: number[] = [];
  for (let i = 0; i < 3; i++) {
    stage = `barrier ${i}`;
    Atomics.add(counters, i, 1);
    await rank.collective.barrier();
    seen.push(Atomics.load(counters, i));
  }
  results['barrier'] = { shape: [3], dtype: 'i32', values: seen };
  stage = 'endStep';
  await rank.endStep();
  return results;
}

async function main(): Promise<void> {
  const { backend } = (await import(data.moduleUrl)) as { backend: Backend };
  stage = 'createRank';
  const rank = await backend.createRank({ rank: data.rank, world: data.world, communicator: data.communicator, options: {} });
  post({ type: 'ready', rank: data.rank });
  if (data.scenario === 'collectives') {
    const results = await collectives(rank);
    stage = 'dispose';
    await rank.dispose();
    post({ type: 'result', rank: data.rank, results });
    return;
  }
  if (data.rank === data.culprit) {
    if (data.scenario === 'stuck') {
      // Never arrives (but stays alive): the others must give up after the communicator's timeout.
      setInterval(() => {}, 1000);
      await new Promise(() => {});
    }
    // Fail while the others wait in the all-reduce, and tell them so: first wait until every other
    // rank has created its rank (on a loaded machine opening a device can take seconds; aborting
    // before would stop them in createRank instead), then give them time to enter the all-reduce.
    const created = new Int32Array(data.counters!);
    const deadline = Date.now() + 30_000;
    while (Atomics.load(created, 0) < data.world - 1 && Date.now() < deadline) await sleep(10);
    await sleep(300);
    backend.abortCommunicator(data.communicator, data.rank);
    post({ type: 'aborted', rank: data.rank });
    return;
  }
  if (data.scenario === 'fail') Atomics.add(new Int32Array(data.counters!), 0, 1);
  stage = 'allReduce';
  rank.beginStep();
  const input = allReduceInput('allReduce [37]', data.rank);
  const t = rank.upload(f32(input.values, input.shape));
  await rank.collective.allReduce(t);
  post({ type: 'result', rank: data.rank, results: { 'allReduce [37]': await result(rank, t) } });
}

main().catch((error: unknown) => {
  const e = error as Error & { code?: unknown; rank?: unknown };
  post({
    type: 'error',
    rank: data.rank,
    name: e?.name ?? 'Error',
    message: e?.message ?? String(error),
    ...(typeof e?.code === 'string' ? { code: e.code } : {}),
    ...(typeof e?.rank === 'number' ? { failedRank: e.rank } : {}),
    stage,
  });
});
