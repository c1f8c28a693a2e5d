#!/usr/bin/env node
// The jszmq anchor for our ws benchmark: DEALER -> ROUTER over ws:// loopback with jszmq 0.1.2
// (ZeroMQ over WebSocket, on Node's `ws` 7), measured the way bench/socket_bench.ts measures
// ours with --transport ws, so the two compare as ratios within one run.
//
// jszmq is installed with the test peers: npm ci --prefix tests/peers
//
//   node bench/jszmq_bench.mjs throughput --size 64 [--count N] [--duration 3]
//   node bench/jszmq_bench.mjs rtt --size 64 [--count 20000] [--duration 3]
//   node bench/jszmq_bench.mjs sink --port P --count N [--warmup W]     (child role)
//   node bench/jszmq_bench.mjs echo --port P                            (child role)
//
// Method, as socket_bench.ts: the parent is a DEALER sending one message of `size` bytes at a
// time; the child, a ROUTER in another process, times from the first to the last measured
// message. jszmq's send is synchronous and never waits (it has no high-water mark): it is called
// in a plain loop, which waits whenever the WebSocket holds more than 1 MiB unsent (checked every
// 64 messages), as a bounded queue would, so that it measures throughput, not memory growth. RTT: the child echoes; the parent
// sends one message and awaits its echo, N times after warm-up. Output: one JSON line, the same
// keys as socket_bench.ts. A watchdog bounds every run (< 20 s).

import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { createRequire } from "node:module";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const NAME = "jszmq";
const SELF = fileURLToPath(import.meta.url);
const WATCHDOG_MS = 19_000;
const MiB = 1 << 20;
const SEND_BUFFER_MAX = MiB;

function loadJszmq() {
  try {
    return createRequire(new URL("../tests/peers/package.json", import.meta.url))("jszmq");
  } catch {
    process.stderr.write("jszmq not found: run `npm ci --prefix tests/peers`\n");
    process.exit(2);
  }
}
const zmq = loadJszmq();
const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const round = (x, digits = 1) => Number(x.toFixed(digits));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const immediate = () => new Promise((r) => setImmediate(r));

function parseSize(text) {
  const m = /^(\d+)\s*(k|kib|m|mib)?$/i.exec(String(text));
  if (!m) throw new Error(`bad size ${text}`);
  const unit = (m[2] ?? "").toLowerCase();
  return Number(m[1]) * (unit.startsWith("k") ? 1024 : unit.startsWith("m") ? MiB : 1);
}

