/**
 * The browser adapter: what a web page offers the library. Pages cannot listen, start
 * processes or open TCP connections, so the only transport is the page's `WebSocket` (`ws://`,
 * `wss://`); timers are the page's. The browser build puts `runtime.browser.ts` in place of
 * `runtime.ts`, and with it this file.
 *
 * @module
 */

import { type Endpoint, formatEndpoint, webSocketUrl } from "./endpoint.ts";
import type {
  AsyncContext,
  ChildProcess,
  HttpServer,
  Listener,
  Runtime,
  Stream,
  Thread,
  WebSocketDialOptions,
} from "./runtime_types.ts";
import { WebSocketError } from "./ws_errors.ts";
import { turnQueue } from "./turn.ts";
import { type WebSocketLike, WebSocketMessageStream } from "./ws_stream.ts";

function unavailable(what: string): Error {
  return new Error(`${what} is not available in a browser`);
}

function connect(endpoint: Endpoint, ws?: WebSocketDialOptions): Promise<Stream> {
  if (endpoint.transport !== "ws" && endpoint.transport !== "wss") {
    return Promise.reject(
      unavailable(`${formatEndpoint(endpoint)} (${endpoint.transport}://)`),
    );
  }
  if (!ws) return Promise.reject(new TypeError("Connecting over WebSocket needs ws options"));
  if (ws.caFile) {
    return Promise.reject(
      new TypeError("caFile is not available in a browser: it trusts its own CAs"),
    );
  }
  const url = webSocketUrl(endpoint);
  return new Promise((resolve, reject) => {
    let socket: WebSocket;
    try {
      socket = new WebSocket(url, [...ws.protocols]);
    } catch (error) {
      reject(error);
      return;
    }
    socket.binaryType = "arraybuffer";
    socket.onopen = () => {
      const protocol = socket.protocol;
      if (!ws.protocols.includes(protocol)) {
        socket.close();
        reject(
          new WebSocketError(
            "unknown-subprotocol",
            `${url} answered with subprotocol "${protocol}", not one of ours`,
          ),
        );
        return;
      }
      const stream = new WebSocketMessageStream(
        socket as unknown as WebSocketLike,
        `${endpoint.host}:${endpoint.port}`,
        protocol,
      );
      resolve(stream);
    };
    socket.onerror = () => {
      // Browsers give scripts no reason for a failed WebSocket, on purpose.
      reject(
        new Error(
          `Cannot connect to ${url} (a browser gives no reason: check the address, that the ` +
            `hub listens there, and that it allows this page's origin)`,
        ),
      );
    };
  });
}

/**
 * Browsers have no AsyncLocalStorage: the value set by `run` is seen by the code `fn` runs
 * synchronously (a handler up to its first `await`), not after.
 */
function asyncContext<T>(): AsyncContext<T> {
  let current: T | undefined;
  return {
    run<R>(value: T, fn: () => R): R {
      const before = current;
      current = value;
      try {
        return fn();
      } finally {
        current = before;
      }
    },
    get: () => current,
  };
}

/**
 * The end of a turn in a page: a MessageChannel message runs after the microtasks and, unlike
 * `setTimeout(0)`, is not clamped to 4 ms when nested.
 */
function endOfTurn(run: () => void): void {
  const channel = new MessageChannel();
  channel.port1.onmessage = () => {
    channel.port1.close();
    run();
  };
  channel.port2.postMessage(null);
}

/** The browser runtime adapter. */
export const browserRuntime: Runtime = {
  name: "browser",
  listen: (): Promise<Listener> =>
    Promise.reject(
      new Error("A browser cannot bind: connect to a hub's ws:// or wss:// endpoint instead"),
    ),
  connect,
  now: () => performance.now(),
  afterTurn: turnQueue(endOfTurn),
  every(ms, fn) {
    const id = setInterval(fn, ms);
    return () => clearInterval(id);
  },
  onShutdownSignal(handler) {
    // A page's "shutdown" is being left: the closest thing to SIGTERM it gets.
    const onHide = () => handler("pagehide");
    globalThis.addEventListener?.("pagehide", onHide);
    return () => globalThis.removeEventListener?.("pagehide", onHide);
  },
  asyncContext,
  startThread(): Thread {
    throw unavailable("Handler threads (a worker option `threads` above 0)");
  },
  parentPort: () => null,
  spawnScript(): ChildProcess {
    throw unavailable("Starting processes");
  },
  serveHttp: (): Promise<HttpServer> => Promise.reject(unavailable("Serving HTTP")),
  args: () => [],
  cwd: () => globalThis.location?.href ?? "/",
  exit(): never {
    throw unavailable("Ending the process");
  },
  onExit(handler) {
    // A page's end: the closest thing to a process exiting that it gets.
    const onHide = () => handler();
    globalThis.addEventListener?.("pagehide", onHide);
    return () => globalThis.removeEventListener?.("pagehide", onHide);
  },
  pid: () => 0,
  ppid: () => 0,
  processExists: () => false,
  readTextFile: () => Promise.reject(unavailable("Reading files")),
  writeSecretFile: () => Promise.reject(unavailable("Writing files")),
  env: () => undefined,
};
