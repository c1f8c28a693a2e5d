/**
 * Model serving through the hub: dynamic batching, streaming and cancellation.
 *
 *   deno run -A bench/serving_bench.ts --case batch|stream|cancel [--seconds 3]
 *
 * - `batch`: a GPU-like model (2 ms per call + 0.05 ms per item, one call at a time) through one
 *   worker, 64 requests in flight: requests/s without batching and with `--batch-size 16`
 *   (target ≥ 6×); then latency p50/p99 with batching at half its measured throughput, requests
 *   arriving at a steady rate.
 * - `stream`: time to first chunk (p50/p99 over 200 streams) through `hub.stream()` and through
 *   the HTTP gateway's `POST /stream`; chunks/s on one stream of 20,000 chunks.
 * - `cancel`: a request computing for 10 s is aborted; the time until the worker's one slot has
 *   served the next request (p50/p99 over 50 aborts; target < 50 ms).
 *
 * Prints one JSON line per figure set.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { Hub, spawnWorkers, type SpawnWorkersOptions } from "../mod.ts";
import { gatewayHandler } from "../src/cli/gateway.ts";
import { runtime } from "../src/transport/runtime.ts";
import { scriptArgs, sibling } from "./_args.ts";

const { values } = parseArgs({
  args: scriptArgs(),
  options: {
    case: { type: "string", default: "batch" },
    seconds: { type: "string", default: "3" },
  },
});
const seconds = Number(values.seconds);
const watchdog = setTimeout(() => {
  console.error("serving bench: watchdog fired after 180 s");
  process.exit(3);
}, 180_000);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const pct = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))];
const round = (x: number, digits = 2) => Number(x.toFixed(digits));

async function withPool<T>(
  model: string,
  workers: SpawnWorkersOptions,
  body: (hub: Hub) => Promise<T>,
): Promise<T> {
  const hub = new Hub({ endpoint: "tcp://127.0.0.1:0", respBufferSize: 100_000, logger: () => {} });
  const endpoint = await hub.ready;
  const pool = spawnWorkers(sibling("./models.ts", import.meta.url), {
    count: 1,
    ...workers,
    export: model,
    endpoint,
    quiet: true,
  });
  try {
    const t0 = performance.now();
    while (hub.workers < (workers.count ?? 1)) {
      if (performance.now() - t0 > 60_000) throw new Error("workers did not connect");
      await sleep(10);
    }
    return await body(hub);
  } finally {
    await pool.stop();
    await hub.close();
  }
}

/** Requests/s with `inFlight` requests always outstanding. */
async function closedLoop(hub: Hub, inFlight: number): Promise<number> {
  for (let i = 0; i < 64; i++) await hub.request(i); // warm
  let done = 0;
  const deadline = performance.now() + seconds * 1000;
  const start = performance.now();
  await Promise.all(Array.from({ length: inFlight }, async () => {
    while (performance.now() < deadline) {
      await hub.request(done);
      done++;
    }
  }));
  return done / ((performance.now() - start) / 1000);
}

/** Latencies (ms, sorted) of requests sent at a steady `rate` per second. */
async function openLoop(hub: Hub, rate: number): Promise<number[]> {
  const latencies: number[] = [];
  const pending: Promise<void>[] = [];
  const interval = 1000 / rate;
  const start = performance.now();
  for (let i = 0; performance.now() - start < seconds * 1000; i++) {
    const due = start + i * interval;
    const wait = due - performance.now();
    if (wait > 1) await sleep(wait);
    const t = performance.now();
    pending.push(hub.request(i).then(() => void latencies.push(performance.now() - t)));
  }
  await Promise.all(pending);
  return latencies.sort((a, b) => a - b);
}

async function batching(): Promise<void> {
  const plain = await withPool("GpuLike", {}, (hub) => closedLoop(hub, 64));
  const [batched, latencies] = await withPool(
    "GpuLike",
    { batch: { maxSize: 16, maxWaitMs: 5 } },
    async (hub) => {
      const rate = await closedLoop(hub, 64);
      return [rate, await openLoop(hub, rate / 2)] as const;
    },
  );
  console.log(JSON.stringify({
    name: "gibbs (ours)",
    test: "serving-batch",
    unbatched_req_per_s: Math.round(plain),
    batch16_req_per_s: Math.round(batched),
    speedup: round(batched / plain),
    half_load_p50_ms: round(pct(latencies, 0.5)),
    half_load_p99_ms: round(pct(latencies, 0.99)),
  }));
}

async function streaming(): Promise<void> {
  await withPool("chunks", {}, async (hub) => {
    for (let i = 0; i < 20; i++) await hub.stream(1).toArray(); // warm
    const first: number[] = [];
    for (let i = 0; i < 200; i++) {
      const t = performance.now();
      const stream = hub.stream(3);
      await stream.next();
      first.push(performance.now() - t);
      for await (const _ of stream); // the rest
    }
    first.sort((a, b) => a - b);
    const handle = gatewayHandler(hub);
    const http = await runtime.serveHttp("127.0.0.1", 0, handle);
    const viaHttp: number[] = [];
    try {
      for (let i = 0; i < 200; i++) {
        const t = performance.now();
        const res = await fetch(`http://127.0.0.1:${http.port}/stream`, {
          method: "POST",
          headers: { accept: "text/event-stream" },
          body: JSON.stringify({ args: [3] }),
        });
        const reader = res.body!.getReader();
        await reader.read();
        viaHttp.push(performance.now() - t);
        while (!(await reader.read()).done);
      }
    } finally {
      await http.close();
    }
    viaHttp.sort((a, b) => a - b);
    const n = 20_000;
    const t = performance.now();
    let count = 0;
    for await (const _ of hub.stream(n)) count++;
    const perSecond = count / ((performance.now() - t) / 1000);
    console.log(JSON.stringify({
      name: "gibbs (ours)",
      test: "serving-stream",
      first_chunk_p50_ms: round(pct(first, 0.5)),
      first_chunk_p99_ms: round(pct(first, 0.99)),
      http_first_event_p50_ms: round(pct(viaHttp, 0.5)),
      http_first_event_p99_ms: round(pct(viaHttp, 0.99)),
      chunks_per_s: Math.round(perSecond),
    }));
  });
}

async function cancellation(): Promise<void> {
  await withPool("cancellable", {}, async (hub) => {
    await hub.request(0); // warm
    const freed: number[] = [];
    for (let i = 0; i < 50; i++) {
      const controller = new AbortController();
      const long = hub.requestWith({ args: [10_000], signal: controller.signal });
      long.catch(() => {});
      await sleep(20); // it is computing
      const next = hub.request(0);
      const t = performance.now();
      controller.abort(new Error("gave up"));
      await next;
      freed.push(performance.now() - t);
    }
    freed.sort((a, b) => a - b);
    console.log(JSON.stringify({
      name: "gibbs (ours)",
      test: "serving-cancel",
      abort_to_next_p50_ms: round(pct(freed, 0.5)),
      abort_to_next_p99_ms: round(pct(freed, 0.99)),
    }));
  });
}

const cases: Record<string, () => Promise<void>> = {
  batch: batching,
  stream: streaming,
  cancel: cancellation,
};
const run = cases[values.case!];
if (run === undefined) {
  console.error(`unknown case "${values.case}" (batch, stream, cancel)`);
  process.exit(2);
}
await run();
clearTimeout(watchdog);
