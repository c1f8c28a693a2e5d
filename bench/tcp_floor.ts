/**
 * The floor under every socket benchmark: a ping-pong round trip over raw loopback TCP between
 * two processes, no framing at all, with the same runtime primitives our transport adapter uses
 * (`Deno.listen`/`Deno.connect` under Deno, `node:net` under Node), TCP_NODELAY on. Measured as
 * bench/socket_bench.ts measures `rtt`: 64 bytes, one round trip at a time, after a warm-up.
 *
 *   deno run -A bench/tcp_floor.ts [--size 64] [--count 20000] [--warmup 2000] [--duration 3]
 *   deno run -A bench/tcp_floor.ts echo                                  (child role)
 *
 * Prints one JSON line: {"name": "raw tcp", "test": "rtt", "p50_us": ..., "p99_us": ...}.
 *
 * @module
 */

import { spawn } from "node:child_process";
import net from "node:net";
import process from "node:process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { disown, exitWithParent, own, watchdog } from "./_process.ts";
import { sameRuntime, scriptArgs } from "./_args.ts";

const SELF = fileURLToPath(import.meta.url);
const out = (o: unknown) => console.log(JSON.stringify(o));
const round = (x: number) => Number(x.toFixed(1));

interface DenoConn {
  read(p: Uint8Array): Promise<number | null>;
  write(p: Uint8Array): Promise<number>;
  setNoDelay(on: boolean): void;
  close(): void;
}
interface DenoNs {
  listen(o: { hostname: string; port: number }): AsyncIterable<DenoConn> & {
    addr: { port: number };
  };
  connect(o: { hostname: string; port: number }): Promise<DenoConn>;
}
const Deno = (globalThis as { Deno?: DenoNs }).Deno;

/** A byte stream: write all, read exactly n bytes. */
interface Stream {
  write(bytes: Uint8Array): Promise<void>;
  readExactly(n: number): Promise<void>;
  close(): void;
}

function denoStream(conn: DenoConn): Stream {
  conn.setNoDelay(true);
  const buffer = new Uint8Array(64 * 1024);
  return {
    async write(bytes) {
      let at = 0;
      while (at < bytes.length) at += await conn.write(bytes.subarray(at));
    },
    async readExactly(n) {
      let got = 0;
      while (got < n) {
        const r = await conn.read(buffer.subarray(0, Math.min(buffer.length, n - got)));
        if (r === null) throw new Error("connection closed");
        got += r;
      }
    },
    close: () => conn.close(),
  };
}

function nodeStream(socket: net.Socket): Stream {
  socket.setNoDelay(true);
  let buffered = 0;
  let want = 0;
  let wake: (() => void) | null = null;
  socket.on("data", (chunk: Uint8Array) => {
    buffered += chunk.length;
    if (wake && buffered >= want) {
      const w = wake;
      wake = null;
      w();
    }
  });
  return {
    write: (bytes) => new Promise((resolve) => socket.write(bytes, () => resolve())),
    readExactly(n) {
      if (buffered >= n) {
        buffered -= n;
        return Promise.resolve();
      }
      want = n;
      return new Promise((resolve) => {
        wake = () => {
          buffered -= n;
          resolve();
        };
      });
    },
    close: () => socket.destroy(),
  };
}

async function echo(): Promise<void> {
  exitWithParent();
  if (Deno) {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    out({ ready: true, port: listener.addr.port });
    for await (const conn of listener) {
      conn.setNoDelay(true);
      const buffer = new Uint8Array(64 * 1024);
      while (true) {
        const n = await conn.read(buffer);
        if (n === null) break;
        let at = 0;
        while (at < n) at += await conn.write(buffer.subarray(at, n));
      }
    }
  } else {
    const server = net.createServer((socket) => {
      socket.setNoDelay(true);
      socket.on("data", (chunk) => socket.write(chunk));
      socket.on("error", () => {});
    });
    server.listen(0, "127.0.0.1", () => {
      out({ ready: true, port: (server.address() as net.AddressInfo).port });
    });
  }
}

async function rtt(size: number, count: number, warmup: number, duration: number) {
  const child = own(spawn(process.execPath, sameRuntime(SELF, ["echo"]), {
    stdio: ["ignore", "pipe", "inherit"],
  }));
  child.on("exit", () => disown(child));
  const ready = await new Promise<{ port: number }>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once("line", (line) => resolve(JSON.parse(line)));
    child.once("exit", (code) => reject(new Error(`echo child exited with ${code}`)));
  });
  const stream = Deno
    ? denoStream(await Deno.connect({ hostname: "127.0.0.1", port: ready.port }))
    : nodeStream(
      await new Promise<net.Socket>((resolve, reject) => {
        const s = net.connect({ host: "127.0.0.1", port: ready.port }, () => resolve(s));
        s.once("error", reject);
      }),
    );
  const msg = new Uint8Array(size).fill(0x61);
  for (let i = 0; i < warmup; i++) {
    await stream.write(msg);
    await stream.readExactly(size);
  }
  const samples = new Float64Array(count);
  const deadline = performance.now() + duration * 1000;
  let n = 0;
  while (n < count) {
    const t0 = performance.now();
    await stream.write(msg);
    await stream.readExactly(size);
    samples[n++] = (performance.now() - t0) * 1000;
    if ((n & 255) === 0 && performance.now() > deadline) break;
  }
  stream.close();
  child.kill("SIGKILL");
  const sorted = samples.subarray(0, n).sort();
  const pct = (p: number) => sorted[Math.min(n, Math.max(1, Math.ceil((p / 100) * n))) - 1];
  return {
    name: "raw tcp",
    test: "rtt",
    size,
    count: n,
    p50_us: round(pct(50)),
    p99_us: round(pct(99)),
  };
}

const [first, ...rest] = scriptArgs();
if (first === "echo") {
  await echo();
} else {
  const { values } = parseArgs({
    args: first === undefined ? [] : [first, ...rest],
    options: {
      size: { type: "string", default: "64" },
      count: { type: "string", default: "20000" },
      warmup: { type: "string", default: "2000" },
      duration: { type: "string", default: "3" },
    },
  });
  const disarm = watchdog(19_000, "tcp floor");
  out(
    await rtt(
      Number(values.size),
      Number(values.count),
      Number(values.warmup),
      Number(values.duration),
    ),
  );
  disarm();
  process.exit(0);
}
