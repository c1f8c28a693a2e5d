/**
 * What counting every request costs the hub: round trips/s through one hub and its worker
 * processes (the trivial `add` model), its counting switched per round
 * ({@linkcode Hub.metricsEnabled}), so that nothing but the metrics differs:
 *
 * - `on`: the default (counters, three histograms, the per-second history);
 * - `off`: no counting, the baseline;
 * - `prom-client`: no counting by the hub, the same figures kept in prom-client (a counter and
 *   three histograms with a `service` label, through their `labels()` children) by the caller
 *   of each request: the anchor, what a Node user would write with the usual library;
 * - `off again`: the baseline once more, whose difference to `off` is the noise floor.
 *
 * `--concurrency` requests in flight for `--seconds` per round; rounds go round-robin, rotating
 * which mode goes first, and the figure per mode is the median of its rounds. The cost is
 * `1 - on / off` from the medians, and the median of the per-round ratios beside it.
 * Beside the rates, this process's CPU time per request (the hub and the caller), which other
 * load on the machine disturbs less than the rates: metrics cost CPU time, nothing else. And
 * the hook alone, timed in a loop (`ns_per_req_*`): the hub's `settle` path through our
 * observer, and the same four updates through prom-client; divided by the hub's CPU time per
 * request they give the cost on a machine that is not shared.
 *
 *   deno run -A bench/metrics_cost_bench.ts [--rounds 25] [--seconds 0.6] [--concurrency 64]
 *                                           [--workers 2]
 *
 * Prints one JSON line. Under Node: `node npm/bench/metrics_cost_bench.js`.
 *
 * @module
 */

import { parseArgs } from "node:util";
import client from "prom-client";
import { Hub, spawnWorkers, type WorkerProcesses } from "../mod.ts";
import { HubObserver } from "../src/gibbs/hub_observer.ts";
import { runtime } from "../src/transport/runtime.ts";
import { scriptArgs, sibling } from "./_args.ts";

const { values } = parseArgs({
  args: scriptArgs(),
  options: {
    rounds: { type: "string", default: "25" },
    seconds: { type: "string", default: "0.6" },
    concurrency: { type: "string", default: "64" },
    workers: { type: "string", default: "2" },
  },
});
const rounds = Number(values.rounds);
const seconds = Number(values.seconds);
const concurrency = Number(values.concurrency);
const count = Number(values.workers);

const watchdog = setTimeout(() => {
  console.error("metrics cost bench: watchdog fired");
  process.exit(3);
}, (rounds * 4 * (seconds + 1) + 60) * 1000);

/** prom-client's figures, the same as ours: outcome counter, three histograms in seconds. */
function promClientRecorder(): (createdAt: number, now: number) => void {
  const registry = new client.Registry();
  const buckets = [
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
  ];
  const requests = new client.Counter({
    name: "gibbs_requests_total",
    help: "requests",
    labelNames: ["service", "outcome"],
    registers: [registry],
  });
  const histogram = (name: string) =>
    new client.Histogram({
      name,
      help: name,
      labelNames: ["service"],
      buckets,
      registers: [registry],
    }).labels("default");
  const ok = requests.labels("default", "ok");
  const wait = histogram("gibbs_request_queue_wait_seconds");
  const service = histogram("gibbs_request_service_seconds");
  const duration = histogram("gibbs_request_duration_seconds");
  return (createdAt, now) => {
    const s = (now - createdAt) / 1000;
    ok.inc();
    wait.observe(0);
    service.observe(s);
    duration.observe(s);
  };
}

/** Nanoseconds per call of `f`, run `n` times after a warm-up. */
function nsPerCall(n: number, f: (i: number) => void): number {
  for (let i = 0; i < n / 10; i++) f(i);
  const t0 = performance.now();
  for (let i = 0; i < n; i++) f(i);
  return ((performance.now() - t0) * 1e6) / n;
}

/** The metrics hook alone: what the hub's settle path adds per request, ours and prom-client's. */
function hookCost(): { ours: number; promClient: number } {
  // On the answer path the hub hands the observer the time its message was read (a field read,
  // as here); prom-client's caller must read the clock itself.
  let messageNow = 0;
  const observer = new HubObserver({
    metrics: true,
    now: () => messageNow,
    overflow: "reject-new",
  });
  const request = { reqId: "r", service: "default", createdAt: 0, sentAt: 0, sentTo: [{}] };
  const ok = { ok: true as const, value: 1 };
  const record = promClientRecorder();
  const n = 2_000_000;
  const ours = nsPerCall(n, (i) => {
    request.createdAt = i * 0.001;
    request.sentAt = i * 0.001 + 0.05;
    messageNow = i * 0.001 + 0.2;
    observer.settled(request, ok);
  });
  const promClient = nsPerCall(n, (i) => record(i * 0.001, runtime.now()));
  return { ours, promClient };
}

