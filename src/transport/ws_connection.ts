/**
 * A WebSocket over one of the adapters' byte streams (tcp, or tls for `wss://`), both sides of
 * it: the opening handshake, then RFC 6455 framing, as a {@linkcode MessageStream}. Runtime
 * neutral: the Deno and Node adapters give it their byte streams. Doing the protocol here rather
 * than through each runtime's own WebSocket is what lets many small messages leave in one write,
 * reading pause when the owner's queue is full, and a half-sent upgrade request time out, the
 * same way on both runtimes.
 *
 * @module
 */

import { concatBytes } from "../bytes.ts";
import type { ByteStream, MessageStream } from "./runtime_types.ts";
import { CloseCode, closeError, WebSocketError } from "./ws_errors.ts";
import { Opcode, WsFrameDecoder, WsOutBuffer } from "./ws_frame.ts";
import {
  checkUpgradeRequest,
  checkUpgradeResponse,
  errorResponse,
  HandshakeRefusal,
  HttpHeadReader,
  randomKey,
  type UpgradeRequest,
  upgradeRequest,
  upgradeResponse,
} from "./ws_http.ts";

/**
 * Every this many ms a WebSocket that sent nothing since the last check is pinged, and one still
 * silent at the next check is dropped, so that a peer that vanished without closing (a laptop
 * asleep) is noticed even under subprotocols without heartbeats of their own.
 */
export const KEEPALIVE_MS = 30_000;
/** How long a closing connection waits for its close frame to be written. */
const CLOSE_LINGER_MS = 1000;
const EMPTY = new Uint8Array(0);

/** The close code a failure is reported to the peer with. */
function closeCodeOf(error: WebSocketError): number {
  switch (error.code) {
    case "text-frame":
      return CloseCode.unsupportedData;
    case "message-too-large":
      return CloseCode.messageTooBig;
    default:
      return CloseCode.protocolError;
  }
}

/** A close frame's payload: the code, big-endian. */
function closePayload(code: number): Uint8Array {
  return Uint8Array.of(code >>> 8, code & 0xff);
}

type Phase = "handshake" | "open" | "ended";

/**
 * One WebSocket connection. Made by {@linkcode acceptWebSocket} (server side) or
 * {@linkcode openWebSocket} (client side); once the handshake is done it is the message stream.
 */
class WebSocketConnection implements MessageStream {
  readonly kind = "messages" as const;
  readonly remote: string;
  protocol = "";
  #bytes: ByteStream;
  #phase: Phase = "handshake";
  #onHandshakeBytes: (chunk: Uint8Array) => void = () => {};
  #onHandshakeEnd: (error?: Error) => void = () => {};
  #decoder: WsFrameDecoder | null = null;
  #out: WsOutBuffer;
  #server: boolean;
  #maxMessageSize: number;
  #onMessage: ((message: Uint8Array) => void) | null = null;
  #onEnd: ((error?: Error) => void) | null = null;
  #early: Uint8Array[] = [];
  #endError: Error | undefined;
  #writing = false;
  #waiters: Array<{ resolve(): void; reject(error: Error): void }> = [];
  #closeSent = false;
  #heard = true;
  #keepalive: ReturnType<typeof setInterval> | undefined;
  #paused = false;

