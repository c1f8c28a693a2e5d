/**
 * Application replicas in front of one pool of workers: total round trips/s with 1, 2 and 3
 * hubs (each in a process of its own) in front of the same worker processes, and how evenly the
 * hubs are served. The anchor, in the same run: the same workers serving one hub alone (each
 * connected to that hub only).
 *
 *   deno run -A bench/shared_pool_bench.ts [--seconds 3] [--in-flight 32] [--workers 4]
 *                                          [--model add|wait] [--wait-ms 5] [--concurrency N]
 *
 * `add` is the trivial model (what the dispatch and the sharing cost); `wait` an I/O-bound one
 * that waits `--wait-ms` per request, `--concurrency` at once per worker (default 4), as a
 * model server would. Prints one JSON line per measurement: `req_per_s` in all, `per_hub`,
 * `fairness` (slowest hub / fastest hub) and `jain` (Jain's index: 1 when all hubs get the same).
 *
 * @module
 */

import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Hub, spawnWorkers, type WorkerProcesses } from "../mod.ts";
import { sameRuntime, scriptArgs, sibling } from "./_args.ts";

const { values } = parseArgs({
  args: scriptArgs(),
  options: {
    role: { type: "string", default: "main" },
    seconds: { type: "string", default: "3" },
    "in-flight": { type: "string", default: "32" },
    workers: { type: "string", default: "4" },
    model: { type: "string", default: "add" },
    "wait-ms": { type: "string", default: "5" },
    concurrency: { type: "string" },
  },
});
const out = (value: unknown) => process.stdout.write(JSON.stringify(value) + "\n");

/** A hub process: binds, reports its workers, runs load when told (JSON lines on stdin). */
async function hubRole(): Promise<void> {
  const hub = new Hub({ endpoint: "tcp://127.0.0.1:0", respBufferSize: 100_000 });
  out({ bound: await hub.ready });
  let workers = -1;
  const watch = setInterval(() => {
    if (hub.workers !== workers) out({ workers: workers = hub.workers });
  }, 5);
  const model = values.model;
  const waitMs = Number(values["wait-ms"]);
  /** Keeps `inFlight` requests going from `at` (wall clock) for `seconds`; counts answers. */
  const load = async (at: number, seconds: number, inFlight: number) => {
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, at - Date.now())));
    const until = performance.now() + seconds * 1000;
    let answered = 0;
    let wrong = 0;
    let x = 0;
    await Promise.all(Array.from({ length: inFlight }, async () => {
      while (performance.now() < until) {
        const i = x++;
        const result = model === "wait" ? await hub.request(waitMs) : await hub.request(i, 1);
        if (result !== (model === "wait" ? waitMs : i + 1)) wrong++;
        answered++;
      }
    }));
    out({ answered, wrong, redispatched: hub.stats().redispatched });
  };
  let buffered = "";
  process.stdin.setEncoding("utf8");
  process.stdin.on("data", (chunk: string) => {
    buffered += chunk;
    let newline: number;
    while ((newline = buffered.indexOf("\n")) >= 0) {
      const command = JSON.parse(buffered.slice(0, newline));
      buffered = buffered.slice(newline + 1);
      if (command.op === "load") load(command.at, command.seconds, command.inFlight);
    }
  });
  process.stdin.on("end", async () => {
    clearInterval(watch);
    await hub.close();
    process.exit(0);
  });
}

/** A hub process driven through its stdin and stdout. */
class HubProcess {
  readonly child = spawn(
    process.execPath,
    sameRuntime(fileURLToPath(import.meta.url), [
      "--role",
      "hub",
      "--model",
      values.model!,
      "--wait-ms",
      values["wait-ms"]!,
    ]),
    { stdio: ["pipe", "pipe", "inherit"] },
  );
  readonly lines: Record<string, unknown>[] = [];
  #waiters: (() => void)[] = [];