type Config = "on" | "off" | "prom-client" | "off again";
const configs: Config[] = ["on", "off", "prom-client", "off again"];

const hub = new Hub({ endpoint: "tcp://127.0.0.1:0", respBufferSize: 100_000 });
let workers: WorkerProcesses | undefined;
try {
  const endpoint = await hub.ready;
  workers = spawnWorkers(sibling("./models.ts", import.meta.url), {
    count,
    endpoint,
    quiet: true,
  });
  while (hub.workers < count) await new Promise((r) => setTimeout(r, 10));
  const promClient = promClientRecorder();

  /**
   * Requests/s through the hub in mode `config` for `ms`, `concurrency` in flight, and this
   * process's CPU time per request in µs (the hub and its caller: what metrics add to).
   */
  const drive = async (config: Config, ms: number): Promise<[number, number]> => {
    hub.metricsEnabled = config === "on";
    const record = config === "prom-client" ? promClient : undefined;
    let done = 0;
    const deadline = performance.now() + ms;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await Promise.all(Array.from({ length: concurrency }, async (_, lane) => {
      while (performance.now() < deadline) {
        const start = performance.now();
        const r = await hub.request(lane, done);
        if (typeof r !== "number") throw new Error(`bad result ${r}`);
        if (record) record(start, performance.now());
        done++;
      }
    }));
    const elapsed = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    return [done / (elapsed / 1000), (cpu.user + cpu.system) / done];
  };

  for (const config of configs) await drive(config, 500); // warm-up: JIT, prefetch "auto"
  const rates: Record<Config, number[]> = { on: [], off: [], "prom-client": [], "off again": [] };
  const cpus: Record<Config, number[]> = { on: [], off: [], "prom-client": [], "off again": [] };
  for (let round = 0; round < rounds; round++) {
    for (let k = 0; k < configs.length; k++) {
      const config = configs[(round + k) % configs.length];
      const [rate, cpu] = await drive(config, seconds * 1000);
      rates[config].push(rate);
      cpus[config].push(cpu);
    }
  }
  const median = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length % 2 ? s[(s.length - 1) >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  };
  const on = median(rates.on);
  const off = median(rates.off);
  const prom = median(rates["prom-client"]);
  const paired = (xs: number[]) => median(xs.map((x, i) => 1 - x / rates.off[i]));
  const pairedCpu = (xs: number[]) => median(xs.map((x, i) => x / cpus.off[i] - 1));
  const pct = (x: number) => Number((100 * x).toFixed(2));
  const hook = hookCost();
  const cpuOff = median(cpus.off) * 1000; // ns per request
  console.log(JSON.stringify({
    name: "gibbs (ours)",
    test: "metrics cost",
    runtime: typeof (globalThis as { Deno?: unknown }).Deno === "undefined" ? "node" : "deno",
    rounds,
    seconds,
    concurrency,
    workers: count,
    req_per_s_off: Math.round(off),
    req_per_s_on: Math.round(on),
    req_per_s_prom_client: Math.round(prom),
    cost_on_pct: pct(1 - on / off),
    cost_on_paired_pct: pct(paired(rates.on)),
    cost_prom_client_pct: pct(1 - prom / off),
    cost_prom_client_paired_pct: pct(paired(rates["prom-client"])),
    noise_floor_paired_pct: pct(paired(rates["off again"])),
    cpu_us_per_req_off: Number(median(cpus.off).toFixed(3)),
    cpu_us_per_req_on: Number(median(cpus.on).toFixed(3)),
    cpu_us_per_req_prom_client: Number(median(cpus["prom-client"]).toFixed(3)),
    cpu_cost_on_pct: pct(median(cpus.on) / median(cpus.off) - 1),
    cpu_cost_prom_client_pct: pct(median(cpus["prom-client"]) / median(cpus.off) - 1),
    cpu_cost_on_paired_pct: pct(pairedCpu(cpus.on)),
    cpu_cost_prom_client_paired_pct: pct(pairedCpu(cpus["prom-client"])),
    cpu_noise_floor_paired_pct: pct(pairedCpu(cpus["off again"])),
    ns_per_req_hook_ours: Number(hook.ours.toFixed(1)),
    ns_per_req_hook_prom_client: Number(hook.promClient.toFixed(1)),
    hook_cost_ours_pct: pct(hook.ours / cpuOff),
    hook_cost_prom_client_pct: pct(hook.promClient / cpuOff),
    rounds_on: rates.on.map(Math.round),
    rounds_off: rates.off.map(Math.round),
    rounds_prom_client: rates["prom-client"].map(Math.round),
    rounds_off_again: rates["off again"].map(Math.round),
  }));
} finally {
  await workers?.stop();
  await hub.close();
  clearTimeout(watchdog);
}
