/**
 * `deno task bench`: every benchmark of the project, each beside its anchor measured in the
 * same run on the same machine, printed as figures and ratios. Each figure is the median of
 * `--runs` runs (default 3).
 *
 *   deno task bench [--runs 3] [--only socket|hub|curve] [--no-node] [--json FILE]
 *
 * Ours runs twice: from source under Deno, and as the npm package's build under Node
 * (`npm/bench/*.js`, built by scripts/build_npm.ts first when missing or older than the sources;
 * `--no-node` leaves Node out).
 *
 * Anchors: zeromq.js 6 (native libzmq) under Node for the socket layer, a Python
 * implementation of the gibbs 0.3 protocol on pyzmq (bench/gibbs_py_bench.py) for the hub, and
 * libzmq's CURVE through pyzmq (bench/curve_pyzmq_bench.py) for CURVE, which is also shown
 * against our own NULL.
 *
 * @module
 */

import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
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

const nodeVersion = values["no-node"] ? null : prepareNode();
const withNode = nodeVersion !== null;

function run(label: string, command: string, args: string[]): Result | null {
  const child = spawnSync(command, args, { encoding: "utf8", timeout: 60_000 });
  const line = child.stdout?.trim().split("\n").filter((l) => l.startsWith("{")).pop();
  if (child.status !== 0 || !line) {
    console.error(`  ${label}: failed (${child.error ?? `exit ${child.status}`})`);
    if (child.stderr) console.error(child.stderr.trim().split("\n").slice(-5).join("\n"));
    return null;
  }
  return JSON.parse(line);
}

/** Runs a benchmark `runs` times and keeps the run with the median of `key`. */
function median(label: string, key: string, command: string, args: string[]): Result | null {
  const results: Result[] = [];
  for (let i = 0; i < runs; i++) {
    const r = run(label, command, args);
    if (r) results.push(r);
  }
  if (results.length === 0) return null;
  results.sort((a, b) => Number(a[key]) - Number(b[key]));
  return results[Math.floor(results.length / 2)];
}

const rows: string[][] = [];
const all: Record<string, Result | null> = {};
const fmt = (x: unknown, digits = 0) =>
  typeof x === "number"
    ? x.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits })
    : "n/a";
const ratio = (a: unknown, b: unknown) =>
  typeof a === "number" && typeof b === "number" && b > 0 ? `${(a / b).toFixed(2)}x` : "n/a";

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
  ours: unknown,
  onNode: unknown,
  anchor: unknown,
  digits: number,
  target: string,
) {
  rows.push(
    withNode
      ? [
        what,
        fmt(ours, digits),
        fmt(onNode, digits),
        fmt(anchor, digits),
        ratio(ours, anchor),
        ratio(onNode, anchor),
        target,
      ]
      : [what, fmt(ours, digits), fmt(anchor, digits), ratio(ours, anchor), target],
  );
}

console.log(
  `gibbs benchmarks — ${new Date().toISOString().slice(0, 10)}, ${cpus().length} cores, ` +
    `Deno ${
      (globalThis as unknown as { Deno: { version: { deno: string } } }).Deno.version.deno
    }, ` +
    `${withNode ? `Node ${nodeVersion.replace(/^v/, "")}, ` : ""}median of ${runs} runs`,
);