function percentile(sorted, p) {
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

/** A free loopback port: jszmq's bind reports none for port 0. */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function bindRouter(port) {
  const sock = new zmq.Router();
  sock.bind(`ws://127.0.0.1:${port}`);
  return new Promise((resolve, reject) => {
    const server = sock.binds[0].server;
    server.once("listening", () => resolve(sock));
    server.once("error", reject);
  });
}

async function sink(port, count, warmup) {
  const sock = await bindRouter(port);
  out({ ready: true, port });
  let seen = 0;
  let measured = 0;
  let bytes = 0;
  let size = 0;
  let t0 = 0;
  let t1 = 0;
  const finish = () => {
    const elapsed = (t1 - t0) / 1000;
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
    process.exit(0);
  };
  sock.on("message", (_id, payload) => {
    if (payload === undefined || payload.length === 0) return finish();
    seen++;
    if (seen <= warmup) return;
    const now = performance.now();
    if (measured === 0) t0 = now;
    else bytes += payload.length;
    t1 = now;
    size = payload.length;
    measured++;
    if (measured >= count) finish();
  });
}

async function echo(port) {
  const sock = await bindRouter(port);
  out({ ready: true, port });
  sock.on("message", (...frames) => sock.send(frames));
}

const children = new Set();
process.on("exit", () => {
  for (const c of children) c.kill("SIGKILL");
});

async function spawnChild(args) {
  const child = spawn(process.execPath, [SELF, ...args], { stdio: ["ignore", "pipe", "inherit"] });
  children.add(child);
  child.on("exit", () => children.delete(child));
  const queued = [];
  const waiting = [];
  createInterface({ input: child.stdout }).on("line", (line) => {
    const o = JSON.parse(line);
    const w = waiting.shift();
    if (w) w(o);
    else queued.push(o);
  });
  const nextLine = () =>
    queued.length > 0 ? Promise.resolve(queued.shift()) : new Promise((r) => waiting.push(r));
  await nextLine();
  return { child, nextLine };
}

/** A connected DEALER and its WebSocket (to wait on its unsent bytes). */
async function dealer(port) {
  const sock = new zmq.Dealer();
  sock.connect(`ws://127.0.0.1:${port}`);
  const endpoint = sock.loadBalancer.endpoints[0];
  while (endpoint.state !== 3) await sleep(5); // jszmq's State.Active
  return { sock, ws: () => endpoint.socket };
}

async function throughput(size, count, duration, warmup) {
  const port = await freePort();
  const { nextLine } = await spawnChild([
    "sink",
    "--port",
    `${port}`,
    "--count",
    `${count}`,
    "--warmup",
    `${warmup}`,
  ]);
  const { sock, ws } = await dealer(port);
  const msg = Buffer.alloc(size, 0x61);
  // jszmq's send is synchronous: it is called in a plain loop, its natural (and fastest) use,
  // with a look at the unsent bytes every 64 messages (every message at 64 KiB and more).
  const every = size >= 65536 ? 1 : 64;
  const drain = async () => {
    while (ws().bufferedAmount > SEND_BUFFER_MAX) await immediate();
  };
  for (let i = 0; i < warmup; i++) {
    sock.send(msg);
    if (i % every === 0) await drain();
  }
  const deadline = performance.now() + duration * 1000;
  let sent = 0;
  while (sent < count) {
    sock.send(msg);
    sent++;
    if (sent % every === 0) await drain();
    if ((sent & 255) === 0 && performance.now() > deadline) break;
  }
  if (sent < count) sock.send(Buffer.alloc(0));
  const result = await nextLine();
  return {
    name: NAME,
    test: "throughput",
    transport: "ws",
    size,
    count: result.count,
    msg_per_s: result.msg_per_s,
    mb_per_s: result.mb_per_s,
    elapsed_s: result.elapsed_s,
  };
}

async function rtt(size, count, duration, warmup) {
  const port = await freePort();
  const { child } = await spawnChild(["echo", "--port", `${port}`]);
  const { sock } = await dealer(port);
  let wake = null;
  sock.on("message", (reply) => wake?.(reply));
  const msg = Buffer.alloc(size, 0x61);
  const roundTrip = () => {
    const replied = new Promise((resolve) => (wake = resolve));
    sock.send(msg);
    return replied;
  };
  for (let i = 0; i < warmup; i++) await roundTrip();
  const samples = new Float64Array(count);
  const deadline = performance.now() + duration * 1000;
  let n = 0;
  while (n < count) {
    const t0 = performance.now();
    const reply = await roundTrip();
    samples[n++] = (performance.now() - t0) * 1000;
    if (reply.length !== size) throw new Error(`echo returned ${reply.length} bytes`);
    if ((n & 255) === 0 && performance.now() > deadline) break;
  }
  child.kill("SIGKILL");
  const sorted = samples.subarray(0, n).sort();
  return {
    name: NAME,
    test: "rtt",
    transport: "ws",
    size,
    count: n,
    p50_us: round(percentile(sorted, 50)),
    p99_us: round(percentile(sorted, 99)),
  };
}

const [role, ...rest] = process.argv.slice(2);
const { values: v } = parseArgs({
  args: rest,
  options: {
    size: { type: "string", default: "64" },
    count: { type: "string" },
    warmup: { type: "string" },
    duration: { type: "string", default: "3" },
    port: { type: "string" },
  },
});
if (role === "sink") {
  await sink(Number(v.port), Number(v.count), Number(v.warmup ?? 0));
} else if (role === "echo") {
  await echo(Number(v.port));
} else {
  setTimeout(() => {
    process.stderr.write(`${role}: watchdog fired after ${WATCHDOG_MS} ms\n`);
    process.exit(3);
  }, WATCHDOG_MS).unref();
  const size = parseSize(v.size);
  const duration = Number(v.duration);
  if (role === "throughput") {
    const count = Number(v.count ?? (size >= 65536 ? 2_000 : 1_000_000));
    const warmup = Number(v.warmup ?? (size >= 65536 ? 200 : 20_000));
    out(await throughput(size, count, duration, warmup));
  } else if (role === "rtt") {
    out(await rtt(size, Number(v.count ?? 20_000), duration, Number(v.warmup ?? 2_000)));
  } else {
    throw new Error(`unknown role ${role}: throughput, rtt, sink or echo`);
  }
  process.exit(0);
}
