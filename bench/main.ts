/**
 * `deno task bench`: every benchmark of the project, each beside its anchor measured in the
 * same run on the same machine, printed as figures and ratios. It installs what it needs on a
 * fresh clone (zeromq.js for the tests' peers, the npm build for the Node figures).
 *
 *   deno task bench [--runs 3] [--only socket,ws,hub,curve,worker,serving,pool,metrics,scale,chaos]
 *                   [--no-node] [--json F]
 *
 * Each socket, ws, hub and CURVE figure is the median of that figure over `--runs` runs (p50
 * and p99 are each their own median); a run that fails is reported with its reason and the
 * figure says how many runs it rests on. The scale and chaos benchmarks run once (10 s and more
 * each), and so do the worker runtime (bench/worker_bench.ts: handler threads, concurrency, the
 * thread hop), serving (bench/serving_bench.ts: batching, streams, cancellation), shared pool
 * (bench/shared_pool_bench.ts: 1 to 3 hubs in front of the same workers, beside one hub alone)
 * and metrics-cost (bench/metrics_cost_bench.ts: the hub with its counting on and off, beside
 * prom-client) benchmarks, each its own anchor.
 *
 * Ours runs twice: from source under Deno, and as the npm package's build under Node
 * (`npm/bench/*.js`, built by scripts/build_npm.ts first when missing or older than the sources;
 * `--no-node` leaves Node out).
 *
 * Anchors: raw loopback TCP with no framing (the floor of any round trip, bench/tcp_floor.ts) and
 * zeromq.js 6 (native libzmq) under Node for the socket layer; jszmq (ZeroMQ over WebSocket)
 * talking to jszmq under Node for the ws transport, beside our own tcp figures; the strict gibbs
 * 0.3 peer on pyzmq (bench/gibbs_py_bench.py) for the hub; libzmq's CURVE through pyzmq
 * (bench/curve_pyzmq_bench.py) for CURVE, which is also shown against our own NULL.
 *
 * @module
 */

import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

type Result = Record<string, number | string | null>;

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));
const { values } = parseArgs({
  args: (globalThis as unknown as { Deno: { args: string[] } }).Deno.args,
  options: {
    runs: { type: "string", default: "3" },
    only: { type: "string" },
    json: { type: "string" },
    "no-node": { type: "boolean", default: false },
  },
});
const runs = Number(values.runs);
const SECTIONS = "socket,ws,hub,curve,worker,serving,pool,metrics,scale,chaos";
const only = new Set((values.only ?? SECTIONS).split(","));
for (const name of only) {
  if (!SECTIONS.split(",").includes(name)) {
    console.error(`bench: unknown section ${JSON.stringify(name)} (sections: ${SECTIONS})`);
    process.exit(2);
  }
}
const deno = process.execPath;
const root = here("../");
/** The npm build's copy of the benchmark scripts, run by Node. */
const nodeBench = (name: string) => `${root}npm/bench/${name}`;

/** Newest modification time (ms) of the TypeScript files the npm build compiles under `path`. */
function newest(path: string): number {
  const stat = statSync(path);
  if (!stat.isDirectory()) {
    return path.endsWith(".ts") && path !== here("./main.ts") ? stat.mtimeMs : 0;
  }
  let latest = 0;
  for (const entry of readdirSync(path)) {
    if (entry !== "node_modules") latest = Math.max(latest, newest(`${path}/${entry}`));
  }
  return latest;
}

/**
 * Installs zeromq.js for the anchors (into tests/peers, shared with the tests) and says whether
 * pyzmq is there, through the tests' own setup script.
 */
function preparePeers(): void {
  const setup = spawnSync(deno, ["run", "-A", `${root}scripts/test_setup.ts`], {
    stdio: "inherit",
    env: { ...process.env, CI: "false" },
  });
  if (setup.status !== 0) console.error("  peer setup failed: some anchors will read n/a");
}

/**
 * Makes sure `npm/bench` holds a build of the current sources, with the package's dependencies
 * installed. Returns the Node version, or null (with the reason printed) if Node cannot run.
 */