if (!values.only || values.only === "socket") {
  console.log(
    `running socket benchmarks (ours under Deno${withNode ? " and Node" : ""}, ` +
      "zeromq.js under Node)...",
  );
  const ours = (role: string, size: string, key: string) =>
    median(`ours ${role} ${size}`, key, deno, [
      "run",
      "-A",
      here("./socket_bench.ts"),
      role,
      "--size",
      size,
    ]);
  const onNode = (role: string, size: string, key: string) =>
    withNode
      ? median(`ours on Node ${role} ${size}`, key, "node", [
        nodeBench("socket_bench.js"),
        role,
        "--size",
        size,
      ])
      : null;
  const theirs = (role: string, size: string, key: string) =>
    median(`zeromq.js ${role} ${size}`, key, "node", [
      here("./zeromqjs_bench.mjs"),
      role,
      "--size",
      size,
    ]);
  // [ours on Deno, ours on Node, zeromq.js]
  const all3 = (role: string, size: string, key: string) => [
    ours(role, size, key),
    onNode(role, size, key),
    theirs(role, size, key),
  ];
  const t64 = all3("throughput", "64", "msg_per_s");
  const t1m = all3("throughput", "1MiB", "mb_per_s");
  const rtt = all3("rtt", "64", "p50_us");
  Object.assign(all, {
    ours_64: t64[0],
    node_64: t64[1],
    zeromqjs_64: t64[2],
    ours_1mib: t1m[0],
    node_1mib: t1m[1],
    zeromqjs_1mib: t1m[2],
    ours_rtt: rtt[0],
    node_rtt: rtt[1],
    zeromqjs_rtt: rtt[2],
  });
  header("socket: DEALER -> ROUTER, 2 processes", "zeromq.js");
  const line = (what: string, r: (Result | null)[], key: string, digits: number, target: string) =>
    row(what, r[0]?.[key], r[1]?.[key], r[2]?.[key], digits, target);
  line("64 B messages/s", t64, "msg_per_s", 0, ">= 1,000,000 and >= 3x");
  line("1 MiB messages, MB/s", t1m, "mb_per_s", 0, ">= 1x");
  line("ping-pong RTT p50, us", rtt, "p50_us", 1, "<= 0.5x");
  line("ping-pong RTT p99, us", rtt, "p99_us", 1, "");

  // The native ceiling: libzmq's C API in the same roles and counts (bench/libzmq_anchor.ts
  // builds bench/libzmq_bench.c, installing libzmq3-dev if need be, or says why it cannot).
  console.log("running the libzmq (C) anchor...");
  const built = run("libzmq (C) build", deno, ["run", "-A", here("./libzmq_anchor.ts"), "build"]);
  const binary = typeof built?.binary === "string" ? built.binary : null;
  if (binary === null) console.error(`  libzmq (C): skipped (${built?.skipped ?? "no build"})`);
  const c = (role: string, size: string, key: string) =>
    binary === null
      ? null
      : median(`libzmq C ${role} ${size}`, key, binary, [role, "--size", size]);
  const c64 = c("throughput", "64", "msg_per_s");
  const c1m = c("throughput", "1MiB", "mb_per_s");
  const crtt = c("rtt", "64", "p50_us");
  Object.assign(all, { libzmq_c_64: c64, libzmq_c_1mib: c1m, libzmq_c_rtt: crtt });
  header("socket against libzmq in C", "libzmq C");
  const vsC = (
    what: string,
    r: (Result | null)[],
    a: Result | null,
    key: string,
    d: number,
    t: string,
  ) => row(what, r[0]?.[key], r[1]?.[key], a?.[key], d, t);
  vsC("64 B messages/s", t64, c64, "msg_per_s", 0, ">= 0.5x Deno, >= 1x Node");
  vsC("1 MiB messages, MB/s", t1m, c1m, "mb_per_s", 0, ">= 1x");
  vsC("ping-pong RTT p50, us", rtt, crtt, "p50_us", 1, "<= 0.8x");
  vsC("ping-pong RTT p99, us", rtt, crtt, "p99_us", 1, "");
}

if (!values.only || values.only === "hub") {
  console.log(
    `running hub benchmarks (ours under Deno${withNode ? " and Node" : ""}, ` +
      "the Python gibbs protocol on pyzmq)...",
  );
  const hub = (prefetch: number | "auto") =>
    median(`ours hub prefetch ${prefetch}`, "req_per_s", deno, [
      "run",
      "-A",
      here("./hub_bench.ts"),
      "--prefetch",
      String(prefetch),
    ]);
  const hubOnNode = (prefetch: number | "auto") =>
    withNode
      ? median(`ours on Node hub prefetch ${prefetch}`, "req_per_s", "node", [
        nodeBench("hub_bench.js"),
        "--prefetch",
        String(prefetch),
      ])
      : null;
  const auto = hub("auto");
  const h1 = hub(1);
  const nAuto = hubOnNode("auto");
  const n1 = hubOnNode(1);
  const py = median("python gibbs protocol", "req_per_s", "/usr/bin/python3", [
    here("./gibbs_py_bench.py"),
  ]);
  Object.assign(all, {
    ours_hub: auto,
    ours_hub_prefetch1: h1,
    node_hub: nAuto,
    node_hub_prefetch1: n1,
    python_hub: py,
  });
  header("hub: 2 workers, trivial model", "Python");
  row("requests/s, 64 in flight", auto?.req_per_s, nAuto?.req_per_s, py?.req_per_s, 0, ">= 10x");
  row("  same, gibbs's rule (prefetch 1)", h1?.req_per_s, n1?.req_per_s, py?.req_per_s, 0, "");
  row("one at a time, p50 us", auto?.p50_us, nAuto?.p50_us, py?.p50_us, 1, "");
  row("one at a time, p99 us", auto?.p99_us, nAuto?.p99_us, py?.p99_us, 1, "");
}

