/**
 * Our Dealer → Router benchmark, measured exactly as bench/zeromqjs_bench.mjs measures
 * zeromq.js (same roles, same method), so the two compare as ratios in one run.
 *
 *   deno run -A bench/socket_bench.ts throughput --size 64 [--count N] [--duration S] [--transport ws]
 *                                     [--batch]
 *   deno run -A bench/socket_bench.ts rtt --size 64 [--transport ws]
 *   deno run -A bench/socket_bench.ts sink --bind EP --count N [--warmup W]   (child role)
 *   deno run -A bench/socket_bench.ts echo --bind EP                          (child role)
 *
 * `--batch`: the batch API measured beside the zeromq.js-shaped one: the sender sends with
 * `trySend()` (synchronous while there is room, `await send()` when there is none) and the sink
 * (its role's `--consume`) takes its messages through `consume()` (handed over synchronously,
 * a pass per turn) instead of `for await`.
 *
 * `--curve` runs the same over CURVE: the child is a CURVE server (its secret key reaches it in
 * $GIBBS_BENCH_CURVE_SECRET), the parent a CURVE client.
 *
 * Method: the parent is a DEALER doing one `await send(msg)` per message; the child is a
 * ROUTER in another process timing from the first to the last measured message (the clock is
 * read at those two only, in all three implementations). RTT: the child echoes, the parent
 * sends one message and awaits its echo, N times after warm-up.
 * `--transport ws` runs the same over `ws://` loopback (ZWS 2.0) instead of `tcp://`, to compare
 * with bench/jszmq_bench.mjs.
 *
 * @module
 */