function prepareNode(): string | null {
  const version = spawnSync("node", ["--version"], { encoding: "utf8" });
  if (version.status !== 0) {
    console.error("  node not found: no Node figures");
    return null;
  }
  const built = nodeBench("socket_bench.js");
  const sources = ["mod.ts", "src", "bench", "scripts/build_npm.ts"].map((p) => newest(root + p));
  if (!existsSync(built) || statSync(built).mtimeMs < Math.max(...sources)) {
    console.log("building the npm package for the Node figures (scripts/build_npm.ts)...");
    const build = spawnSync(deno, ["run", "-A", `${root}scripts/build_npm.ts`], {
      stdio: "inherit",
    });
    if (build.status !== 0) return null;
  }
  if (!existsSync(`${root}npm/node_modules/msgpackr`)) {
    const install = spawnSync("npm", ["install", "--no-audit", "--no-fund", "--loglevel=error"], {
      cwd: `${root}npm`,
      stdio: "inherit",
    });
    if (install.status !== 0) return null;
  }
  return version.stdout.trim();
}

preparePeers();
const nodeVersion = values["no-node"] ? null : prepareNode();
const withNode = nodeVersion !== null;

/** Every failed run, with its reason, for the report's end. */
const failures: string[] = [];

/** Runs a benchmark once; returns the JSON lines it printed, or null (reported) on failure. */
function runOnce(label: string, command: string, args: string[], ms = 60_000): Result[] | null {
  const child = spawnSync(command, args, { encoding: "utf8", timeout: ms });
  const lines = (child.stdout ?? "").split("\n").filter((l) => l.startsWith("{"));
  if (child.status !== 0 || lines.length === 0) {
    const why = child.error ? String(child.error) : `exit ${child.status}`;
    const tail = (child.stderr ?? "").trim().split("\n").slice(-3).join(" | ");
    failures.push(`${label}: ${why}${tail ? ` — ${tail}` : ""}`);
    console.error(`  ${label}: failed (${why})`);
    return null;
  }
  return lines.map((l) => JSON.parse(l));
}

/** Figures measured `runs` times: each key's median over the runs that succeeded. */
interface Measured {
  /** Median of each numeric key over the successful runs. */
  median: Record<string, number | null>;
  ok: number;
  tried: number;
  runs: Result[];
}

function medianOf(xs: number[]): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

function measure(label: string, command: string, args: string[], tried = runs): Measured {
  const ok: Result[] = [];
  for (let i = 0; i < tried; i++) {
    const lines = runOnce(label, command, args);
    if (lines) ok.push(lines[lines.length - 1]);
  }
  const keys = new Set(ok.flatMap((r) => Object.keys(r)));
  const median: Record<string, number | null> = {};
  for (const key of keys) {
    const xs = ok.map((r) => r[key]).filter((x): x is number => typeof x === "number");
    median[key] = medianOf(xs);
  }
  return { median, ok: ok.length, tried, runs: ok };
}

const NONE: Measured = { median: {}, ok: 0, tried: 0, runs: [] };
const rows: string[][] = [];
const notes: string[] = [];
const all: Record<string, unknown> = {};
const fmt = (x: unknown, digits = 0) =>
  typeof x === "number"
    ? x.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits })
    : "n/a";
const ratioOf = (a: unknown, b: unknown) =>
  typeof a === "number" && typeof b === "number" && b > 0 ? a / b : null;
const ratio = (a: unknown, b: unknown) => {
  const r = ratioOf(a, b);
  return r === null ? "n/a" : `${r.toFixed(2)}x`;
};

/** A figure, marked with how many runs it rests on when some failed. */
function cell(m: Measured, key: string, digits: number): string {
  const text = fmt(m.median[key], digits);
  return m.tried > 0 && m.ok < m.tried && m.ok > 0 ? `${text} (${m.ok}/${m.tried} runs)` : text;
}

/** A table's header: ours on Deno (and Node), the anchor, the ratios to it, the target. */
function header(title: string, anchor: string) {
  rows.push(
    withNode
      ? [title, "ours Deno", "ours Node", anchor, "Deno ratio", "Node ratio", "target"]
      : [title, "ours", anchor, "ratio", "target"],
  );
}

function row(
  what: string,
  [ours, onNode, anchor]: Measured[],
  key: string,
  digits: number,
  target: string,
  anchorKey = key,
) {
  const a = anchor.median[anchorKey];
  rows.push(
    withNode
      ? [
        what,
        cell(ours, key, digits),
        cell(onNode, key, digits),
        anchor === NONE ? "" : cell(anchor, anchorKey, digits),
        anchor === NONE ? "" : ratio(ours.median[key], a),
        anchor === NONE ? "" : ratio(onNode.median[key], a),
        target,
      ]
      : [
        what,
        cell(ours, key, digits),
        anchor === NONE ? "" : cell(anchor, anchorKey, digits),
        anchor === NONE ? "" : ratio(ours.median[key], a),
        target,
      ],
  );
}

