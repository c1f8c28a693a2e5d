/**
 * Drives a real ZeroMQ socket in another process (libzmq through pyzmq or zeromq.js under Node,
 * or jszmq under Node for ws://) through the JSON-lines protocol of
 * tests/peers/zmq_peer.{py,mjs} and jszmq_peer.mjs. Every wait is bounded.
 *
 * @module
 */

import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { jszmqMissing, PYTHON, pyzmqMissing, withTimeout, zeromqMissing } from "./_helpers.ts";

/** Which peer implementation runs: libzmq through pyzmq or zeromq.js, or jszmq (ws only). */
export type PeerKind = "pyzmq" | "zeromq.js" | "jszmq";

const PY_PEER = fileURLToPath(new URL("./peers/zmq_peer.py", import.meta.url));
/** zmq_peer.py with CURVE, PLAIN and a ZAP handler (pyzmq only). */
export const SECURE_PY_PEER: string = fileURLToPath(
  new URL("./peers/secure_peer.py", import.meta.url),
);
const JS_PEER = fileURLToPath(new URL("./peers/zmq_peer.mjs", import.meta.url));
const JSZMQ_PEER = fileURLToPath(new URL("./peers/jszmq_peer.mjs", import.meta.url));

/** How long a peer may take to start and print its ready line. */
const START_MS = 20_000;
/** How long an op may take beyond the timeout it carries (`timeout` in ms), if any. */
const OP_MARGIN_MS = 10_000;

/** Why a kind of peer cannot run here (for a test's `skip`), or false when it can. */
export function peerMissing(kind: PeerKind): string | false {
  if (kind === "pyzmq") return pyzmqMissing();
  return kind === "jszmq" ? jszmqMissing() : zeromqMissing();
}

/** A running peer. */
export interface Peer {
  /** The endpoint it bound or connected. */
  readonly endpoint: string;
  /** Monitor events seen so far (`--monitor`), names normalised to zeromq.js's. */
  readonly events: Array<{ event: string; [key: string]: unknown }>;
  /** Sends one op and waits (bounded: its `timeout` plus a margin) for its answer. */
  op(request: Record<string, unknown>): Promise<Record<string, unknown>>;
  /** Closes the peer's socket and waits (bounded) for the process to end. */
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
 * Starts a peer with the given command-line options and waits (bounded) for its ready line. A
 * pyzmq peer may run another script of the same protocol (`SECURE_PY_PEER`).
 */
export async function startPeer(
  kind: PeerKind,
  args: string[],
  pyScript = PY_PEER,
): Promise<Peer> {
  const child: ChildProcess = kind === "pyzmq"
    ? spawn(PYTHON, [pyScript, ...args], { stdio: ["pipe", "pipe", "inherit"] })
    : spawn("node", [kind === "jszmq" ? JSZMQ_PEER : JS_PEER, ...args], {
      stdio: ["pipe", "pipe", "inherit"],
    });
  const events: Peer["events"] = [];
  const waiting: Array<(answer: Record<string, unknown>) => void> = [];
  let buffered = "";
  let onReady: ((answer: Record<string, unknown>) => void) | null = null;
  const exited = new Promise<void>((resolve) => {
    child.once("exit", () => resolve());
    child.once("error", () => resolve());
  });
  const ready = new Promise<Record<string, unknown>>((resolve, reject) => {
    onReady = resolve;
    child.once(
      "exit",
      (code) => reject(new Error(`${kind} peer exited with ${code} before ready`)),
    );
    child.once("error", (error) => reject(new Error(`${kind} peer did not start: ${error}`)));
  });
  child.stdin!.on("error", () => {});
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
  const kill = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  };
  let first: Record<string, unknown>;
  try {
    first = await withTimeout(ready, START_MS, `${kind} peer ready line (${args.join(" ")})`);
    if (first.error) throw new Error(`${kind} peer failed to start: ${first.error}`);
  } catch (error) {
    kill();
    throw error;
  }
  return {
    endpoint: first.endpoint as string,
    events,
    op(request) {
      const limit = (typeof request.timeout === "number" ? request.timeout : 0) + OP_MARGIN_MS;
      return withTimeout(
        new Promise((resolve) => {
          waiting.push(resolve);
          child.stdin!.write(JSON.stringify(request) + "\n");
        }),
        limit,
        `${kind} peer op ${JSON.stringify(request).slice(0, 80)}`,
      );
    },
    async close() {
      if (child.exitCode === null && child.signalCode === null) {
        child.stdin!.end(JSON.stringify({ op: "close" }) + "\n");
        await withTimeout(exited, 3000, `${kind} peer exit`).catch(() => {
          kill();
          return withTimeout(exited, 5000, `${kind} peer exit after SIGKILL`);
        });
      }
    },
  };
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