  constructor(bytes: ByteStream, server: boolean, maxMessageSize: number) {
    this.#bytes = bytes;
    this.remote = bytes.remote;
    this.#server = server;
    this.#maxMessageSize = maxMessageSize;
    this.#out = new WsOutBuffer({ mask: !server });
    bytes.start(
      (chunk) => {
        if (this.#phase === "open") this.#receive(chunk);
        else if (this.#phase === "handshake") this.#onHandshakeBytes(chunk);
      },
      (error) => {
        if (this.#phase === "handshake") this.#onHandshakeEnd(error);
        else this.#end(error);
      },
      () => (this.#phase === "open" ? this.#decoder!.readTarget() : null),
    );
  }

  /** Reads the handshake's HTTP head, passing bytes to `onBytes` until `open()`. */
  handshake(onBytes: (chunk: Uint8Array) => void, onEnd: (error?: Error) => void): void {
    this.#onHandshakeBytes = onBytes;
    this.#onHandshakeEnd = onEnd;
  }

  /** Writes raw bytes (the handshake's HTTP), then optionally closes. */
  writeRaw(bytes: Uint8Array, thenClose = false): Promise<void> {
    const written = this.#bytes.write([bytes]);
    if (thenClose) {
      this.#phase = "ended";
      written.finally(() => this.#bytes.close()).catch(() => {});
    }
    return written;
  }

  /** Drops the connection during the handshake. */
  abort(): void {
    this.#phase = "ended";
    this.#bytes.close();
  }

  /** The handshake is done: frames from now on, starting with the bytes after the head. */
  open(protocol: string, rest: Uint8Array): void {
    this.protocol = protocol;
    this.#decoder = new WsFrameDecoder(
      { masked: this.#server, maxMessageSize: this.#maxMessageSize },
      {
        message: (payload) => {
          if (this.#onMessage !== null) this.#onMessage(payload);
          else {
            // Nobody listens yet: hold it, and stop reading until someone does.
            this.#early.push(payload);
            if (!this.#paused) this.#bytes.pause();
          }
        },
        control: (opcode, payload) => this.#control(opcode, payload),
      },
    );
    this.#phase = "open";
    this.#keepalive = setInterval(() => this.#checkAlive(), KEEPALIVE_MS);
    // Node's timers would keep the process alive; Deno's and browsers' have no unref.
    (this.#keepalive as { unref?: () => void }).unref?.();
    if (rest.length > 0) this.#receive(rest);
  }

  start(onMessage: (message: Uint8Array) => void, onEnd: (error?: Error) => void): void {
    this.#onMessage = onMessage;
    this.#onEnd = onEnd;
    const early = this.#early;
    this.#early = [];
    for (const message of early) {
      if (this.#onMessage === null) break;
      onMessage(message);
    }
    if (this.#phase === "ended") {
      queueMicrotask(() => this.#report());
    } else if (!this.#paused) {
      this.#bytes.resume();
    }
  }

  pause(): void {
    this.#paused = true;
    this.#bytes.pause();
  }

  resume(): void {
    this.#paused = false;
    this.#bytes.resume();
  }

  /** Sends each entry as one binary message; with masking (client side), entries are masked in place. */
  write(messages: Uint8Array[]): Promise<void> {
    if (this.#phase !== "open" || this.#closeSent) {
      return Promise.reject(this.#endError ?? new Error(`WebSocket to ${this.remote} is closed`));
    }
    for (let i = 0; i < messages.length; i++) this.#out.message(messages[i]);
    return new Promise((resolve, reject) => {
      this.#waiters.push({ resolve, reject });
      this.#pump();
    });
  }

  /** Closes: a close frame (1000) goes out, then the connection; the end is reported now. */
  close(): void {
    if (this.#phase !== "open") {
      if (this.#phase === "handshake") this.abort();
      return;
    }
    this.#sendClose(CloseCode.normal);
    this.#end(undefined);
  }

  #receive(chunk: Uint8Array): void {
    this.#heard = true;
    try {
      this.#decoder!.feed(chunk);
    } catch (error) {
      if (!(error instanceof WebSocketError)) throw error;
      this.#sendClose(closeCodeOf(error));
      this.#end(error);
    }
  }

  #control(opcode: number, payload: Uint8Array): void {
    if (opcode === Opcode.ping) {
      if (!this.#closeSent) {
        this.#out.control(Opcode.pong, payload);
        this.#pump();
      }
    } else if (opcode === Opcode.close) {
      const code = payload.length >= 2 ? (payload[0] << 8) | payload[1] : CloseCode.noStatus;
      const reason = new TextDecoder().decode(payload.subarray(2));
      // Answer in kind, then close: the closing handshake of RFC 6455, 5.5.1.
      this.#sendClose(code === CloseCode.noStatus ? CloseCode.normal : code);
      this.#end(closeError(code, reason, false));
    }
    // A pong only counts as traffic.
  }

  #checkAlive(): void {
    if (this.#heard) {
      this.#heard = false;
      this.#out.control(Opcode.ping, EMPTY);
      this.#pump();
      return;
    }
    this.#end(
      new WebSocketError(
        "heartbeat-timeout",
        `peer silent for ${KEEPALIVE_MS / 1000} s after a WebSocket ping`,
      ),
    );
    this.#bytes.close();
  }

  /** Queues our close frame, once, and closes the connection after it is written. */
  #sendClose(code: number): void {
    if (this.#closeSent) return;
    this.#closeSent = true;
    this.#out.control(Opcode.close, closePayload(code));
    this.#pump();
    const timer = setTimeout(() => this.#bytes.close(), CLOSE_LINGER_MS);
    // Closed once everything queued, the close frame included, is written.
    const done = () => {
      clearTimeout(timer);
      this.#bytes.close();
    };
    this.#afterWrites(done);
  }

  #afterWrites(fn: () => void): void {
    if (!this.#writing && this.#out.empty) {
      fn();
      return;
    }
    this.#waiters.push({ resolve: fn, reject: fn });
  }

  #pump(): void {
    if (this.#writing) return;
    const chunks = this.#out.take();
    if (chunks === null) {
      // Nothing more to write: whoever waits for the writes so far is done.
      for (const waiter of this.#waiters.splice(0)) waiter.resolve();
      return;
    }
    const waiters = this.#waiters;
    this.#waiters = [];
    this.#writing = true;
    this.#bytes.write(chunks).then(() => {
      this.#writing = false;
      for (const waiter of waiters) waiter.resolve();
      this.#pump();
    }, (error) => {
      this.#writing = false;
      for (const waiter of waiters) waiter.reject(error);
      for (const waiter of this.#waiters.splice(0)) waiter.reject(error);
      this.#end(error);
      this.#bytes.close();
    });
  }

  #end(error: Error | undefined): void {
    if (this.#phase === "ended") return;
    this.#phase = "ended";
    this.#endError = error;
    clearInterval(this.#keepalive);
    this.#early = [];
    if (this.#onEnd !== null) this.#report();
  }

  #report(): void {
    const onEnd = this.#onEnd;
    this.#onEnd = null;
    this.#onMessage = null;
    onEnd?.(this.#endError);
  }
}

/** What a server decides about an upgrade request (see {@linkcode acceptWebSocket}). */
export interface AcceptOptions {
  /** The request path served. */
  path: string;
  /** Picks the subprotocol for the offer, or null to refuse. */
  chooseProtocol(offered: string | undefined): string | null;
  /** Whether a page of this origin may connect to this host. */
  originAllowed(origin: string | undefined, host: string): boolean;
  /** Largest message accepted, in bytes. */
  maxMessageSize: number;
  /** Milliseconds the client has to send its whole upgrade request (0: no limit). */
  handshakeTimeout: number;
  /** The subprotocols accepted, for the refusal message. */
  protocols: readonly string[];
  /** Reports a refused client. */
  onRejected(remote: string, code: string, reason: string): void;
}

/**
 * Serves the opening handshake on an accepted byte stream; `onOpen` gets the message stream
 * once it is upgraded. Refused clients get an HTTP error answer and are reported.
 */
export function acceptWebSocket(
  bytes: ByteStream,
  options: AcceptOptions,
  onOpen: (stream: MessageStream) => void,
): void {
  const connection = new WebSocketConnection(bytes, true, options.maxMessageSize);
  const remote = bytes.remote;
  const reader = new HttpHeadReader();
  let settled = false;
  /** Bytes that came after the head while the answer was being made. */
  const early: Uint8Array[] = [];
  /** The client went away before the handshake was done. */
  let gone = false;
  const timer = options.handshakeTimeout > 0
    ? setTimeout(() => {
      if (settled) return;
      settled = true;
      options.onRejected(
        remote,
        "handshake-timeout",
        `HTTP upgrade request not complete within ${options.handshakeTimeout} ms`,
      );
      connection.writeRaw(errorResponse(408, "Request timeout"), true).catch(() => {});
    }, options.handshakeTimeout)
    : undefined;
  const refuse = (
    status: number,
    code: string,
    reason: string,
    headers?: Record<string, string>,
  ) => {
    if (code !== "") options.onRejected(remote, code, reason);
    connection.writeRaw(errorResponse(status, reason, headers), true).catch(() => {});
  };
  connection.handshake((chunk) => {
    if (settled) {
      early.push(chunk.slice());
      return;
    }
    let got;
    try {
      got = reader.feed(chunk);
    } catch (error) {
      settled = true;
      clearTimeout(timer);
      refuse(400, "bad-request", (error as Error).message);
      return;
    }
    if (got === null) return;
    settled = true;
    clearTimeout(timer);
    let request: UpgradeRequest;
    try {
      request = checkUpgradeRequest(got.head);
    } catch (error) {
      if (!(error instanceof HandshakeRefusal)) throw error;
      // A plain HTTP request (a browser visiting the port) is answered, not logged.
      const code = error.status === 426 && !got.head.headers.has("upgrade") ? "" : "bad-request";
      refuse(error.status, code, error.message, error.headers);
      return;
    }
    if (request.path !== options.path) {
      refuse(404, "unknown-path", `no WebSocket endpoint at ${request.path}`);
      return;
    }
    if (!options.originAllowed(request.origin, request.host)) {
      refuse(403, "origin-not-allowed", `origin ${request.origin} is not allowed`);
      return;
    }
    const protocol = options.chooseProtocol(request.protocols);
    if (protocol === null) {
      refuse(
        400,
        "unknown-subprotocol",
        `offered subprotocols "${request.protocols ?? ""}", expected one of ${
          options.protocols.join(", ")
        }`,
      );
      return;
    }
    upgradeResponse(request.key, protocol).then((answer) => {
      if (gone) return connection.abort();
      connection.writeRaw(answer).catch(() => {});
      connection.open(protocol, concatBytes([got.rest, ...early]));
      onOpen(connection);
    });
  }, () => {
    settled = true;
    gone = true;
    clearTimeout(timer);
  });
}

/** What a client needs to open a WebSocket (see {@linkcode openWebSocket}). */
export interface OpenOptions {
  /** The `Host` header: host, and port. */
  host: string;
  /** The request path. */
  path: string;
  /** Subprotocols offered, in order. */
  protocols: readonly string[];
  /** Largest message accepted, in bytes. */
  maxMessageSize: number;
  /** Milliseconds the server has to answer the upgrade (0: no limit). */
  handshakeTimeout: number;
}

/** Runs the client side of the opening handshake on a connected byte stream. */
export function openWebSocket(bytes: ByteStream, options: OpenOptions): Promise<MessageStream> {
  const connection = new WebSocketConnection(bytes, false, options.maxMessageSize);
  const key = randomKey();
  const reader = new HttpHeadReader();
  return new Promise((resolve, reject) => {
    let settled = false;
    const fail = (error: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      connection.abort();
      reject(error);
    };
    const timer = options.handshakeTimeout > 0
      ? setTimeout(
        () =>
          fail(
            new WebSocketError(
              "bad-handshake",
              `no answer to the upgrade request within ${options.handshakeTimeout} ms`,
            ),
          ),
        options.handshakeTimeout,
      )
      : undefined;
    /** Bytes (the server's first frames) that came while the answer was being checked. */
    const early: Uint8Array[] = [];
    let checking = false;
    connection.handshake((chunk) => {
      if (checking) {
        early.push(chunk.slice());
        return;
      }
      if (settled) return;
      let got;
      try {
        got = reader.feed(chunk);
      } catch (error) {
        fail(error as Error);
        return;
      }
      if (got === null) return;
      checking = true;
      clearTimeout(timer);
      checkUpgradeResponse(got.head, key, options.protocols).then((protocol) => {
        if (settled) return connection.abort();
        settled = true;
        connection.open(protocol, concatBytes([got.rest, ...early]));
        resolve(connection);
      }, (error) => fail(error));
    }, (error) => fail(error ?? new Error("connection closed during the WebSocket handshake")));
    connection.writeRaw(upgradeRequest(options.host, options.path, key, options.protocols))
      .catch((error) => fail(error));
  });
}