console.log(
  `gibbs benchmarks — ${new Date().toISOString().slice(0, 10)}, ${cpus().length} cores, ` +
    `Deno ${
      (globalThis as unknown as { Deno: { version: { deno: string } } }).Deno.version.deno
    }, ` +
    `${withNode ? `Node ${nodeVersion.replace(/^v/, "")}, ` : ""}median of ${runs} runs`,
);

/** Ours under Deno, ours under Node (the npm build), for a script of bench/. */
function ours(label: string, script: string, args: string[]): Measured[] {
  return [
    measure(`ours ${label}`, deno, ["run", "-A", here(`./${script}.ts`), ...args]),
    withNode
      ? measure(`ours on Node ${label}`, "node", [nodeBench(`${script}.js`), ...args])
      : NONE,
  ];
}

/** Our NULL figures, when the socket and hub sections ran: the CURVE section compares to them. */
let nullSockets: { t64: Measured[]; t1m: Measured[] } | undefined;
let nullHub: Measured[] | undefined;

if (only.has("socket")) {
  console.log(
    `running socket benchmarks (ours under Deno${withNode ? " and Node" : ""}, ` +
      "zeromq.js under Node, raw TCP under both)...",
  );
  const theirs = (role: string, size: string) =>
    measure(`zeromq.js ${role} ${size}`, "node", [
      here("./zeromqjs_bench.mjs"),
      role,
      "--size",
      size,
    ]);
  const all3 = (role: string, size: string) => [
    ...ours(`${role} ${size}`, "socket_bench", [role, "--size", size]),
    theirs(role, size),
  ];
  const t64 = all3("throughput", "64");
  // The batch API (trySend → consume) beside the zeromq.js-shaped one (await send → for await).
  const b64 = ours("throughput 64 batch", "socket_bench", [
    "throughput",
    "--size",
    "64",
    "--batch",
  ]);
  const t1m = all3("throughput", "1MiB");
  const rtt = all3("rtt", "64");
  const floor = ours("raw tcp rtt 64", "tcp_floor", ["--size", "64"]);
  Object.assign(all, { socket: { t64, b64, t1m, rtt, floor } });
  nullSockets = { t64, t1m };
  header("socket: DEALER -> ROUTER, 2 processes", "zeromq.js");
  row("64 B messages/s", t64, "msg_per_s", 0, ">= 1,000,000 and >= 3x");
  row("1 MiB messages, MB/s", t1m, "mb_per_s", 0, ">= 1x");
  row("ping-pong RTT p50, us", rtt, "p50_us", 1, "<= 0.5x");
  row("ping-pong RTT p99, us", rtt, "p99_us", 1, "");
  row("  raw TCP, no framing: RTT p50, us", [...floor, NONE], "p50_us", 1, "(the floor)");
  row("  raw TCP, no framing: RTT p99, us", [...floor, NONE], "p99_us", 1, "");
  const over = (m: Measured, f: Measured) => ratio(m.median.p50_us, f.median.p50_us);
  notes.push(
    `socket RTT p50 over the raw TCP floor: ours ${over(rtt[0], floor[0])} of Deno's` +
      (withNode
        ? `, ours on Node ${over(rtt[1], floor[1])} and zeromq.js ${over(rtt[2], floor[1])} ` +
          "of Node's"
        : `; zeromq.js (under Node) ${over(rtt[2], floor[0])} of Deno's`),
  );

  // The native ceiling: libzmq's C API in the same roles and counts (bench/libzmq_anchor.ts
  // builds bench/libzmq_bench.c, installing libzmq3-dev if need be, or says why it cannot).
  console.log("running the libzmq (C) anchor...");
  const built = runOnce("libzmq (C) build", deno, [
    "run",
    "-A",
    here("./libzmq_anchor.ts"),
    "build",
  ]);
  const info = built?.[built.length - 1];
  const binary = typeof info?.binary === "string" ? info.binary : null;
  if (binary === null) console.error(`  libzmq (C): skipped (${info?.skipped ?? "no build"})`);
  const c = (role: string, size: string) =>
    binary === null ? NONE : measure(`libzmq C ${role} ${size}`, binary, [role, "--size", size]);
  const c64 = c("throughput", "64");
  const c1m = c("throughput", "1MiB");
  const crtt = c("rtt", "64");
  Object.assign(all, { libzmq_c: { c64, c1m, crtt } });
  header("socket against libzmq in C", "libzmq C");
  row("64 B messages/s", [t64[0], t64[1], c64], "msg_per_s", 0, ">= 0.5x Deno, >= 1x Node");
  row("  the same, trySend -> consume", [b64[0], b64[1], c64], "msg_per_s", 0, "");
  row("1 MiB messages, MB/s", [t1m[0], t1m[1], c1m], "mb_per_s", 0, ">= 1x");
  row("ping-pong RTT p50, us", [rtt[0], rtt[1], crtt], "p50_us", 1, "<= 0.8x");
  row("ping-pong RTT p99, us", [rtt[0], rtt[1], crtt], "p99_us", 1, "");
}

