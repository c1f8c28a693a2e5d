/**
 * The chaos test, longer, as a benchmark: 4 workers, a random one SIGKILLed and replaced every
 * 300 ms, 32 requests in flight, no caller timeout; then the same run without kills.
 *
 *   deno run -A bench/chaos_bench.ts [--seconds 10] [--every 300] [--grace 10]
 *
 * Prints one JSON line per run: requests issued; `lost` (no answer `--grace` seconds after the
 * last was issued), `failed` (rejected), `wrong` (a result that is not 3 × the argument),
 * `answered_twice` (completions the hub counted beyond one per answered request); kills and
 * re-dispatches; latency p50/p99/max of the answered ones. A watchdog bounds the whole run and
 * the workers die with it.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { Hub, spawnWorkers } from "../mod.ts";
import { scriptArgs, sibling } from "./_args.ts";
import { disown, own, watchdog } from "./_process.ts";

const { values } = parseArgs({
  args: scriptArgs(),
  options: {
    seconds: { type: "string", default: "10" },
    every: { type: "string", default: "300" },
    grace: { type: "string", default: "10" },
  },
});
const seconds = Number(values.seconds);
const every = Number(values.every);
const grace = Number(values.grace);
const model = sibling("../tests/fixtures/chaos_model.ts", import.meta.url);
const disarm = watchdog(2 * (seconds + grace) * 1000 + 60_000, "chaos bench");

async function run(chaos: boolean) {
  const hub = new Hub({ endpoint: "tcp://127.0.0.1:0", heartbeatInterval: 0.5, logger: () => {} });
  const endpoint = await hub.ready;
  const workers = spawnWorkers(model, {
    count: 4,
    endpoint,
    heartbeatInterval: 0.5,
    inheritOutput: false,
  });
  const owner = own({ kill: () => workers.processes.forEach((p) => p.kill("SIGKILL")) });
  const killed = new Set<number>();
  let timer: ReturnType<typeof setInterval> | undefined;
  try {
    const joinBy = performance.now() + 20_000;
    while (hub.workers < 4) {
      if (performance.now() > joinBy) throw new Error(`only ${hub.workers} of 4 workers joined`);
      await new Promise((r) => setTimeout(r, 10));
    }
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
    const pending = new Set<number>();
    let issued = 0;
    let answered = 0;
    let failed = 0;
    let wrong = 0;
    const deadline = performance.now() + seconds * 1000;
    const lanes = Promise.all(Array.from({ length: 32 }, async () => {
      while (performance.now() < deadline) {
        const i = issued++;
        pending.add(i);
        const t = performance.now();
        try {
          if ((await hub.request(i)) !== 3 * i) wrong++;
          answered++;
          latencies.push((performance.now() - t) * 1000);
        } catch {
          failed++;
        }
        pending.delete(i);
      }
    }));
    // A lost request would hold its lane forever: wait a bounded time, then count what is left.
    let graceTimer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      lanes,
      new Promise((r) => (graceTimer = setTimeout(r, seconds * 1000 + grace * 1000))),
    ]);
    clearTimeout(graceTimer);
    clearInterval(timer);
    latencies.sort((a, b) => a - b);
    const pct = (p: number) =>
      latencies[Math.min(latencies.length - 1, Math.ceil(p / 100 * latencies.length) - 1)];
    const stats = hub.stats();
    console.log(JSON.stringify({
      test: chaos ? "chaos" : "no-chaos",
      seconds,
      requests: issued,
      answered,
      lost: pending.size,
      failed,
      wrong,
      answered_twice: Math.max(0, stats.completed - answered),
      kills: killed.size,
      redispatched: stats.redispatched,
      p50_us: Math.round(pct(50)),
      p99_us: Math.round(pct(99)),
      max_us: Math.round(latencies[latencies.length - 1]),
    }));
  } finally {
    clearInterval(timer);
    await workers.kill();
    disown(owner);
    await hub.close();
  }
}

await run(false);
await run(true);
disarm();
process.exit(0);
