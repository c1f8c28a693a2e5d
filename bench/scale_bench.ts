/**
 * The hub at scale: 1,000 connected workers (in a few processes) with 1 s heartbeats — hub CPU
 * and memory, idle and under load — and 100,000 requests queued at once — memory and
 * completion time.
 *
 *   deno run -A bench/scale_bench.ts [--workers 1000] [--processes 4] [--queued 100000]
 *                                    [--requests 50000] [--warmup 50000] [--rounds 5]
 *                                    [--inflight 256] [--idle 10]
 *
 * Under load, `hub_cpu_us_per_request` is the hub's CPU time (user + system) per request: the
 * figure to watch on a shared machine, where requests/s follows the load others put on it.
 * It is measured after `--warmup` requests made the same way, as the socket benchmarks leave
 * out their warm-up: the first requests also pay for compiling the hot path (on V8's compiler
 * threads, counted in the hub's CPU) and for growing the young generation, which a hub serving
 * for hours pays once. The load runs `--rounds` times (`--requests` each, `--inflight` at
 * once) and the figures printed are the rounds' medians, each round's beside them.
 *
 * Prints one JSON line per measurement.
 *
 * @module
 */

import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Hub } from "../mod.ts";
import { sameRuntime, scriptArgs, sibling } from "./_args.ts";
import { own, watchdog } from "./_process.ts";

const { values } = parseArgs({
  args: scriptArgs(),
  options: {
    workers: { type: "string", default: "1000" },
    processes: { type: "string", default: "4" },
    queued: { type: "string", default: "100000" },
    idle: { type: "string", default: "10" },
    requests: { type: "string", default: "50000" },
    warmup: { type: "string", default: "50000" },
    rounds: { type: "string", default: "5" },
    inflight: { type: "string", default: "256" },
  },
});
const total = Number(values.workers);
const processes = Number(values.processes);
const queued = Number(values.queued);
const idleSeconds = Number(values.idle);
const out = (o: unknown) => console.log(JSON.stringify(o));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const mb = (bytes: number) => Math.round(bytes / 1e6);

const disarm = watchdog(120_000, "scale bench");

const swarm = fileURLToPath(sibling("./worker_swarm.ts", import.meta.url));
const children: ChildProcess[] = [];

const hub = new Hub({
  endpoint: "tcp://127.0.0.1:0",
  respBufferSize: Math.max(queued * 2, 10_000),
  maxConnections: total + 100,
  logger: () => {},
});
const endpoint = await hub.ready;
const rssBefore = process.memoryUsage().rss;
const t0 = performance.now();
for (let i = 0; i < processes; i++) {
  const count = Math.floor(total / processes) + (i < total % processes ? 1 : 0);
  const args = sameRuntime(swarm, [endpoint, String(count)]);
  children.push(own(spawn(process.execPath, args, { stdio: ["ignore", "ignore", "inherit"] })));
}
while (hub.workers < total) await sleep(20);
out({ test: "connect", workers: total, processes, seconds: (performance.now() - t0) / 1000 });

// Idle: 1,000 workers pinging once a second, the hub answering.
const cpu0 = process.cpuUsage();
const idleStart = performance.now();
await sleep(idleSeconds * 1000);
const cpu1 = process.cpuUsage(cpu0);
const idleWall = (performance.now() - idleStart) * 1000;
out({
  test: "idle",
  workers: hub.workers,
  hub_cpu_percent: Number((((cpu1.user + cpu1.system) / idleWall) * 100).toFixed(2)),
  // Each worker pings once per heartbeat (1 s): the hub's CPU per worker and second.
  hub_cpu_us_per_worker_s: Number(
    ((cpu1.user + cpu1.system) / (idleWall / 1e6) / hub.workers).toFixed(1),
  ),
  hub_rss_mb: mb(process.memoryUsage().rss),
  hub_rss_growth_mb: mb(process.memoryUsage().rss - rssBefore),
  hub_heap_used_mb: mb(process.memoryUsage().heapUsed),
});

const inflight = Number(values.inflight);

/** One round of load: its figures. */
interface Round {
  req_per_s: number;
  hub_cpu_percent: number;
  hub_cpu_us_per_request: number;
  hub_system_us_per_request: number;
}

/** `n` requests, `inflight` at once, spread over the workers. */
async function load(n: number): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: inflight }, async () => {
    while (next < n) await hub.request(next++, 1);
  }));
}

// Load through all of them: requests spread over 1,000 workers.
{
  const n = Number(values.requests);
  const warmup = Number(values.warmup);
  if (warmup > 0) await load(warmup);
  const rounds: Round[] = [];
  for (let round = 0; round < Math.max(1, Number(values.rounds)); round++) {
    const cpu = process.cpuUsage();
    const start = performance.now();
    await load(n);
    const wall = performance.now() - start;
    const used = process.cpuUsage(cpu);
    rounds.push({
      req_per_s: Math.round(n / (wall / 1000)),
      hub_cpu_percent: Number((((used.user + used.system) / (wall * 1000)) * 100).toFixed(1)),
      hub_cpu_us_per_request: Number(((used.user + used.system) / n).toFixed(1)),
      hub_system_us_per_request: Number((used.system / n).toFixed(1)),
    });
  }
  const median = (key: keyof Round) => {
    const sorted = rounds.map((r) => r[key]).sort((a, b) => a - b);
    return sorted[Math.floor(sorted.length / 2)];
  };
  out({
    test: "load",
    workers: hub.workers,
    requests: n,
    inflight,
    warmup,
    rounds: rounds.length,
    req_per_s: median("req_per_s"),
    hub_cpu_percent: median("hub_cpu_percent"),
    hub_cpu_us_per_request: median("hub_cpu_us_per_request"),
    hub_system_us_per_request: median("hub_system_us_per_request"),
    hub_cpu_us_per_request_rounds: rounds.map((r) => r.hub_cpu_us_per_request),
  });
}

// 100,000 requests queued at once.
if (queued > 0) {
  const rss0 = process.memoryUsage().rss;
  let peak = rss0;
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 20);
  const start = performance.now();
  const all = Array.from({ length: queued }, (_, i) => hub.request(i, 1));
  const queuedAt = performance.now() - start;
  peak = Math.max(peak, process.memoryUsage().rss);
  const results = await Promise.all(all);
  const wall = performance.now() - start;
  clearInterval(sampler);
  if (results.some((r, i) => r !== i + 1)) throw new Error("wrong result");
  out({
    test: "queued",
    requests: queued,
    workers: hub.workers,
    enqueue_ms: Math.round(queuedAt),
    completion_s: Number((wall / 1000).toFixed(2)),
    req_per_s: Math.round(queued / (wall / 1000)),
    peak_rss_growth_mb: mb(peak - rss0),
    bytes_per_queued_request: Math.round((peak - rss0) / queued),
  });
}

for (const c of children) c.kill("SIGTERM");
await hub.close();
disarm();
process.exit(0);