if (only.has("ws")) {
  console.log(
    `running ws benchmarks (ours under Deno${withNode ? " and Node" : ""}, over ws and tcp; ` +
      "jszmq to jszmq under Node)...",
  );
  const socket = (transport: string, role: string, size: string) =>
    ours(`${transport} ${role} ${size}`, "socket_bench", [
      role,
      "--size",
      size,
      "--transport",
      transport,
    ]);
  const jszmq = (role: string, size: string) =>
    measure(`jszmq ${role} ${size}`, "node", [here("./jszmq_bench.mjs"), role, "--size", size]);
  const w64 = [...socket("ws", "throughput", "64"), jszmq("throughput", "64")];
  const w1m = [...socket("ws", "throughput", "1MiB"), jszmq("throughput", "1MiB")];
  const wrtt = [...socket("ws", "rtt", "64"), jszmq("rtt", "64")];
  // Our tcp figures of this same section, for what WebSocket framing costs us.
  const t64 = socket("tcp", "throughput", "64");
  const t1m = socket("tcp", "throughput", "1MiB");
  Object.assign(all, { ws: { w64, w1m, wrtt, t64, t1m } });
  header("ws: DEALER -> ROUTER over ws://, 2 processes", "jszmq");
  row("64 B messages/s", w64, "msg_per_s", 0, ">= 3x");
  row("1 MiB messages, MB/s", w1m, "mb_per_s", 0, ">= 1x");
  row("ping-pong RTT p50, us", wrtt, "p50_us", 1, "");
  row("ping-pong RTT p99, us", wrtt, "p99_us", 1, "");
  // ws against our own tcp, Deno to Deno and Node to Node: the ratio columns are ws / tcp.
  const vsTcp = (what: string, ws: Measured[], tcp: Measured[], key: string) => {
    rows.push(
      withNode
        ? [
          what,
          cell(ws[0], key, 0),
          cell(ws[1], key, 0),
          cell(tcp[0], key, 0),
          ratio(ws[0].median[key], tcp[0].median[key]),
          ratio(ws[1].median[key], tcp[1].median[key]),
          `tcp Node ${cell(tcp[1], key, 0)}`,
        ]
        : [
          what,
          cell(ws[0], key, 0),
          cell(tcp[0], key, 0),
          ratio(ws[0].median[key], tcp[0].median[key]),
          "",
        ],
    );
  };
  header("ws vs our tcp (ratio: ws / tcp)", "ours tcp Deno");
  vsTcp("64 B messages/s", w64, t64, "msg_per_s");
  vsTcp("1 MiB messages, MB/s", w1m, t1m, "mb_per_s");
}