if (!values.only || values.only === "curve") {
  console.log(
    `running CURVE benchmarks (ours under Deno${withNode ? " and Node" : ""}, ` +
      "libzmq's CURVE through pyzmq)...",
  );
  const socket = (size: string, key: string, curve: boolean) => {
    const flags = ["throughput", "--size", size, ...(curve ? ["--curve"] : [])];
    const label = `${size}${curve ? " CURVE" : ""}`;
    return [
      median(`ours ${label}`, key, deno, ["run", "-A", here("./socket_bench.ts"), ...flags]),
      withNode
        ? median(`ours on Node ${label}`, key, "node", [nodeBench("socket_bench.js"), ...flags])
        : null,
    ];
  };
  const pyzmq = (size: string, key: string) =>
    median(`pyzmq CURVE ${size}`, key, "/usr/bin/python3", [
      here("./curve_pyzmq_bench.py"),
      "--size",
      size,
    ]);
  const c64 = socket("64", "msg_per_s", true);
  const c1m = socket("1MiB", "mb_per_s", true);
  const py64 = pyzmq("64", "msg_per_s");
  const py1m = pyzmq("1048576", "mb_per_s");
  // Our NULL beside it: from the socket section when it ran, else measured here.
  const n64 = all.ours_64 !== undefined
    ? [all.ours_64, all.node_64]
    : socket("64", "msg_per_s", false);
  const n1m = all.ours_1mib !== undefined
    ? [all.ours_1mib, all.node_1mib]
    : socket("1MiB", "mb_per_s", false);
  const hub = (curve: boolean) => {
    const flags = curve ? ["--curve"] : [];
    const label = `hub${curve ? " CURVE" : ""}`;
    return [
      median(`ours ${label}`, "req_per_s", deno, ["run", "-A", here("./hub_bench.ts"), ...flags]),
      withNode
        ? median(`ours on Node ${label}`, "req_per_s", "node", [
          nodeBench("hub_bench.js"),
          ...flags,
        ])
        : null,
    ];
  };
  const hc = hub(true);
  const hn = all.ours_hub !== undefined ? [all.ours_hub, all.node_hub] : hub(false);
  Object.assign(all, {
    ours_curve_64: c64[0],
    node_curve_64: c64[1],
    pyzmq_curve_64: py64,
    ours_curve_1mib: c1m[0],
    node_curve_1mib: c1m[1],
    pyzmq_curve_1mib: py1m,
    ours_curve_hub: hc[0],
    node_curve_hub: hc[1],
  });
  header("CURVE: DEALER -> ROUTER, 2 processes", "libzmq CURVE");
  row("64 B messages/s", c64[0]?.msg_per_s, c64[1]?.msg_per_s, py64?.msg_per_s, 0, ">= 1x");
  row("1 MiB messages, MB/s", c1m[0]?.mb_per_s, c1m[1]?.mb_per_s, py1m?.mb_per_s, 0, ">= 0.5x");
  header("CURVE against our NULL", "our NULL, Deno");
  row("64 B messages/s", c64[0]?.msg_per_s, c64[1]?.msg_per_s, n64[0]?.msg_per_s, 0, "");
  row("1 MiB messages, MB/s", c1m[0]?.mb_per_s, c1m[1]?.mb_per_s, n1m[0]?.mb_per_s, 0, "");
  row("hub requests/s, 64 in flight", hc[0]?.req_per_s, hc[1]?.req_per_s, hn[0]?.req_per_s, 0, "");
  row("hub one at a time, p50 us", hc[0]?.p50_us, hc[1]?.p50_us, hn[0]?.p50_us, 1, "");
}

const widths = (rows[0] ?? []).map((_, i) => Math.max(...rows.map((r) => r[i].length)));
console.log("");
for (const r of rows) {
  if (r[1].startsWith("ours")) console.log("");
  console.log(
    r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join("  "),
  );
}
if (values.json) writeFileSync(values.json, JSON.stringify(all, null, 2));
