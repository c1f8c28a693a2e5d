/**
 * Dynamic batching: 64 requests at once through one worker, with and without batches of 16.
 *
 *   deno run -A examples/batching/app.ts
 *
 * @module
 */

import { Hub, spawnWorkers } from "../../mod.ts";

async function run(batchSize: number | undefined): Promise<number> {
  const hub = new Hub({ endpoint: "tcp://127.0.0.1:0", logger: () => {} });
  const workers = spawnWorkers(new URL("./model.ts", import.meta.url), {
    endpoint: await hub.ready,
    batch: batchSize ? { maxSize: batchSize, maxWaitMs: 5 } : { maxSize: 1, maxWaitMs: 0 },
    quiet: true,
  });
  try {
    while (hub.workers < 1) await new Promise((r) => setTimeout(r, 10));
    const texts = Array.from({ length: 64 }, (_, i) => `text number ${i}`);
    const t0 = performance.now();
    const vectors = await Promise.all(texts.map((text) => hub.request(text)));
    const elapsed = performance.now() - t0;
    console.log(
      `batch size ${batchSize ?? 1}: 64 requests in ${elapsed.toFixed(0)} ms; first: ${
        JSON.stringify(vectors[0])
      }`,
    );
    return elapsed;
  } finally {
    await workers.stop();
    await hub.close();
  }
}

const one = await run(undefined);
const sixteen = await run(16);
console.log(`${(one / sixteen).toFixed(1)}x faster with batches of 16`);
