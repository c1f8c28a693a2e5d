#!/usr/bin/env node
// The libzmq anchor for our socket benchmark: DEALER -> ROUTER over tcp loopback
// with zeromq.js 6 (native libzmq), measured the way bench/ measures our own
// TypeScript sockets, so the two can be compared as ratios within one run.
//
// zeromq is installed once for the test peers and the bench:
//   npm install --prefix tests/peers
//
// Parent roles (spawn their own child process, print one JSON line each):
//   node bench/zeromqjs_bench.mjs throughput --size 64 [--count 1000000] [--duration 3]
//   node bench/zeromqjs_bench.mjs rtt --size 64 [--count 20000] [--duration 3]
//   node bench/zeromqjs_bench.mjs all        (throughput 64 B, throughput 1 MiB, rtt 64 B)
// Child roles, also usable on their own to cross-test another implementation:
//   node bench/zeromqjs_bench.mjs sink --bind EP --count N [--warmup W]
//   node bench/zeromqjs_bench.mjs echo --bind EP
// Both print {"ready":true,"endpoint":"..."} once bound. The sink then prints one
// result line and exits when N measured messages (after W warm-up messages) have
// arrived, or earlier on an empty message, which ends a time-bounded run.
//
// Method.
// - throughput: the parent is a DEALER doing one `await send(msg)` per message,
//   msg = one frame of `size` bytes (the same Buffer every time); the child is a
//   ROUTER bound on tcp://127.0.0.1:*. The sink times from the first to the last
//   measured message, reading the clock at those two only (or at the end message):
//   msg_per_s = (count - 1) / elapsed, mb_per_s = (count - 1) * size / elapsed / 1e6
//   (MB = 10^6 bytes). The sender stops at
//   --count or after --duration seconds, whichever comes first, then sends the
//   empty end message.
// - rtt: the child is a ROUTER echoing every message; the parent DEALER sends one
//   message and awaits its echo, --count times after warm-up (or until
//   --duration seconds), timing each round trip with hrtime; p50/p99 in µs.
// Every run is bounded by a watchdog (< 20 s) and kills its child on exit; a
// child whose parent disappears exits by itself.

import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const NAME = "zeromq.js";
const SELF = fileURLToPath(import.meta.url);
const WATCHDOG_MS = 19_000;
const MiB = 1 << 20;

function loadZmq() {
  // tests/peers/package.json is the one place that declares zeromq; fall back to
  // ordinary resolution (bench/node_modules, node_modules at the root).
  const bases = [new URL("../tests/peers/package.json", import.meta.url), import.meta.url];
  for (const base of bases) {
    try {
      return createRequire(base)("zeromq");
    } catch (err) {
      if (err.code !== "MODULE_NOT_FOUND") throw err;
    }
  }
  process.stderr.write("zeromq not found: run `npm install --prefix tests/peers`\n");
  process.exit(2);
}
const zmq = loadZmq();

const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

/** "64", "64KiB", "1MiB", "1M" (binary multiples) -> bytes. */
function parseSize(text) {
  const m = /^(\d+)\s*(k|kib|kb|m|mib|mb)?$/i.exec(String(text));
  if (!m) throw new Error(`bad size ${JSON.stringify(text)}`);
  const unit = (m[2] ?? "").toLowerCase();
  const scale = unit.startsWith("k") ? 1024 : unit.startsWith("m") ? MiB : 1;
  return Number(m[1]) * scale;
}

function intArg(name, text, min) {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min) {
    throw new Error(`--${name} expects an integer >= ${min}`);
  }
  return n;
}

function percentile(sorted, p) {
  // nearest-rank percentile
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

const round = (x, digits = 1) => Number(x.toFixed(digits));

/** A child role exits when whatever started it is gone (ppid becomes the reaper). */
function exitWithParent() {
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) process.exit(0);
  }, 500).unref();
}

// ---------------------------------------------------------------- child roles

