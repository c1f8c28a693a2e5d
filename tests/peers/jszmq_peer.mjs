#!/usr/bin/env node
// A remote-controlled jszmq socket (ZeroMQ over WebSocket, npm jszmq 0.1.2) for interop tests.
//
// Same command line and JSON-lines protocol as zmq_peer.mjs, so tests drive both alike:
//
//   node tests/peers/jszmq_peer.mjs --type dealer|router (--bind EP | --connect EP)
//        [--routing-id STR] [--echo] [--monitor]
//
// First line out: {"ready":true,"endpoint":"<endpoint, real port>"}; on a failed start the
// only line is {"error":"..."}. Ops in, answered in order:
//   {"op":"send","frames":["<base64>",...]}                 -> {"ok":true}
//   {"op":"send_fill","frames":[{"size":N,"byte":B},...]}   -> {"ok":true}
//   {"op":"recv","timeout":MS}          -> {"frames":["<base64>",...]} | {"error":"timeout"}
//   {"op":"recv_summary","timeout":MS}  -> {"sizes":[...],"sha256":[...]} | {"error":"timeout"}
//   {"op":"close"} -> {"ok":true}, then exit 0
// jszmq's send never waits: a DEALER with no peer queues the message (without limit, as jszmq
// does) and a ROUTER drops messages for unknown ids. Events go out as {"event":"..."} lines:
// "disconnect" when a connection that was up closes, "connect_error" when a (re)connection
// attempt fails.
//
// jszmq on Node never listens for its WebSocket's 'error' event, so a refused (re)connection
// throws out of `ws` and the endpoint never reconnects (its close handler is skipped). The
// patch below adds that listener; everything else is jszmq as published.

import { createHash } from "node:crypto";
import { createRequire } from "node:module";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";

// Loaded through require so that `deno check tests/` does not resolve bare specifiers; Node
// resolves them from tests/peers/node_modules.
const require = createRequire(import.meta.url);
const zmq = require("jszmq");
const Endpoint = require("jszmq/lib/src/webSocketEndpoint").default;

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

function fail(message) {
  out({ error: message });
  process.exit(1);
}

const originalOnClose = Endpoint.prototype.onClose;
Endpoint.prototype.onClose = function onClose(...args) {
  // Only for a connection that was up: a failed attempt is reported as connect_error.
  if (this.state === 3) out({ event: "disconnect" });
  return originalOnClose.apply(this, args);
};

const originalConnect = Endpoint.prototype.connect;
Endpoint.prototype.connect = function connect() {
  originalConnect.call(this);
  this.socket?.on?.("error", (error) => out({ event: "connect_error", error: String(error) }));
};

let args;
try {
  ({ values: args } = parseArgs({
    options: {
      type: { type: "string" },
      bind: { type: "string" },
      connect: { type: "string" },
      "routing-id": { type: "string" },
      echo: { type: "boolean", default: false },
      // Accepted for zmq_peer.mjs's command lines: events are always printed.
      monitor: { type: "boolean", default: false },
    },
    strict: true,
  }));
} catch (err) {
  fail(String(err?.message ?? err));
}
if (args.type !== "dealer" && args.type !== "router") fail("--type must be dealer or router");
if ((args.bind === undefined) === (args.connect === undefined)) {
  fail("give exactly one of --bind EP / --connect EP");
}

const sock = args.type === "router" ? new zmq.Router() : new zmq.Dealer();
if (args["routing-id"] !== undefined) sock.options.routingId = args["routing-id"];

const received = [];
const waiting = [];
sock.on("message", (...frames) => {
  if (args.echo) {
    sock.send(frames);
    return;
  }
  const waiter = waiting.shift();
  if (waiter) waiter(frames);
  else received.push(frames);
});

let endpoint = args.bind ?? args.connect;
try {
  if (args.bind !== undefined) {
    sock.bind(args.bind);
    // jszmq does not report the port it got for port 0: its listener's ws server knows it.
    const server = sock.binds[sock.binds.length - 1].server;
    await new Promise((resolve, reject) => {
      server.once("listening", resolve);
      server.once("error", reject);
    });
    const url = new URL(args.bind);
    url.port = String(server.address().port);
    endpoint = url.href.replace(/\/$/, "");
  } else {
    sock.connect(args.connect);
  }
} catch (err) {
  fail(`${args.bind !== undefined ? "bind" : "connect"} ${endpoint}: ${err?.message ?? err}`);
}
out({ ready: true, endpoint });

function receive(timeout) {
  if (received.length > 0) return Promise.resolve(received.shift());
  return new Promise((resolve) => {
    const waiter = (frames) => {
      clearTimeout(timer);
      resolve(frames);
    };
    const timer = timeout >= 0
      ? setTimeout(() => {
        waiting.splice(waiting.indexOf(waiter), 1);
        resolve(null);
      }, timeout)
      : undefined;
    waiting.push(waiter);
  });
}

function frameList(op) {
  if (op.op === "send") return op.frames.map((f) => Buffer.from(f, "base64"));
  return op.frames.map(({ size, byte }) => Buffer.alloc(size, byte));
}

async function handle(op) {
  switch (op?.op) {
    case "send":
    case "send_fill":
      sock.send(frameList(op));
      return { ok: true };
    case "recv":
    case "recv_summary": {
      const frames = await receive(typeof op.timeout === "number" ? op.timeout : -1);
      if (frames === null) return { error: "timeout" };
      if (op.op === "recv") return { frames: frames.map((f) => Buffer.from(f).toString("base64")) };
      return {
        sizes: frames.map((f) => f.length),
        sha256: frames.map((f) => createHash("sha256").update(f).digest("hex")),
      };
    }
    case "close":
      return { ok: true };
    default:
      return { error: `unknown op ${JSON.stringify(op?.op)}` };
  }
}

function shutdown() {
  // jszmq's send is synchronous into `ws`, which has written everything by now; its servers
  // would keep the loop alive.
  sock.close();
  process.exit(0);
}

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  if (line.trim() === "") continue;
  let op;
  try {
    op = JSON.parse(line);
  } catch {
    out({ error: "not JSON" });
    continue;
  }
  out(await handle(op).catch((err) => ({ error: String(err?.message ?? err) })));
  if (op?.op === "close") shutdown();
}
shutdown();
