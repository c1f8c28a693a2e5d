/**
 * Round trips through our Hub to 2 worker processes with a trivial model, measured as
 * bench/gibbs_py_bench.py measures the Python gibbs protocol: many requests in flight for a
 * few seconds (requests/s), then one request at a time (latency p50/p99).
 *
 *   deno run -A bench/hub_bench.ts [--seconds 3] [--concurrency 64] [--sequential 2000]
 *                                  [--workers 2] [--prefetch auto|N] [--curve] [--threads 0]
 *
 * `--threads`: handler threads per worker (default 0: the model runs on the worker's connection
 * thread, as a Python gibbs worker runs it). With a thread, each request also pays the hop to it
 * and back (about 100 µs here), which bench/worker_bench.ts measures on its own; this benchmark
 * measures the hub.
 *
 * `--curve`: the hub is a CURVE server and the workers CURVE clients (keys made for the run).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { curveKeyPair, Hub, spawnWorkers } from "../mod.ts";
import { scriptArgs, sibling } from "./_args.ts";
import { own, watchdog } from "./_process.ts";

const { values } = parseArgs({
  args: scriptArgs(),
  options: {
    seconds: { type: "string", default: "3" },
    concurrency: { type: "string", default: "64" },
    sequential: { type: "string", default: "2000" },
    workers: { type: "string", default: "2" },
    prefetch: { type: "string", default: "auto" },
    curve: { type: "boolean", default: false },
    threads: { type: "string", default: "0" },
  },
});
const hubKeys = values.curve ? curveKeyPair() : undefined;
const seconds = Number(values.seconds);
const concurrency = Number(values.concurrency);
const sequential = Number(values.sequential);
const count = Number(values.workers);

// On the watchdog (or any exit) the workers are killed too: none is left running.
const disarm = watchdog(30_000, "hub bench");

const prefetch = values.prefetch === "auto" ? "auto" : Number(values.prefetch);
const hub = new Hub({
  endpoint: "tcp://127.0.0.1:0",
  respBufferSize: 100_000,
  prefetch,
  security: hubKeys && { curveServer: true, curveSecretKey: hubKeys.secretKey },
});
const endpoint = await hub.ready;
const workers = spawnWorkers(sibling("./models.ts", import.meta.url), {
  count,
  endpoint,
  threads: Number(values.threads),
  quiet: true,
  security: hubKeys &&
    { curveServerKey: hubKeys.publicKey, curveSecretKey: curveKeyPair().secretKey },
});
own({ kill: () => workers.processes.forEach((p) => p.kill("SIGKILL")) });
try {
  while (hub.workers < count) await new Promise((r) => setTimeout(r, 10));
  for (let i = 0; i < 2000; i++) await hub.request(i, 1); // warm-up

  let done = 0;
  const deadline = performance.now() + seconds * 1000;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async (_, lane) => {
    while (performance.now() < deadline) {
      const r = await hub.request(lane, done);
      if (typeof r !== "number") throw new Error(`bad result ${r}`);
      done++;
    }
  }));
  const rate = done / ((performance.now() - t0) / 1000);

  const samples = new Float64Array(sequential);
  for (let i = 0; i < sequential; i++) {
    const t = performance.now();
    await hub.request(i, 1);
    samples[i] = (performance.now() - t) * 1000;
  }
  samples.sort();
  const pct = (p: number) =>
    samples[Math.min(sequential - 1, Math.ceil((p / 100) * sequential) - 1)];
  console.log(JSON.stringify({
    name: values.curve ? "gibbs (ours), CURVE" : "gibbs (ours)",
    test: "hub",
    workers: count,
    prefetch,
    threads: Number(values.threads),
    req_per_s: Math.round(rate),
    p50_us: Number(pct(50).toFixed(1)),
    p99_us: Number(pct(99).toFixed(1)),
  }));
} finally {
  await workers.stop();
  await hub.close();
  disarm();
}
