/**
 * `ws://` and `wss://` for the Node adapter, on the `ws` package (Node 20 has no WebSocket
 * client, and its HTTP server no WebSocket upgrade): a `node:http`/`node:https` server whose
 * upgrades `ws` completes after we checked origin and subprotocol, and `ws`'s client.
 *
 * @module
 */

import { readFileSync } from "node:fs";
import { createServer as createHttpServer, type IncomingMessage } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { Duplex } from "node:stream";
import { clearInterval, setImmediate, setInterval } from "node:timers";
// @ts-types="./ws_package.d.ts"
import { WebSocket, WebSocketServer } from "ws";
import { formatEndpoint, type WebSocketEndpoint, webSocketUrl } from "./endpoint.ts";
import type {
  Listener,
  MessageStream,
  WebSocketDialOptions,
  WebSocketListenOptions,
} from "./runtime_types.ts";
import { CloseCode, closeError, WebSocketError } from "./ws_errors.ts";
import { chooseProtocol, originAllowed } from "./ws_handshake.ts";

/**
 * Every this many ms a WebSocket that sent nothing since the last check is pinged, and one still
 * silent at the next check is dropped: what Deno's server does on its own (its `idleTimeout`),
 * so that a peer that vanished without closing (a laptop asleep) is noticed on both runtimes.
 */
const KEEPALIVE_MS = 30_000;

/** A `ws` WebSocket as a {@linkcode MessageStream}, with real pause and resume. */
class NodeWebSocketStream implements MessageStream {
  readonly kind = "messages" as const;
  readonly remote: string;
  readonly protocol: string;
  #socket: WebSocket;
  #onMessage: ((message: Uint8Array) => void) | null = null;
  #onEnd: ((error?: Error) => void) | null = null;
  #ended = false;
  #error: Error | undefined;
  #closedByUs = false;
  /** Writes not yet settled, failed if the socket closes first. */
  #writers = new Set<(error: Error) => void>();
  #heard = true;
  #keepalive: ReturnType<typeof setInterval>;

