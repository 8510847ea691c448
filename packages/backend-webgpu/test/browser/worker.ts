/**
 * One rank of the browser test's collectives: a Web Worker with its own adapter and device, the same
 * inputs as the conformance suite's collective workers, results posted back to the page.
 */
import type { CommunicatorInit, DeviceTensor } from '../../../core/src/backend/index.js';
import { ALL_REDUCES, allGatherInput, allReduceInput, broadcastInput } from '../../../core/src/testing/collective-data.js';
import { createBrowserRank } from '../../src/browser.js';

self.onmessage = async (event: MessageEvent<{ rank: number; world: number; communicator: CommunicatorInit }>) => {
  const { rank: r, world, communicator } = event.data;
  try {
    const rank = await createBrowserRank({ rank: r, world, communicator, options: {} });
    const f32 = (v: { shape: number[]; values: Float32Array }) => rank.upload({ bytes: new Uint8Array(v.values.buffer), dtype: 'f32', shape: v.shape });
    const read = async (t: DeviceTensor) => ({ shape: [...t.shape], values: Array.from(await rank.download(t)) });
    const results: Record<string, { shape: number[]; values: number[] }> = {};
    rank.beginStep();
    for (const name of ALL_REDUCES) {
      const t = f32(allReduceInput(name, r));
      await rank.collective.allReduce(t);
      results[name] = await read(t);
    }
    results['allGather 1-D'] = await read(await rank.collective.allGather(f32(allGatherInput(false, r))));
    results['allGather 2-D'] = await read(await rank.collective.allGather(f32(allGatherInput(true, r))));
    for (let root = 0; root < world; root++) {
      const t = f32(broadcastInput(root, r));
      await rank.collective.broadcast(t, root);
      results[`broadcast root ${root}`] = await read(t);
    }
    await rank.endStep();
    await rank.dispose();
    postMessage(results);
  } catch (error) {
    postMessage(`rank ${r}: ${(error as Error)?.stack ?? String(error)}`);
  }
};