  constructor() {
    let buffered = "";
    this.child.stdout!.setEncoding("utf8");
    this.child.stdout!.on("data", (chunk: string) => {
      buffered += chunk;
      let newline: number;
      while ((newline = buffered.indexOf("\n")) >= 0) {
        this.lines.push(JSON.parse(buffered.slice(0, newline)));
        buffered = buffered.slice(newline + 1);
      }
      for (const wake of this.#waiters.splice(0)) wake();
    });
  }

  /** The first line from `from` on that `matches`. */
  async line(matches: (l: Record<string, unknown>) => boolean, from = 0) {
    while (true) {
      const found = this.lines.slice(from).find(matches);
      if (found !== undefined) return found;
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
  }

  async load(at: number, seconds: number, inFlight: number) {
    const from = this.lines.length;
    this.child.stdin!.write(JSON.stringify({ op: "load", at, seconds, inFlight }) + "\n");
    return await this.line((l) => typeof l.answered === "number", from);
  }

  async close(): Promise<void> {
    this.child.stdin!.end();
    await new Promise((resolve) => this.child.once("exit", resolve));
  }
}

async function main(): Promise<void> {
  const seconds = Number(values.seconds);
  const inFlight = Number(values["in-flight"]);
  const count = Number(values.workers);
  const model = values.model === "wait" ? "wait" : "add";
  const concurrency = Number(values.concurrency ?? (model === "wait" ? 4 : 1));
  const watchdog = setTimeout(() => {
    console.error("shared pool bench: watchdog fired after 180 s");
    process.exit(3);
  }, 180_000);
  const hubs = [new HubProcess(), new HubProcess(), new HubProcess()];
  const endpoints = await Promise.all(
    hubs.map(async (h) => (await h.line((l) => typeof l.bound === "string")).bound as string),
  );
  const spawnPool = (to: string[]): WorkerProcesses =>
    spawnWorkers(sibling("./models.ts", import.meta.url), {
      count,
      endpoints: to,
      concurrency,
      export: model === "wait" ? "wait" : undefined,
      quiet: true,
    });
  const allJoined = async (list: HubProcess[]) => {
    await Promise.all(list.map((h) => h.line((l) => l.workers === count)));
  };
  /** Loads `active` hubs at once (after a warm-up) and prints the figures. */
  const measure = async (active: HubProcess[], shared: boolean) => {
    await Promise.all(active.map((h) => h.load(Date.now() + 100, 0.5, inFlight)));
    const at = Date.now() + 200;
    const results = await Promise.all(active.map((h) => h.load(at, seconds, inFlight)));
    const perHub = results.map((r) => Math.round((r.answered as number) / seconds));
    const total = perHub.reduce((a, b) => a + b, 0);
    const squares = perHub.reduce((a, b) => a + b * b, 0);
    out({
      name: "gibbs (ours)",
      test: "shared_pool",
      model,
      hubs: active.length,
      workers: count,
      shared,
      in_flight_per_hub: inFlight,
      req_per_s: total,
      per_hub: perHub,
      fairness: Number((Math.min(...perHub) / Math.max(...perHub)).toFixed(3)),
      jain: Number(((total * total) / (perHub.length * squares)).toFixed(3)),
      wrong: results.reduce((a, r) => a + (r.wrong as number), 0),
      redispatched: results.reduce((a, r) => a + (r.redispatched as number), 0),
    });
  };
  try {
    // The anchor: workers that serve the first hub only.
    let pool = spawnPool([endpoints[0]]);
    await allJoined([hubs[0]]);
    await measure([hubs[0]], false);
    await pool.stop();
    await Promise.all(hubs.map((h) => h.line((l) => l.workers === 0)));
    // One pool serving all three hubs; 1, 2 and 3 of them busy.
    pool = spawnPool(endpoints);
    await allJoined(hubs);
    for (const n of [1, 2, 3]) await measure(hubs.slice(0, n), true);
    await pool.stop();
  } finally {
    await Promise.all(hubs.map((h) => h.close()));
    clearTimeout(watchdog);
  }
}

if (values.role === "hub") await hubRole();
else await main();
