#!/usr/bin/env node
// A remote-controlled libzmq socket (through zeromq.js 6) for interop tests.
//
// The Deno tests spawn this under Node, then drive it with one JSON object per
// line on stdin; every line it prints on stdout is one JSON object. A Python
// twin (pyzmq) speaks the same protocol, so tests can swap one for the other.
//
//   node tests/peers/zmq_peer.mjs --type dealer|router (--bind EP | --connect EP)
//        [--routing-id STR | --routing-id hex:ABCD] [--heartbeat-ivl MS]
//        [--heartbeat-timeout MS] [--heartbeat-ttl MS] [--router-mandatory]
//        [--linger MS] [--echo] [--monitor] [--maxmsgsize N]
//
// First line out: {"ready":true,"endpoint":"<last endpoint, real port>"}.
// If start-up fails, the only line out is {"error":"..."} and the exit code is 1.
//
// Ops in (answered one at a time, in order; answers carry no "event" key):
//   {"op":"send","frames":["<base64>",...],"timeout":MS?}
//       -> {"ok":true} | {"error":"..."}
//   {"op":"send_fill","frames":[{"size":N,"byte":B},...],"timeout":MS?}
//       -> {"ok":true} | {"error":"..."}
//   {"op":"recv","timeout":MS}
//       -> {"frames":["<base64>",...]} | {"error":"timeout"}
//   {"op":"recv_summary","timeout":MS}
//       -> {"sizes":[...],"sha256":["<hex>",...]} | {"error":"timeout"}
//   {"op":"close"} -> {"ok":true}, then exit 0
// EOF on stdin closes the socket and exits 0. A recv without "timeout" waits
// forever; a send waits at most "timeout" ms (default 5000) while the socket
// cannot take the message, then answers {"error":"EAGAIN: ..."}. Errors from
// libzmq read "CODE: text", e.g. "EHOSTUNREACH: Host unreachable".
//
// --echo sends every received message straight back (a ROUTER's id frame routes
// it back to its sender); recv ops then answer with an error, and an echo that
// cannot be sent prints {"event":"echo_failed","error":"..."}.
// --monitor prints {"event":"<zeromq.js event type>","endpoint":"..."} lines
// from the socket's monitor: bind, accept, connect, connect:delay, connect:retry,
// handshake, disconnect, close, handshake:error:protocol (with "error" and
// "protocol_error": "ZMTP_..."), ... Error events carry "error": "CODE: text".

import { createHash } from "node:crypto";
import { createRequire } from "node:module";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";

// Loaded through require rather than `import "zeromq"` so that `deno check tests/`
// does not try to resolve the bare specifier; Node resolves it from
// tests/peers/node_modules (`npm install --prefix tests/peers`).
const zmq = createRequire(import.meta.url)("zeromq");

// A send op waits this long by default while the socket cannot take the message,
// so that a test never hangs on a send; "timeout" in the op overrides it.
const DEFAULT_SEND_TIMEOUT_MS = 5000;
const ECHO_SEND_TIMEOUT_MS = 10000;

function out(obj) {
  // stdout is a pipe when driven by a test; Node writes pipes synchronously on
  // Linux, so a line printed just before process.exit() is not lost.
  process.stdout.write(JSON.stringify(obj) + "\n");
}

function fail(message) {
  out({ error: message });
  process.exit(1);
}

function errorText(err) {
  if (err && err.code && err.message && !err.message.startsWith(err.code)) {
    return `${err.code}: ${err.message}`;
  }
  return String(err?.message ?? err);
}

function intArg(name, value) {
  if (value === undefined) return undefined;
  if (!/^-?\d+$/.test(value)) {
    fail(`--${name} expects an integer, got ${JSON.stringify(value)}`);
  }
  return Number(value);
}

/** `hex:0001ff` gives raw bytes; anything else is taken as UTF-8 text. */
function routingIdArg(value) {
  if (value === undefined) return undefined;
  if (value.startsWith("hex:")) {
    const hex = value.slice(4);
    if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) {
      fail(`--routing-id hex: needs an even number of hex digits: ${hex}`);
    }
    return Buffer.from(hex, "hex");
  }
  return Buffer.from(value, "utf8");
}