if (only.has("hub")) {
  console.log(
    `running hub benchmarks (ours under Deno${withNode ? " and Node" : ""}, ` +
      "the strict gibbs 0.3 peer on pyzmq)...",
  );
  const hub = (prefetch: string, threads = "0") =>
    ours(`hub prefetch ${prefetch} threads ${threads}`, "hub_bench", [
      "--prefetch",
      prefetch,
      "--threads",
      threads,
    ]);
  const auto = hub("auto");
  const one = hub("1");
  const threaded = hub("auto", "1");
  const py = measure("python gibbs 0.3", "/usr/bin/python3", [here("./gibbs_py_bench.py")]);
  Object.assign(all, { hub: { auto, one, threaded, py } });
  nullHub = auto;
  header("hub: 2 workers, trivial model", "Python gibbs");
  row('requests/s, 64 in flight (prefetch "auto")', [...auto, py], "req_per_s", 0, ">= 10x");
  row("  the same with gibbs's rule (prefetch 1)", [...one, py], "req_per_s", 0, "");
  row("  the same on a handler thread (threads: 1)", [...threaded, py], "req_per_s", 0, "");
  row("one at a time, p50 us", [...auto, py], "p50_us", 1, "");
  row("one at a time, p99 us", [...auto, py], "p99_us", 1, "");
  row("  on a handler thread, p50 us", [...threaded, py], "p50_us", 1, "");
  const r = (m: Measured) => ratio(m.median.req_per_s, py.median.req_per_s);
  notes.push(
    `hub headline ${r(auto[0])}${withNode ? ` (Node ${r(auto[1])})` : ""} rests on prefetch ` +
      `"auto" (requests wait in a fast worker's socket); like for like, gibbs's rule (prefetch ` +
      `1): ${r(one[0])}${withNode ? ` (Node ${r(one[1])})` : ""}. Both with the handler on the ` +
      `connection's thread (threads: 0, as advised for fast handlers); on a handler thread, the ` +
      `default for a module: ${r(threaded[0])}${withNode ? ` (Node ${r(threaded[1])})` : ""}`,
  );
  const ke = py.median.strict_key_errors;
  const answered = py.median.strict_answered;
  if (typeof ke === "number" && typeof answered === "number") {
    notes.push(
      `Python anchor: gibbs 0.3's dispatch with its KeyError race fixed; gibbs as it is, 64 in ` +
        `flight: ${fmt(py.median.strict_req_per_s)} requests/s answered, and ${fmt(ke)} ` +
        `KeyErrors for ${fmt(answered)} answers (${((100 * ke) / (ke + answered)).toFixed(0)} % ` +
        `of attempts), ${fmt(py.median.strict_hung)} requests left waiting`,
    );
  }
}

if (only.has("curve")) {
  console.log(
    `running CURVE benchmarks (ours under Deno${withNode ? " and Node" : ""}, ` +
      "libzmq's CURVE through pyzmq)...",
  );
  const throughput = (size: string, curve: boolean) =>
    ours(`throughput ${size}${curve ? " CURVE" : ""}`, "socket_bench", [
      "throughput",
      "--size",
      size,
      ...(curve ? ["--curve"] : []),
    ]);
  const pyzmq = (size: string) =>
    measure(`pyzmq CURVE ${size}`, "/usr/bin/python3", [
      here("./curve_pyzmq_bench.py"),
      "--size",
      size,
    ]);
  const c64 = throughput("64", true);
  const c1m = throughput("1MiB", true);
  const py64 = pyzmq("64");
  const py1m = pyzmq("1048576");
  // Our NULL beside it: from the socket and hub sections when they ran, else measured here.
  const n64 = nullSockets?.t64 ?? throughput("64", false);
  const n1m = nullSockets?.t1m ?? throughput("1MiB", false);
  const hc = ours("hub CURVE", "hub_bench", ["--curve"]);
  const hn = nullHub ?? ours("hub", "hub_bench", []);
  Object.assign(all, { curve: { c64, c1m, py64, py1m, hc } });
  header("CURVE: DEALER -> ROUTER, 2 processes", "libzmq CURVE");
  row("64 B messages/s", [...c64, py64], "msg_per_s", 0, ">= 1x");
  row("1 MiB messages, MB/s", [...c1m, py1m], "mb_per_s", 0, ">= 0.5x");
  header("CURVE against our NULL", "our NULL, Deno");
  row("64 B messages/s", [...c64, n64[0]], "msg_per_s", 0, "");
  row("1 MiB messages, MB/s", [...c1m, n1m[0]], "mb_per_s", 0, "");
  row("hub requests/s, 64 in flight", [...hc, hn[0]], "req_per_s", 0, "");
  row("hub one at a time, p50 us", [...hc, hn[0]], "p50_us", 1, "");
}

/** Prints one-run benchmarks as `name: key value, ...` lines. */
function oneRun(title: string, label: string, args: string[], ms: number): Result[] {
  console.log(`running ${title}...`);
  const lines = runOnce(label, deno, ["run", "-A", ...args], ms) ?? [];
  return lines;
}