  constructor(socket: WebSocket, remote: string, protocol: string) {
    this.#socket = socket;
    this.remote = remote;
    this.protocol = protocol;
    // Paused until start(): nothing is read before the owner listens.
    socket.pause();
    socket.on("message", (data: Buffer, isBinary: boolean) => {
      this.#heard = true;
      this.#receive(data, isBinary);
    });
    // libzmq answers a ping with a binary message rather than a pong: any traffic counts.
    socket.on("pong", () => (this.#heard = true));
    this.#keepalive = setInterval(() => this.#checkAlive(), KEEPALIVE_MS);
    this.#keepalive.unref();
    // 'error' (a limit `ws` enforces, a framing error) comes before 'close': keep the first.
    socket.on("error", (error: Error & { code?: string }) => {
      this.#error ??= error.code === "WS_ERR_UNSUPPORTED_MESSAGE_LENGTH"
        ? new WebSocketError("message-too-large", error.message)
        : new WebSocketError("websocket-protocol", error.message);
    });
    socket.on("close", (code: number, reason: Buffer) => {
      this.#end(this.#error ?? closeError(code, reason.toString(), this.#closedByUs));
    });
  }

  start(onMessage: (message: Uint8Array) => void, onEnd: (error?: Error) => void): void {
    this.#onMessage = onMessage;
    this.#onEnd = onEnd;
    if (this.#ended) queueMicrotask(() => this.#report());
    else this.#socket.resume();
  }

  pause(): void {
    if (!this.#ended) this.#socket.pause();
  }

  resume(): void {
    if (!this.#ended) this.#socket.resume();
  }

  /** Sends the messages; resolves once the last one is written to the system. */
  write(messages: Uint8Array[]): Promise<void> {
    const socket = this.#socket;
    if (this.#ended || socket.readyState !== WebSocket.OPEN) {
      return Promise.reject(this.#error ?? new Error(`WebSocket to ${this.remote} is closed`));
    }
    if (messages.length === 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.#writers.add(reject);
      const last = messages.length - 1;
      for (let i = 0; i < last; i++) socket.send(messages[i]);
      socket.send(messages[last], (error?: Error) => {
        if (!this.#writers.delete(reject)) return;
        if (error) reject(error);
        else resolve();
      });
    });
  }

  close(): void {
    if (this.#closedByUs) return;
    this.#closedByUs = true;
    this.#socket.close(CloseCode.normal);
    // Our own close is an orderly end, reported now rather than after the closing handshake.
    this.#end(undefined);
  }

  #checkAlive(): void {
    if (this.#heard) {
      this.#heard = false;
      this.#socket.ping();
      return;
    }
    this.#error = new WebSocketError(
      "heartbeat-timeout",
      `peer silent for ${KEEPALIVE_MS / 1000} s after a WebSocket ping`,
    );
    this.#socket.terminate();
    this.#end(this.#error);
  }

  #receive(data: Buffer, isBinary: boolean): void {
    if (this.#ended) return;
    if (!isBinary) {
      this.#error = new WebSocketError(
        "text-frame",
        "peer sent a text message; ZWS 2.0 carries binary messages only",
      );
      this.#socket.close(CloseCode.unsupportedData, "binary messages only");
      this.#end(this.#error);
      return;
    }
    this.#onMessage?.(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  }

  #end(error: Error | undefined): void {
    if (this.#ended) return;
    this.#ended = true;
    clearInterval(this.#keepalive);
    const failure = error ?? new Error(`WebSocket to ${this.remote} closed`);
    for (const reject of this.#writers) reject(failure);
    this.#writers.clear();
    this.#error = error;
    if (this.#onEnd !== null) this.#report();
  }

  #report(): void {
    const onEnd = this.#onEnd;
    this.#onEnd = null;
    this.#onMessage = null;
    onEnd?.(this.#error);
  }
}

/** Answers an upgrade request with an HTTP error and drops the connection. */
function refuse(socket: Duplex, status: number, text: string): void {
  const body = `${text}\n`;
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? "Error"}\r\nConnection: close\r\n` +
      `Content-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}

const STATUS_TEXT: Record<number, string> = {
  400: "Bad Request",
  403: "Forbidden",
  404: "Not Found",
  408: "Request Timeout",
  426: "Upgrade Required",
};

function remoteOf(from: IncomingMessage | Duplex): string {
  const socket = ("socket" in from ? from.socket : from) as {
    remoteAddress?: string;
    remotePort?: number;
  };
  return `${socket.remoteAddress}:${socket.remotePort}`;
}

/** Listens on a WebSocket endpoint; each upgraded connection becomes a message stream. */
export async function listenWebSocket(
  endpoint: WebSocketEndpoint,
  onStream: (stream: MessageStream) => void,
  options: WebSocketListenOptions,
): Promise<Listener> {
  const tls = endpoint.transport === "wss";
  if (tls && (!options.certFile || !options.keyFile)) {
    throw new TypeError(`Binding ${formatEndpoint(endpoint)} needs certFile and keyFile`);
  }
  // A client that never completes its upgrade request is dropped after the handshake timeout;
  // Node checks for such connections every connectionsCheckingInterval.
  const timeouts = options.handshakeTimeout > 0
    ? {
      headersTimeout: options.handshakeTimeout,
      requestTimeout: options.handshakeTimeout,
      connectionsCheckingInterval: Math.min(1000, Math.max(50, options.handshakeTimeout / 4)),
    }
    : { headersTimeout: 0, requestTimeout: 0 };
  const server = tls
    ? createHttpsServer({
      ...timeouts,
      cert: readFileSync(options.certFile!),
      key: readFileSync(options.keyFile!),
    })
    : createHttpServer(timeouts);
  server.on("clientError", (error: Error & { code?: string }, socket: Duplex) => {
    const remote = remoteOf(socket);
    if (error.code === "ERR_HTTP_REQUEST_TIMEOUT") {
      options.onRejected(
        remote,
        "handshake-timeout",
        `HTTP upgrade request not complete within ${options.handshakeTimeout} ms`,
      );
      return refuse(socket, 408, "Request timeout");
    }
    if (error.code === "ECONNRESET" || !socket.writable) return void socket.destroy();
    options.onRejected(remote, "bad-request", `malformed HTTP request: ${error.message}`);
    refuse(socket, 400, "Bad request");
  });
  const wss = new WebSocketServer({
    noServer: true,
    clientTracking: false,
    perMessageDeflate: false,
    maxPayload: options.maxMessageSize,
  });
  server.on("request", (_request, response) => {
    response.writeHead(426, { "content-type": "text/plain" });
    response.end("This is a ZeroMQ WebSocket endpoint (ZWS 2.0): connect with WebSocket\n");
  });
  server.on("upgrade", (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on("error", () => {});
    const remote = remoteOf(request);
    const path = new URL(request.url ?? "/", "http://host").pathname;
    if (path !== endpoint.path) {
      options.onRejected(remote, "unknown-path", `no WebSocket endpoint at ${path}`);
      return refuse(socket, 404, `No endpoint at ${path}`);
    }
    const origin = request.headers.origin;
    if (!originAllowed(origin, request.headers.host, options.origins)) {
      options.onRejected(remote, "origin-not-allowed", `origin ${origin} is not allowed`);
      return refuse(socket, 403, `Origin ${origin} is not allowed`);
    }
    const offered = request.headers["sec-websocket-protocol"];
    // `ws` would take the first one offered: we choose, best first, among all of them.
    const protocol = chooseProtocol(offered, options.protocols);
    if (protocol === null) {
      const reason = `offered subprotocols "${offered ?? ""}", expected one of ${
        options.protocols.join(", ")
      }`;
      options.onRejected(remote, "unknown-subprotocol", reason);
      return refuse(socket, 400, `Unsupported WebSocket subprotocol: ${reason}`);
    }
    // `ws` refuses a protocol header that is not a list of HTTP tokens, which libzmq's
    // "ZWS2.0/NULL" is not: it gets none, and the 'headers' hook below answers with ours.
    delete request.headers["sec-websocket-protocol"];
    chosen.set(request, protocol);
    wss.handleUpgrade(request, socket, head, (ws) => {
      onStream(new NodeWebSocketStream(ws, remote, protocol));
    });
  });
  const chosen = new WeakMap<IncomingMessage, string>();
  wss.on("headers", (headers: string[], request: IncomingMessage) => {
    const protocol = chosen.get(request);
    if (protocol !== undefined) headers.push(`Sec-WebSocket-Protocol: ${protocol}`);
  });
  await new Promise<void>((resolve, reject) => {
    const onError = (error: Error) => reject(error);
    server.once("error", onError);
    server.listen({ host: endpoint.host, port: endpoint.port }, () => {
      server.off("error", onError);
      resolve();
    });
  });
  let closed = false;
  server.on("error", (error) => {
    if (!closed) console.warn(`[gibbs] accept on ${formatEndpoint(endpoint)} failed: ${error}`);
  });
  const address = server.address();
  return {
    endpoint: { ...endpoint, port: typeof address === "object" && address ? address.port : 0 },
    async close() {
      if (!closed) {
        closed = true;
        // Stops listening; upgraded connections are no longer the server's and stay open.
        server.close();
      }
      await new Promise((resolve) => setImmediate(resolve));
    },
  };
}

/** Connects to a WebSocket endpoint offering `options.protocols`. */
export function connectWebSocket(
  endpoint: WebSocketEndpoint,
  options: WebSocketDialOptions,
): Promise<MessageStream> {
  const url = webSocketUrl(endpoint);
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, [...options.protocols], {
      perMessageDeflate: false,
      maxPayload: options.maxMessageSize,
      ca: options.caFile ? readFileSync(options.caFile) : undefined,
    });
    const onError = (error: Error) => {
      socket.terminate();
      reject(new Error(`Cannot connect to ${url}: ${error.message}`));
    };
    socket.once("error", onError);
    socket.once("open", () => {
      socket.off("error", onError);
      const protocol = socket.protocol;
      if (!options.protocols.includes(protocol)) {
        socket.terminate();
        reject(
          new WebSocketError(
            "unknown-subprotocol",
            `${url} answered with subprotocol "${protocol}", not one of ours`,
          ),
        );
        return;
      }
      resolve(new NodeWebSocketStream(socket, `${endpoint.host}:${endpoint.port}`, protocol));
    });
  });
}