let args;
try {
  ({ values: args } = parseArgs({
    options: {
      type: { type: "string" },
      bind: { type: "string" },
      connect: { type: "string" },
      "routing-id": { type: "string" },
      "heartbeat-ivl": { type: "string" },
      "heartbeat-timeout": { type: "string" },
      "heartbeat-ttl": { type: "string" },
      "router-mandatory": { type: "boolean", default: false },
      linger: { type: "string", default: "0" },
      echo: { type: "boolean", default: false },
      monitor: { type: "boolean", default: false },
      maxmsgsize: { type: "string" },
    },
    strict: true,
    allowPositionals: false,
  }));
} catch (err) {
  fail(errorText(err));
}

if (args.type !== "dealer" && args.type !== "router") {
  fail("--type must be dealer or router");
}
if ((args.bind === undefined) === (args.connect === undefined)) {
  fail("give exactly one of --bind EP / --connect EP");
}
if (args["router-mandatory"] && args.type !== "router") {
  fail("--router-mandatory needs --type router");
}

// Every option goes to the constructor: zeromq.js warns when most options are
// set after bind/connect, because libzmq only applies them to new connections.
const options = { linger: intArg("linger", args.linger) };
const routingId = routingIdArg(args["routing-id"]);
// zeromq.js passes a Buffer to zmq_setsockopt as raw bytes; a string would be
// UTF-8 encoded, which cannot express ids like 0x00 0xff.
if (routingId !== undefined) options.routingId = routingId;
const hbIvl = intArg("heartbeat-ivl", args["heartbeat-ivl"]);
const hbTimeout = intArg("heartbeat-timeout", args["heartbeat-timeout"]);
const hbTtl = intArg("heartbeat-ttl", args["heartbeat-ttl"]);
const maxMsgSize = intArg("maxmsgsize", args.maxmsgsize);
if (hbIvl !== undefined) options.heartbeatInterval = hbIvl;
if (hbTimeout !== undefined) options.heartbeatTimeout = hbTimeout;
if (hbTtl !== undefined) options.heartbeatTimeToLive = hbTtl;
if (maxMsgSize !== undefined) options.maxMessageSize = maxMsgSize;
if (args["router-mandatory"]) options.mandatory = true;

let sock;
try {
  sock = new (args.type === "router" ? zmq.Router : zmq.Dealer)(options);
} catch (err) {
  fail(`socket options: ${errorText(err)}`);
}

// Monitor lines that arrive before the ready line are held back, so that the
// ready line is always the first line a driver reads.
let ready = false;
const heldEvents = [];

function printEvent(ev) {
  const line = { event: ev.type, endpoint: ev.address ?? "" };
  if (ev.error) line.error = errorText(ev.error);
  // Same key and text as the Python twin: libzmq's ZMQ_PROTOCOL_ERROR_* name
  // without its prefix, e.g. "ZMTP_MECHANISM_MISMATCH".
  const code = ev.error?.code;
  if (ev.type === "handshake:error:protocol" && typeof code === "string") {
    line.protocol_error = code.replace(/^ERR_/, "");
  }
  if (ready) out(line);
  else heldEvents.push(line);
}

if (args.monitor) {
  // sock.events must be touched before bind/connect to see the bind/connect events.
  (async () => {
    for await (const ev of sock.events) printEvent(ev);
  })().catch((err) => process.stderr.write(`monitor: ${errorText(err)}\n`));
}

const endpointArg = args.bind ?? args.connect;
try {
  if (args.bind !== undefined) await sock.bind(args.bind);
  else sock.connect(args.connect);
} catch (err) {
  fail(
    `${args.bind !== undefined ? "bind" : "connect"} ${endpointArg}: ${errorText(err)}`,
  );
}

// lastEndpoint carries the real port for tcp://host:* or :0 and the real path for ipc://*.
out({ ready: true, endpoint: sock.lastEndpoint ?? endpointArg });
ready = true;
for (const line of heldEvents.splice(0)) out(line);

let closing = false;

function shutdown() {
  closing = true;
  try {
    sock.close();
  } catch {
    // already closed
  }
  lines.close();
  process.stdin.destroy();
  // No process.exit() here: it skips libzmq's context termination, so messages
  // still queued would be dropped whatever --linger says. Ending the event loop
  // lets zeromq.js terminate the context at exit, which waits up to the linger
  // time. The unref'd timer only fires if something else keeps the loop alive.
  setTimeout(() => process.exit(0), Math.max(0, options.linger) + 1000).unref();
}