async function sink({ bind, count, warmup }) {
  exitWithParent();
  const sock = new zmq.Router({ linger: 0 });
  await sock.bind(bind);
  out({ ready: true, endpoint: sock.lastEndpoint });

  let seen = 0; // data messages received, warm-up included
  let measured = 0; // measured messages received; the first one starts the clock
  let bytes = 0; // bytes of measured messages after the first
  let size = 0;
  let t0 = 0n;
  let t1 = 0n;
  // The clock is read at the first measured message and at the last (or at the end message,
  // sent right after it), not per message, as in the other two implementations' sinks.
  for await (const [, payload] of sock) {
    if (payload === undefined || payload.length === 0) {
      t1 = process.hrtime.bigint(); // end of a time-bounded run
      break;
    }
    seen++;
    if (seen <= warmup) continue;
    if (measured === 0) t0 = process.hrtime.bigint();
    else bytes += payload.length;
    size = payload.length;
    measured++;
    if (measured >= count) {
      t1 = process.hrtime.bigint();
      break;
    }
  }
  const elapsed = Number(t1 - t0) / 1e9;
  const ok = measured >= 2 && elapsed > 0;
  out({
    name: NAME,
    test: "sink",
    size,
    count: measured,
    elapsed_s: round(elapsed, 6),
    msg_per_s: ok ? round((measured - 1) / elapsed) : null,
    mb_per_s: ok ? round(bytes / elapsed / 1e6) : null,
  });
  sock.close();
  process.exit(0);
}

async function echo({ bind }) {
  exitWithParent();
  const sock = new zmq.Router({ linger: 0 });
  await sock.bind(bind);
  out({ ready: true, endpoint: sock.lastEndpoint });
  // [id, ...payload] goes straight back: the id frame routes it to its sender.
  for await (const msg of sock) await sock.send(msg);
}

// --------------------------------------------------------------- parent roles

// Children are killed whenever this process exits (normally, on error, on a
// signal or from the watchdog), so no sink or echo server is left behind.
const children = new Set();
process.on("exit", () => {
  for (const child of children) child.kill("SIGKILL");
});
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => process.exit(130));

/** Spawns a child role of this script and resolves once it prints its ready line. */
async function spawnChild(args) {
  const child = spawn(process.execPath, [SELF, ...args], { stdio: ["ignore", "pipe", "inherit"] });
  children.add(child);
  const queued = [];
  const waiting = [];
  createInterface({ input: child.stdout }).on("line", (line) => {
    const obj = JSON.parse(line);
    if (waiting.length) waiting.shift().resolve(obj);
    else queued.push(obj);
  });
  child.on("exit", (code) => {
    children.delete(child);
    for (const w of waiting.splice(0)) w.reject(new Error(`child exited with ${code}`));
  });
  child.nextLine = () =>
    queued.length
      ? Promise.resolve(queued.shift())
      : new Promise((resolve, reject) => waiting.push({ resolve, reject }));
  const ready = await child.nextLine();
  if (!ready.ready) throw new Error(`child not ready: ${JSON.stringify(ready)}`);
  child.endpoint = ready.endpoint;
  return child;
}

async function throughput({ size, count, duration, warmup }) {
  const bind = "tcp://127.0.0.1:*";
  const child = await spawnChild([
    "sink",
    "--bind",
    bind,
    "--count",
    `${count}`,
    "--warmup",
    `${warmup}`,
  ]);
  const sock = new zmq.Dealer({ linger: 0 });
  sock.connect(child.endpoint);
  const msg = Buffer.alloc(size, 0x61);

  // Warm-up also waits out the TCP connect and ZMTP handshake: the first sends
  // are queued in libzmq's pipe until the connection is up.
  for (let i = 0; i < warmup; i++) await sock.send(msg);
  const deadline = performance.now() + duration * 1000;
  let sent = 0;
  while (sent < count) {
    await sock.send(msg);
    sent++;
    // performance.now() costs ~50 ns; checking every 256 messages keeps it off the hot path.
    if ((sent & 255) === 0 && performance.now() > deadline) break;
  }
  if (sent < count) await sock.send(Buffer.alloc(0)); // tells the sink to report now

  const result = await child.nextLine();
  sock.close();
  return {
    name: NAME,
    test: "throughput",
    size,
    count: result.count,
    msg_per_s: result.msg_per_s,
    mb_per_s: result.mb_per_s,
    elapsed_s: result.elapsed_s,
  };
}

