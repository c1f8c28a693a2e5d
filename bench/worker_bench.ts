/**
 * The worker runtime under load: where a handler runs (on the connection's thread, or on
 * handler threads) and how many requests one worker serves at once.
 *
 *   deno run -A bench/worker_bench.ts --case cpu|io|hop [--seconds 3]
 *
 * - `cpu`: a model computing 5 ms per request, 16 requests in flight, through 2 workers × 1
 *   thread, 1 worker × 2 threads, and 2 workers running it on the connection's thread.
 * - `io`: a model awaiting 50 ms, 128 in flight, through 1 worker with `--concurrency 64`
 *   against 64 workers serving one request each.
 * - `hop`: a trivial model through one worker, on a handler thread against the connection's
 *   thread: 64 in flight (requests/s), then one at a time (p50).
 *
 * Prints one JSON line per configuration: requests/s, latency p50/p99 under that load (ms),
 * and the workers' resident memory (MB, summed over their processes).
 *
 * @module
 */

import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { Hub, spawnWorkers, type SpawnWorkersOptions } from "../mod.ts";
import { scriptArgs, sibling } from "./_args.ts";

const { values } = parseArgs({
  args: scriptArgs(),
  options: { case: { type: "string", default: "cpu" }, seconds: { type: "string", default: "3" } },
});
const seconds = Number(values.seconds);

const watchdog = setTimeout(() => {
  console.error("worker bench: watchdog fired after 120 s");
  process.exit(3);
}, 120_000);

/** Resident memory of a process in MB (Linux), or NaN. */
function rssMb(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1]);
    return kb / 1024;
  } catch {
    return NaN;
  }
}

interface Config {
  label: string;
  model: string;
  modelArgs: unknown[];
  inFlight: number;
  workers: SpawnWorkersOptions;
  sequential?: number;
}

async function measure(config: Config): Promise<Record<string, unknown>> {
  const hub = new Hub({ endpoint: "tcp://127.0.0.1:0", respBufferSize: 100_000, logger: () => {} });
  const endpoint = await hub.ready;
  const count = config.workers.count ?? 1;
  const workers = spawnWorkers(sibling("./models.ts", import.meta.url), {
    ...config.workers,
    export: config.model,
    endpoint,
    quiet: true,
  });
  try {
    const t0 = performance.now();
    while (hub.workers < count) {
      if (performance.now() - t0 > 60_000) throw new Error(`only ${hub.workers} workers`);
      await new Promise((r) => setTimeout(r, 10));
    }
    for (let i = 0; i < 2 * count; i++) await hub.request(...config.modelArgs); // warm-up
    const latencies: number[] = [];
    let done = 0;
    const deadline = performance.now() + seconds * 1000;
    const start = performance.now();
    await Promise.all(Array.from({ length: config.inFlight }, async () => {
      while (performance.now() < deadline) {
        const t = performance.now();
        await hub.request(...config.modelArgs);
        latencies.push(performance.now() - t);
        done++;
      }
    }));
    const rate = done / ((performance.now() - start) / 1000);
    const memory = workers.processes.reduce((sum, p) => sum + rssMb(p.pid), 0);
    latencies.sort((a, b) => a - b);
    const pct = (p: number) =>
      latencies[Math.min(latencies.length - 1, Math.ceil(p * latencies.length) - 1)];
    let sequentialP50: number | undefined;
    if (config.sequential) {
      const samples: number[] = [];
      for (let i = 0; i < config.sequential; i++) {
        const t = performance.now();
        await hub.request(...config.modelArgs);
        samples.push((performance.now() - t) * 1000);
      }
      samples.sort((a, b) => a - b);
      sequentialP50 = Number(samples[Math.floor(samples.length / 2)].toFixed(1));
    }
    return {
      name: "gibbs (ours)",
      test: `workers-${values.case}`,
      config: config.label,
      in_flight: config.inFlight,
      req_per_s: Math.round(rate),
      p50_ms: Number(pct(0.5).toFixed(2)),
      p99_ms: Number(pct(0.99).toFixed(2)),
      rss_mb: Math.round(memory),
      ...(sequentialP50 !== undefined ? { sequential_p50_us: sequentialP50 } : {}),
    };
  } finally {
    await workers.stop();
    await hub.close();
  }
}

const cases: Record<string, Config[]> = {
  cpu: [
    {
      label: "2 workers x 1 thread",
      model: "spin",
      modelArgs: [5],
      inFlight: 16,
      workers: { count: 2, threads: 1 },
    },
    {
      label: "1 worker x 2 threads",
      model: "spin",
      modelArgs: [5],
      inFlight: 16,
      workers: { count: 1, threads: 2 },
    },
    {
      label: "2 workers in-process",
      model: "spin",
      modelArgs: [5],
      inFlight: 16,
      workers: { count: 2, threads: 0 },
    },
  ],
  io: [
    {
      label: "1 worker, concurrency 64",
      model: "wait",
      modelArgs: [50],
      inFlight: 128,
      workers: { count: 1, concurrency: 64 },
    },
    {
      label: "64 workers, 1 each",
      model: "wait",
      modelArgs: [50],
      inFlight: 128,
      workers: { count: 64 },
    },
  ],
  hop: [
    {
      label: "handler thread",
      model: "default",
      modelArgs: [1, 2],
      inFlight: 64,
      workers: { count: 1, threads: 1 },
      sequential: 2000,
    },
    {
      label: "connection's thread",
      model: "default",
      modelArgs: [1, 2],
      inFlight: 64,
      workers: { count: 1, threads: 0 },
      sequential: 2000,
    },
  ],
};

const chosen = cases[values.case!];
if (chosen === undefined) {
  console.error(`unknown case "${values.case}" (cpu, io, hop)`);
  process.exit(2);
}
for (const config of chosen) console.log(JSON.stringify(await measure(config)));
clearTimeout(watchdog);