import { type ChildProcess, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { curveKeyPair, Dealer, Router, type SecurityOptions } from "../mod.ts";
import { sameRuntime, scriptArgs } from "./_args.ts";
import { disown, exitWithParent, own, watchdog } from "./_process.ts";

let NAME = "gibbs (ours)";
const CURVE_ENV = "GIBBS_BENCH_CURVE_SECRET";
/** Keys of this run when `--curve` is given: the child's security, the parent's. */
let childSecurity: SecurityOptions = {};
let parentSecurity: SecurityOptions = {};
let childEnv: Record<string, string> = {};
const SELF = fileURLToPath(import.meta.url);
const MiB = 1 << 20;
const WATCHDOG_MS = 19_000;
const out = (o: unknown) => console.log(JSON.stringify(o));
const round = (x: number, digits = 1) => Number(x.toFixed(digits));

function percentile(sorted: Float64Array, p: number): number {
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

async function sink(
  bind: string,
  count: number,
  warmup: number,
  consume: boolean,
): Promise<void> {
  exitWithParent();
  const sock = new Router({ linger: 0, ...childSecurity });
  const endpoint = await sock.bind(bind);
  out({ ready: true, endpoint });
  let seen = 0;
  let measured = 0;
  let bytes = 0;
  let size = 0;
  let t0 = 0;
  let t1 = 0;
  // The clock is read at the first measured message and at the last (or at the end message,
  // sent right after it), not per message: a clock read costs ~120 ns under Deno (an op).
  // Returns true once the run is over.
  const take = (payload: Uint8Array | undefined): boolean => {
    if (payload === undefined || payload.length === 0) {
      t1 = performance.now();
      return true;
    }
    seen++;
    if (seen <= warmup) return false;
    if (measured === 0) t0 = performance.now();
    else bytes += payload.length;
    size = payload.length;
    measured++;
    if (measured >= count) {
      t1 = performance.now();
      return true;
    }
    return false;
  };
  if (consume) {
    // The batch receive: messages handed over synchronously, a pass per turn.
    await new Promise<void>((done) => {
      let over = false;
      sock.consume(([, payload]) => {
        if (!over && take(payload)) {
          over = true;
          done();
        }
      });
    });
  } else {
    for await (const [, payload] of sock) if (take(payload)) break;
  }
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
  sock.close();
  process.exit(0);
}

async function echo(bind: string): Promise<void> {
  exitWithParent();
  const sock = new Router({ linger: 0, ...childSecurity });
  out({ ready: true, endpoint: await sock.bind(bind) });
  for await (const msg of sock) await sock.send(msg);
}

interface Child {
  process: ChildProcess;
  endpoint: string;
  nextLine(): Promise<Record<string, unknown>>;
}

async function spawnChild(args: string[]): Promise<Child> {
  // Killed when this process ends, however it ends; it also exits by itself if we vanish.
  const child = own(spawn(process.execPath, sameRuntime(SELF, args), {
    stdio: ["ignore", "pipe", "inherit"],
    env: { ...process.env, ...childEnv },
  }));
  const queued: Record<string, unknown>[] = [];
  const waiting: Array<(o: Record<string, unknown>) => void> = [];
  createInterface({ input: child.stdout! }).on("line", (line) => {
    const o = JSON.parse(line);
    const w = waiting.shift();
    if (w) w(o);
    else queued.push(o);
  });
  child.on("exit", () => disown(child));
  const nextLine = () =>
    queued.length > 0
      ? Promise.resolve(queued.shift()!)
      : new Promise<Record<string, unknown>>((resolve) => waiting.push(resolve));
  const ready = await nextLine();
  return { process: child, endpoint: ready.endpoint as string, nextLine };
}

async function throughput(
  size: number,
  count: number,
  duration: number,
  warmup: number,
  transport: string,
  batch: boolean,
) {
  const child = await spawnChild([
    "sink",
    "--bind",
    `${transport}://127.0.0.1:0`,
    "--count",
    `${count}`,
    "--warmup",
    `${warmup}`,
    ...(parentSecurity.curveServerKey ? ["--curve"] : []),
    ...(batch ? ["--consume"] : []),
  ]);
  const sock = new Dealer({ linger: 0, ...parentSecurity });
  sock.connect(child.endpoint);
  const msg = new Uint8Array(size).fill(0x61);
  for (let i = 0; i < warmup; i++) await sock.send(msg);
  const deadline = performance.now() + duration * 1000;
  let sent = 0;
  while (sent < count) {
    // The batch API: a synchronous send while there is room, `await send` when there is none.
    if (!batch || !sock.trySend(msg)) await sock.send(msg);
    sent++;
    if ((sent & 255) === 0 && performance.now() > deadline) break;
  }
  if (sent < count) await sock.send(new Uint8Array(0));
  const result = await child.nextLine();
  sock.close();
  return {
    name: NAME,
    test: "throughput",
    transport,
    api: batch ? "trySend → consume" : "await send → for await",
    size,
    count: result.count,
    msg_per_s: result.msg_per_s,
    mb_per_s: result.mb_per_s,
    elapsed_s: result.elapsed_s,
  };
}

async function rtt(
  size: number,
  count: number,
  duration: number,
  warmup: number,
  transport: string,
) {
  const child = await spawnChild([
    "echo",
    "--bind",
    `${transport}://127.0.0.1:0`,
    ...(parentSecurity.curveServerKey ? ["--curve"] : []),
  ]);
  const sock = new Dealer({ linger: 0, ...parentSecurity });
  sock.connect(child.endpoint);
  const msg = new Uint8Array(size).fill(0x61);
  for (let i = 0; i < warmup; i++) {
    await sock.send(msg);
    await sock.receive();
  }
  const samples = new Float64Array(count);
  const deadline = performance.now() + duration * 1000;
  let n = 0;
  while (n < count) {
    const t0 = performance.now();
    await sock.send(msg);
    const [reply] = await sock.receive();
    samples[n++] = (performance.now() - t0) * 1000;
    if (reply.length !== size) throw new Error(`echo returned ${reply.length} bytes`);
    if ((n & 255) === 0 && performance.now() > deadline) break;
  }
  sock.close();
  child.process.kill("SIGKILL");
  const sorted = samples.subarray(0, n).sort();
  return {
    name: NAME,
    test: "rtt",
    transport,
    size,
    count: n,
    p50_us: round(percentile(sorted, 50)),
    p99_us: round(percentile(sorted, 99)),
  };
}

function parseSize(text: string): number {
  const m = /^(\d+)\s*(k|kib|m|mib)?$/i.exec(text);
  if (!m) throw new Error(`bad size ${text}`);
  const unit = (m[2] ?? "").toLowerCase();
  return Number(m[1]) * (unit.startsWith("k") ? 1024 : unit.startsWith("m") ? MiB : 1);
}

async function main(): Promise<void> {
  const [role, ...rest] = scriptArgs();
  const { values: v } = parseArgs({
    args: rest,
    options: {
      size: { type: "string", default: "64" },
      count: { type: "string" },
      warmup: { type: "string" },
      duration: { type: "string", default: "3" },
      bind: { type: "string" },
      transport: { type: "string", default: "tcp" },
      curve: { type: "boolean", default: false },
      consume: { type: "boolean", default: false },
      batch: { type: "boolean", default: false },
    },
  });
  if (v.curve) {
    NAME = "gibbs (ours), CURVE";
    const secret = process.env[CURVE_ENV];
    if (role === "sink" || role === "echo") {
      if (!secret) throw new Error(`--curve in a child needs $${CURVE_ENV}`);
      childSecurity = { curveServer: true, curveSecretKey: secret };
    } else {
      const server = curveKeyPair();
      childEnv = { [CURVE_ENV]: server.secretKey };
      parentSecurity = {
        curveServerKey: server.publicKey,
        curveSecretKey: curveKeyPair().secretKey,
      };
    }
  }
  if (role === "sink") {
    return sink(v.bind!, Number(v.count), Number(v.warmup ?? 0), v.consume!);
  }
  if (role === "echo") return echo(v.bind!);
  watchdog(WATCHDOG_MS, role);
  const size = parseSize(v.size!);
  const duration = Number(v.duration);
  const transport = v.transport!;
  if (transport !== "tcp" && transport !== "ws") throw new Error("--transport is tcp or ws");
  if (role === "throughput") {
    const count = Number(v.count ?? (size >= 65536 ? 2_000 : 1_000_000));
    const warmup = Number(v.warmup ?? (size >= 65536 ? 200 : 20_000));
    out(await throughput(size, count, duration, warmup, transport, v.batch!));
  } else if (role === "rtt") {
    out(
      await rtt(size, Number(v.count ?? 20_000), duration, Number(v.warmup ?? 2_000), transport),
    );
  } else {
    throw new Error(`unknown role ${role}: throughput, rtt, sink or echo`);
  }
  process.exit(0);
}

await main();