const extra: string[] = [];
if (only.has("scale")) {
  // 100 workers, then 1,000: what one more worker costs the hub when idle.
  const idle: Result[] = [];
  for (const workers of ["100", "1000"]) {
    const lines = oneRun(`the scale benchmark (${workers} workers; one run)`, "scale", [
      here("./scale_bench.ts"),
      "--workers",
      workers,
      ...(workers === "100" ? ["--queued", "1000"] : []),
    ], 180_000);
    all[`scale_${workers}`] = lines;
    for (const l of lines) extra.push(`scale ${workers} workers, ${l.test}: ${describe(l)}`);
    idle.push(lines.find((l) => l.test === "idle") ?? {});
  }
  const [small, big] = idle;
  const per = (key: string) => {
    const a = small[key];
    const b = big[key];
    return typeof a === "number" && typeof b === "number" ? (b - a) / 900 : null;
  };
  const cpu = per("hub_cpu_percent");
  const rss = per("hub_rss_mb");
  if (cpu !== null && rss !== null) {
    extra.push(
      `scale, idle, per worker (1,000 vs 100 workers, 1 s heartbeats): ` +
        `${(cpu * 10_000).toFixed(0)} us of hub CPU per second and ${(rss * 1000).toFixed(0)} KB`,
    );
  }
}
if (only.has("worker")) {
  for (const name of ["cpu", "io", "hop"]) {
    const lines = oneRun(`the worker runtime benchmark (${name}; one run)`, `worker ${name}`, [
      here("./worker_bench.ts"),
      "--case",
      name,
    ], 180_000);
    all[`worker_${name}`] = lines;
    for (const l of lines) extra.push(`worker ${name}, ${l.config}: ${describe(l, ["config"])}`);
  }
}
if (only.has("serving")) {
  for (const name of ["batch", "stream", "cancel"]) {
    const lines = oneRun(`the serving benchmark (${name}; one run)`, `serving ${name}`, [
      here("./serving_bench.ts"),
      "--case",
      name,
    ], 180_000);
    all[`serving_${name}`] = lines;
    for (const l of lines) extra.push(`${l.test}: ${describe(l)}`);
  }
}
if (only.has("pool")) {
  for (const model of ["wait", "add"]) {
    const lines = oneRun(`the shared pool benchmark (${model} model; one run)`, `pool ${model}`, [
      here("./shared_pool_bench.ts"),
      "--model",
      model,
    ], 180_000);
    all[`pool_${model}`] = lines;
    for (const l of lines) extra.push(`shared pool, ${model} model: ${describe(l, ["model"])}`);
  }
}
if (only.has("metrics")) {
  const lines = oneRun("the metrics cost benchmark (one run)", "metrics", [
    here("./metrics_cost_bench.ts"),
  ], 300_000);
  all.metrics = lines;
  for (const l of lines) extra.push(`metrics cost: ${describe(l)}`);
}
if (only.has("chaos")) {
  const lines = oneRun("the chaos benchmark (10 s with kills, 10 s without; one run)", "chaos", [
    here("./chaos_bench.ts"),
  ], 120_000);
  all.chaos = lines;
  for (const l of lines) extra.push(`${l.test}: ${describe(l)}`);
}

function describe(r: Result, leave: string[] = []): string {
  return Object.entries(r).filter(([k]) => k !== "test" && k !== "name" && !leave.includes(k))
    .map(([k, v]) => `${k} ${typeof v === "number" ? fmt(v, Number.isInteger(v) ? 0 : 2) : v}`)
    .join(", ");
}

const widths = (rows[0] ?? []).map((_, i) => Math.max(...rows.map((r) => r[i].length)));
console.log("");
for (const r of rows) {
  if (r[1].startsWith("ours")) console.log("");
  console.log(
    r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join("  "),
  );
}
if (notes.length > 0 || extra.length > 0) console.log("");
for (const n of notes) console.log(`- ${n}`);
for (const e of extra) console.log(`- ${e}`);
if (failures.length > 0) {
  console.log(`\n${failures.length} failed runs (left out of the medians):`);
  for (const f of failures) console.log(`  - ${f}`);
}
if (values.json) writeFileSync(values.json, JSON.stringify({ ...all, failures }, null, 2));
