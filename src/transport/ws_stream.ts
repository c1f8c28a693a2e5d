/**
 * A {@linkcode MessageStream} over a WHATWG `WebSocket` object: the browser adapter's transport
 * (a page has no other). Runtime-neutral: it only uses the object it is given and timers. The
 * Deno and Node adapters run WebSockets on their own byte streams instead (`ws_connection.ts`).
 *
 * @module
 */

import type { MessageStream } from "./runtime_types.ts";
import { CloseCode, closeError, WebSocketError } from "./ws_errors.ts";

/**
 * A write resolves at once while the socket's send buffer holds less than this; past it, it
 * waits for the buffer to drain below {@linkcode SEND_LOW_WATER}. The API has no drain event,
 * so waiting polls every {@linkcode DRAIN_POLL_MS}.
 */
const SEND_HIGH_WATER = 1024 * 1024;
const SEND_LOW_WATER = 256 * 1024;
const DRAIN_POLL_MS = 2;
const OPEN = 1;
const RESOLVED: Promise<void> = Promise.resolve();

/** The part of the WHATWG `WebSocket` interface the stream uses. */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  readonly bufferedAmount: number;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
}

/**
 * Wraps an open WebSocket. Messages that arrive before {@linkcode WebSocketMessageStream.start}
 * are kept and delivered then. A text message ends the stream with a
 * {@linkcode WebSocketError} `text-frame` (and a 1003 close to the peer).
 *
 * @example
 * ```ts ignore
 * const socket = new WebSocket("ws://127.0.0.1:5020", ["ZWS2.0/NULL"]);
 * socket.onopen = () => {
 *   const stream = new WebSocketMessageStream(socket, "127.0.0.1:5020", socket.protocol);
 *   stream.start((message) => console.log(message.length), (error) => console.log(error));
 * };
 * ```
 */
export class WebSocketMessageStream implements MessageStream {
  /** Always `"messages"`. */
  readonly kind = "messages" as const;
  /** Address of the other end. */
  readonly remote: string;
  /** The agreed subprotocol. */
  readonly protocol: string;
  #socket: WebSocketLike;
  #onMessage: ((message: Uint8Array) => void) | null = null;
  #onEnd: ((error?: Error) => void) | null = null;
  #early: Uint8Array[] = [];
  #ended = false;
  #endError: Error | undefined;
  #closedByUs = false;

  /** Takes over `socket`'s event handlers. */
  constructor(socket: WebSocketLike, remote: string, protocol: string) {
    this.#socket = socket;
    this.remote = remote;
    this.protocol = protocol;
    socket.binaryType = "arraybuffer";
    socket.onmessage = (event) => this.#receive(event.data);
    socket.onclose = (event) => this.#end(closeError(event.code, event.reason, this.#closedByUs));
    // An error event is always followed by a close event, which reports the end.
    socket.onerror = () => {};
  }

  /** Starts delivering messages (see {@linkcode MessageStream.start}). */
  start(onMessage: (message: Uint8Array) => void, onEnd: (error?: Error) => void): void {
    this.#onMessage = onMessage;
    this.#onEnd = onEnd;
    const early = this.#early;
    this.#early = [];
    for (const message of early) {
      if (this.#onMessage === null) break;
      onMessage(message);
    }
    if (this.#ended) queueMicrotask(() => this.#report());
  }

  /** The WHATWG API cannot stop reading: a no-op (see {@linkcode MessageStream.pause}). */
  pause(): void {}

  /** A no-op, as {@linkcode WebSocketMessageStream.pause} is. */
  resume(): void {}

  /** Sends each entry as one binary message (see {@linkcode MessageStream.write}). */
  write(messages: Uint8Array[]): Promise<void> {
    const socket = this.#socket;
    if (this.#ended || socket.readyState !== OPEN) {
      return Promise.reject(this.#endError ?? new Error(`WebSocket to ${this.remote} is closed`));
    }
    for (let i = 0; i < messages.length; i++) socket.send(messages[i]);
    if (socket.bufferedAmount < SEND_HIGH_WATER) return RESOLVED;
    return new Promise((resolve, reject) => {
      const poll = () => {
        if (this.#ended) reject(this.#endError ?? new Error(`WebSocket to ${this.remote} closed`));
        else if (socket.bufferedAmount <= SEND_LOW_WATER) resolve();
        else setTimeout(poll, DRAIN_POLL_MS);
      };
      setTimeout(poll, DRAIN_POLL_MS);
    });
  }

  /** Closes the WebSocket (code 1000); the end is reported without an error. */
  close(): void {
    if (this.#closedByUs) return;
    this.#closedByUs = true;
    try {
      this.#socket.close(CloseCode.normal);
    } catch {
      // already closing
    }
    // The close event may take a round trip; the owner learns of the end now.
    this.#end(undefined);
  }

  #receive(data: unknown): void {
    if (this.#ended) return;
    if (!(data instanceof ArrayBuffer)) {
      const error = new WebSocketError(
        "text-frame",
        "peer sent a text message; ZWS 2.0 carries binary messages only",
      );
      try {
        this.#socket.close(CloseCode.unsupportedData, "binary messages only");
      } catch {
        // already closing
      }
      this.#end(error);
      return;
    }
    const message = new Uint8Array(data);
    if (this.#onMessage === null) this.#early.push(message);
    else this.#onMessage(message);
  }

  #end(error: Error | undefined): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#endError = error;
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
