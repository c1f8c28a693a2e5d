/**
 * `deno task bench`: every benchmark of the project, each beside its anchor measured in the
 * same run on the same machine, printed as figures and ratios. Each figure is the median of
 * `--runs` runs (default 3).
 *
 *   deno task bench [--runs 3] [--only socket|hub] [--json FILE]
 *
 * Anchors: zeromq.js 6 (native libzmq) under Node for the socket layer, and a Python
 * implementation of the gibbs 0.3 protocol on pyzmq (bench/gibbs_py_bench.py) for the hub.
 *
 * @module
 */

import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
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
  },
});
const runs = Number(values.runs);
const deno = process.execPath;

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

function row(what: string, ours: unknown, anchor: unknown, digits: number, target: string) {
  rows.push([what, fmt(ours, digits), fmt(anchor, digits), ratio(ours, anchor), target]);
}

console.log(
  `gibbs benchmarks — ${new Date().toISOString().slice(0, 10)}, ${cpus().length} cores, ` +
    `Deno ${
      (globalThis as unknown as { Deno: { version: { deno: string } } }).Deno.version.deno
    }, ` +
    `median of ${runs} runs`,
);

if (!values.only || values.only === "socket") {
  console.log("running socket benchmarks (ours under Deno, zeromq.js under Node)...");
  const ours = (role: string, size: string, key: string) =>
    median(`ours ${role} ${size}`, key, deno, [
      "run",
      "-A",
      here("./socket_bench.ts"),
      role,
      "--size",
      size,
    ]);
  const theirs = (role: string, size: string, key: string) =>
    median(`zeromq.js ${role} ${size}`, key, "node", [
      here("./zeromqjs_bench.mjs"),
      role,
      "--size",
      size,
    ]);
  const t64 = [ours("throughput", "64", "msg_per_s"), theirs("throughput", "64", "msg_per_s")];
  const t1m = [ours("throughput", "1MiB", "mb_per_s"), theirs("throughput", "1MiB", "mb_per_s")];
  const rtt = [ours("rtt", "64", "p50_us"), theirs("rtt", "64", "p50_us")];
  Object.assign(all, {
    ours_64: t64[0],
    zeromqjs_64: t64[1],
    ours_1mib: t1m[0],
    zeromqjs_1mib: t1m[1],
    ours_rtt: rtt[0],
    zeromqjs_rtt: rtt[1],
  });
  rows.push(["socket: DEALER -> ROUTER, 2 processes", "ours", "zeromq.js", "ratio", "target"]);
  row("64 B messages/s", t64[0]?.msg_per_s, t64[1]?.msg_per_s, 0, ">= 1,000,000 and >= 3x");
  row("1 MiB messages, MB/s", t1m[0]?.mb_per_s, t1m[1]?.mb_per_s, 0, ">= 1x");
  row("ping-pong RTT p50, us", rtt[0]?.p50_us, rtt[1]?.p50_us, 1, "<= 0.5x");
  row("ping-pong RTT p99, us", rtt[0]?.p99_us, rtt[1]?.p99_us, 1, "");
}

if (!values.only || values.only === "hub") {
  console.log("running hub benchmarks (ours under Deno, the Python gibbs protocol on pyzmq)...");
  const hub = (prefetch: number) =>
    median(`ours hub prefetch ${prefetch}`, "req_per_s", deno, [
      "run",
      "-A",
      here("./hub_bench.ts"),
      "--prefetch",
      String(prefetch),
    ]);
  const h1 = hub(1);
  const h32 = hub(32);
  const py = median("python gibbs protocol", "req_per_s", "/usr/bin/python3", [
    here("./gibbs_py_bench.py"),
  ]);
  Object.assign(all, { ours_hub: h1, ours_hub_prefetch32: h32, python_hub: py });
  rows.push(["hub: 2 workers, trivial model", "ours", "Python", "ratio", "target"]);
  row("requests/s, 64 in flight", h1?.req_per_s, py?.req_per_s, 0, ">= 10x");
  row("requests/s, prefetch 32", h32?.req_per_s, py?.req_per_s, 0, ">= 10x");
  row("one at a time, p50 us", h1?.p50_us, py?.p50_us, 1, "");
  row("one at a time, p99 us", h1?.p99_us, py?.p99_us, 1, "");
}

const widths = [0, 1, 2, 3, 4].map((i) => Math.max(...rows.map((r) => r[i].length)));
console.log("");
for (const r of rows) {
  const header = r[1] === "ours";
  if (header) console.log("");
  console.log(
    r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join("  "),
  );
}
if (values.json) writeFileSync(values.json, JSON.stringify(all, null, 2));