if (args.echo) {
  (async () => {
    for await (const msg of sock) {
      // e.g. EHOSTUNREACH with --router-mandatory when the sender is gone: report, keep echoing.
      const res = await send(msg, ECHO_SEND_TIMEOUT_MS).catch((e) => ({
        error: errorText(e),
      }));
      if (res.error) out({ event: "echo_failed", error: res.error });
    }
  })().catch((err) => {
    if (!closing) process.stderr.write(`echo loop: ${errorText(err)}\n`);
  });
}

// zeromq.js allows one send in progress per socket (a second one fails with
// EBUSY); with --echo, op sends and echoes take turns through this chain.
let sendTurn = Promise.resolve();

/**
 * Sends one multipart message, waiting at most `timeout` ms while the socket
 * cannot take it (a DEALER with no peer, or a full high-water mark).
 */
function send(frames, timeout) {
  const result = sendTurn.then(() => sendNow(frames, timeout));
  sendTurn = result.catch(() => {});
  return result;
}

async function sendNow(frames, timeout) {
  if (frames.length === 0) {
    return { error: "a message needs at least one frame" };
  }
  // Like receiveTimeout, sendTimeout is read when send() is called.
  sock.sendTimeout = timeout >= 0 ? timeout : -1;
  try {
    await sock.send(frames);
    return { ok: true };
  } catch (err) {
    if (err.code !== "EAGAIN") throw err;
    return {
      error: "EAGAIN: send would block (no peer or high-water mark reached)",
    };
  }
}

/** A "timeout" field of an op: a number of ms, negative for no limit. */
function msArg(value, fallback) {
  if (value === undefined || value === null) return fallback;
  if (typeof value !== "number" || !Number.isFinite(value)) {
    throw new Error(`bad timeout ${JSON.stringify(value)}`);
  }
  return Math.floor(value);
}

/** Receives one message, or returns null after `timeout` ms (negative: wait forever). */
async function receive(timeout) {
  // zeromq.js applies receiveTimeout in its own poller, so it may be changed
  // between calls; a timed-out receive takes nothing off the socket.
  sock.receiveTimeout = timeout >= 0 ? timeout : -1;
  try {
    return await sock.receive();
  } catch (err) {
    if (err.code === "EAGAIN") return null;
    throw err;
  }
}

function fillFrames(specs) {
  if (!Array.isArray(specs)) throw new Error("frames must be an array");
  return specs.map((spec) => {
    const { size, byte } = spec ?? {};
    if (!Number.isInteger(size) || size < 0) {
      throw new Error(`bad size ${JSON.stringify(size)}`);
    }
    if (!Number.isInteger(byte) || byte < 0 || byte > 255) {
      throw new Error(`bad byte ${JSON.stringify(byte)}`);
    }
    return Buffer.alloc(size, byte);
  });
}

function base64Frames(frames) {
  if (!Array.isArray(frames) || !frames.every((f) => typeof f === "string")) {
    throw new Error("frames must be an array of base64 strings");
  }
  return frames.map((f) => Buffer.from(f, "base64"));
}

async function handle(req) {
  switch (req?.op) {
    case "send":
      return await send(
        base64Frames(req.frames),
        msArg(req.timeout, DEFAULT_SEND_TIMEOUT_MS),
      );
    case "send_fill":
      return await send(
        fillFrames(req.frames),
        msArg(req.timeout, DEFAULT_SEND_TIMEOUT_MS),
      );
    case "recv":
    case "recv_summary": {
      if (args.echo) return { error: "recv is not available with --echo" };
      const frames = await receive(msArg(req.timeout, -1));
      if (frames === null) return { error: "timeout" };
      if (req.op === "recv") {
        return { frames: frames.map((f) => f.toString("base64")) };
      }
      return {
        sizes: frames.map((f) => f.length),
        sha256: frames.map((f) => createHash("sha256").update(f).digest("hex")),
      };
    }
    case "close":
      return { ok: true };
    default:
      return { error: `unknown op ${JSON.stringify(req?.op)}` };
  }
}

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  if (line.trim() === "") continue;
  let req;
  try {
    req = JSON.parse(line);
  } catch {
    out({ error: "bad json" });
    continue;
  }
  let res;
  try {
    res = await handle(req);
  } catch (err) {
    res = { error: errorText(err) };
  }
  out(res);
  if (req?.op === "close") break;
}
shutdown(); // after "close", or EOF on stdin