async function rtt({ size, count, duration, warmup }) {
  const child = await spawnChild(["echo", "--bind", "tcp://127.0.0.1:*"]);
  const sock = new zmq.Dealer({ linger: 0 });
  sock.connect(child.endpoint);
  const msg = Buffer.alloc(size, 0x61);

  for (let i = 0; i < warmup; i++) {
    await sock.send(msg);
    await sock.receive();
  }
  const samples = new Float64Array(count);
  const deadline = performance.now() + duration * 1000;
  let n = 0;
  while (n < count) {
    const t0 = process.hrtime.bigint();
    await sock.send(msg);
    const [reply] = await sock.receive();
    samples[n++] = Number(process.hrtime.bigint() - t0) / 1000;
    if (reply.length !== size) throw new Error(`echo returned ${reply.length} bytes, not ${size}`);
    if ((n & 255) === 0 && performance.now() > deadline) break;
  }
  sock.close();
  child.kill("SIGKILL");
  const sorted = samples.subarray(0, n).sort();
  return {
    name: NAME,
    test: "rtt",
    size,
    count: n,
    p50_us: round(percentile(sorted, 50)),
    p99_us: round(percentile(sorted, 99)),
  };
}

// ----------------------------------------------------------------------- main

const DEFAULTS = {
  throughput: (size) => ({
    count: size >= 65536 ? 2_000 : 1_000_000,
    warmup: size >= 65536 ? 200 : 20_000,
  }),
  rtt: () => ({ count: 20_000, warmup: 2_000 }),
};

async function main() {
  const [role, ...rest] = process.argv.slice(2);
  const { values: v } = parseArgs({
    args: rest,
    options: {
      size: { type: "string", default: "64" },
      count: { type: "string" },
      warmup: { type: "string" },
      duration: { type: "string", default: "3" },
      bind: { type: "string" },
    },
    strict: true,
  });
  const duration = Number(v.duration);
  if (!(duration > 0 && duration <= 15)) {
    throw new Error("--duration must be in (0, 15] seconds");
  }

  if (role === "sink" || role === "echo") {
    if (!v.bind) throw new Error(`${role} needs --bind EP`);
    if (role === "echo") return echo({ bind: v.bind });
    if (v.count === undefined) throw new Error("sink needs --count N");
    return sink({
      bind: v.bind,
      count: intArg("count", v.count, 2),
      warmup: v.warmup === undefined ? 0 : intArg("warmup", v.warmup, 0),
    });
  }

  // Parent roles: every run is bounded in time whatever happens (exit kills the child).
  let watchdog;
  const run = (test, size) => {
    clearTimeout(watchdog);
    watchdog = setTimeout(() => {
      process.stderr.write(`${test} ${size}: watchdog fired after ${WATCHDOG_MS} ms\n`);
      process.exit(3);
    }, WATCHDOG_MS);
    watchdog.unref();
    const d = DEFAULTS[test](size);
    const opts = {
      size,
      duration,
      count: v.count === undefined ? d.count : intArg("count", v.count, 2),
      warmup: v.warmup === undefined ? d.warmup : intArg("warmup", v.warmup, 0),
    };
    return test === "throughput" ? throughput(opts) : rtt(opts);
  };

  if (role === "throughput" || role === "rtt") {
    out(await run(role, parseSize(v.size)));
  } else if (role === "all") {
    // Each run has its own watchdog budget; the three together take ~10 s.
    const runs = [["throughput", 64], ["throughput", MiB], ["rtt", 64]];
    for (const [test, size] of runs) {
      out(await run(test, size));
    }
  } else {
    throw new Error("role must be throughput, rtt, all, sink or echo");
  }
  process.exit(0);
}

main().catch((err) => {
  process.stderr.write(`zeromqjs_bench: ${err.message}\n`);
  process.exit(1);
});
