/**
 * The chaos test, longer, as a benchmark: 4 workers, a random one SIGKILLed and replaced every
 * 300 ms, 32 requests in flight; prints latency p50/p99/max, re-dispatches and kills, and the
 * same run without kills for comparison.
 *
 *   deno run -A bench/chaos_bench.ts [--seconds 10] [--every 300]
 *
 * @module
 */

import { parseArgs } from "node:util";
import { Hub, spawnWorkers } from "../mod.ts";
import { scriptArgs, sibling } from "./_args.ts";

const { values } = parseArgs({
  args: scriptArgs(),
  options: {
    seconds: { type: "string", default: "10" },
    every: { type: "string", default: "300" },
  },
});
const seconds = Number(values.seconds);
const every = Number(values.every);
const model = sibling("../tests/fixtures/chaos_model.ts", import.meta.url);

async function run(chaos: boolean) {
  const hub = new Hub({ endpoint: "tcp://127.0.0.1:0", heartbeatInterval: 0.5, logger: () => {} });
  const endpoint = await hub.ready;
  const workers = spawnWorkers(model, {
    count: 4,
    endpoint,
    heartbeatInterval: 0.5,
    inheritOutput: false,
  });
  const killed = new Set<number>();
  let timer: ReturnType<typeof setInterval> | undefined;
  try {
    while (hub.workers < 4) await new Promise((r) => setTimeout(r, 10));
    if (chaos) {
      timer = setInterval(() => {
        const live = workers.processes.filter((p) => !killed.has(p.pid));
        const victim = live[Math.floor(Math.random() * live.length)];
        victim.kill("SIGKILL");
        killed.add(victim.pid);
        workers.add();
      }, every);
    }
    const latencies: number[] = [];
    let wrong = 0;
    let n = 0;
    const deadline = performance.now() + seconds * 1000;
    await Promise.all(Array.from({ length: 32 }, async () => {
      while (performance.now() < deadline) {
        const i = n++;
        const t = performance.now();
        if ((await hub.request(i)) !== 3 * i) wrong++;
        latencies.push((performance.now() - t) * 1000);
      }
    }));
    clearInterval(timer);
    latencies.sort((a, b) => a - b);
    const pct = (p: number) =>
      latencies[Math.min(latencies.length - 1, Math.ceil(p / 100 * latencies.length) - 1)];
    const stats = hub.stats();
    console.log(JSON.stringify({
      test: chaos ? "chaos" : "no-chaos",
      seconds,
      requests: latencies.length,
      completed: stats.completed,
      wrong_results: wrong,
      kills: killed.size,
      redispatched: stats.redispatched,
      p50_us: Math.round(pct(50)),
      p99_us: Math.round(pct(99)),
      max_us: Math.round(latencies[latencies.length - 1]),
    }));
  } finally {
    clearInterval(timer);
    await workers.kill();
    await hub.close();
  }
}

await run(false);
await run(true);
process.exit(0);
