/**
 * Drives a real libzmq socket in another process (pyzmq, or zeromq.js under Node) through the
 * JSON-lines protocol of tests/peers/zmq_peer.{py,mjs}.
 *
 * @module
 */

import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** Which peer implementation runs: libzmq through pyzmq or zeromq.js, or jszmq (ws only). */
export type PeerKind = "pyzmq" | "zeromq.js" | "jszmq";

const PY = "/usr/bin/python3";
const PY_PEER = fileURLToPath(new URL("./peers/zmq_peer.py", import.meta.url));
/** zmq_peer.py with CURVE, PLAIN and a ZAP handler (pyzmq only). */
export const SECURE_PY_PEER: string = fileURLToPath(
  new URL("./peers/secure_peer.py", import.meta.url),
);
const JS_PEER = fileURLToPath(new URL("./peers/zmq_peer.mjs", import.meta.url));
const JS_MODULES = fileURLToPath(new URL("./peers/node_modules/zeromq", import.meta.url));
const JSZMQ_PEER = fileURLToPath(new URL("./peers/jszmq_peer.mjs", import.meta.url));
const JSZMQ_MODULES = fileURLToPath(new URL("./peers/node_modules/jszmq", import.meta.url));

/** Why a kind of peer cannot run here, or undefined when it can. */
export function peerUnavailable(kind: PeerKind): string | undefined {
  if (kind === "pyzmq") {
    const probe = spawnSync(PY, ["-c", "import zmq, msgpack"], { stdio: "ignore" });
    return probe.status === 0
      ? undefined
      : "pyzmq missing: apt-get install -y python3-zmq python3-msgpack (CI installs it)";
  }
  if (kind === "jszmq" && !existsSync(JSZMQ_MODULES)) {
    return "jszmq missing: npm ci --prefix tests/peers";
  }
  if (kind === "zeromq.js" && !existsSync(JS_MODULES)) {
    return "zeromq.js missing: npm install --prefix tests/peers";
  }
  const node = spawnSync("node", ["--version"], { stdio: "ignore" });
  return node.status === 0 ? undefined : "node is not on PATH (zeromq.js runs under Node)";
}

/** A running peer. */
export interface Peer {
  /** The endpoint it bound or connected. */
  readonly endpoint: string;
  /** Monitor events seen so far (`--monitor`), names normalised to zeromq.js's. */
  readonly events: Array<{ event: string; [key: string]: unknown }>;
  /** Sends one op and waits for its answer. */
  op(request: Record<string, unknown>): Promise<Record<string, unknown>>;
  /** Closes the peer's socket and waits for the process to end. */
  close(): Promise<void>;
}

const EVENT_NAMES: Record<string, string> = {
  connected: "connect",
  accepted: "accept",
  disconnected: "disconnect",
  handshake_succeeded: "handshake",
  handshake_failed_protocol: "handshake:error:protocol",
};

/**
 * Starts a peer with the given command-line options and waits for its ready line. A pyzmq peer
 * may run another script of the same protocol (`SECURE_PY_PEER`).
 */
export function startPeer(kind: PeerKind, args: string[], pyScript = PY_PEER): Promise<Peer> {
  const child: ChildProcess = kind === "pyzmq"
    ? spawn(PY, [pyScript, ...args], { stdio: ["pipe", "pipe", "inherit"] })
    : spawn("node", [kind === "jszmq" ? JSZMQ_PEER : JS_PEER, ...args], {
      stdio: ["pipe", "pipe", "inherit"],
    });
  const events: Peer["events"] = [];
  const waiting: Array<(answer: Record<string, unknown>) => void> = [];
  let buffered = "";
  let onReady: ((answer: Record<string, unknown>) => void) | null = null;
  const ready = new Promise<Record<string, unknown>>((resolve, reject) => {
    onReady = resolve;
    child.once(
      "exit",
      (code) => reject(new Error(`${kind} peer exited with ${code} before ready`)),
    );
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.stdout!.setEncoding("utf8");
  child.stdout!.on("data", (text: string) => {
    buffered += text;
    let newline: number;
    while ((newline = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, newline).trim();
      buffered = buffered.slice(newline + 1);
      if (line === "") continue;
      const message = JSON.parse(line);
      if ("event" in message) {
        message.event = EVENT_NAMES[message.event] ?? message.event;
        events.push(message);
      } else if (onReady) {
        const resolve = onReady;
        onReady = null;
        resolve(message);
      } else {
        waiting.shift()?.(message);
      }
    }
  });
  return ready.then((first) => {
    if (first.error) throw new Error(`${kind} peer failed to start: ${first.error}`);
    return {
      endpoint: first.endpoint as string,
      events,
      op(request) {
        return new Promise((resolve) => {
          waiting.push(resolve);
          child.stdin!.write(JSON.stringify(request) + "\n");
        });
      },
      async close() {
        if (child.exitCode === null) {
          child.stdin!.end(JSON.stringify({ op: "close" }) + "\n");
          const timer = setTimeout(() => child.kill("SIGKILL"), 3000);
          await exited;
          clearTimeout(timer);
        }
      },
    };
  });
}

/** Base64 of bytes, for the peer protocol. */
export function b64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

/** Bytes of base64 text. */
export function unb64(text: string): Uint8Array {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

/** Resolves with `promise`, or rejects after `ms` with a message naming `what`. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
