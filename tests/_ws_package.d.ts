/**
 * The part of the `ws` package's API that the tests use (as a hostile WebSocket client), for
 * `deno check`. `@types/ws` is not used: it pulls in a newer `@types/node` than the one the
 * rest of the repository is checked against.
 *
 * @module
 */

import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";

/** A `ws` client or server-side WebSocket. */
export class WebSocket {
  static readonly OPEN: number;
  constructor(
    url: string,
    protocols?: string[],
    options?: {
      perMessageDeflate?: boolean;
      maxPayload?: number;
      ca?: Uint8Array;
      origin?: string;
    },
  );
  readonly readyState: number;
  readonly protocol: string;
  send(data: Uint8Array | string, callback?: (error?: Error) => void): void;
  close(code?: number, reason?: string): void;
  terminate(): void;
  ping(): void;
  pause(): void;
  resume(): void;
  on(event: "message", listener: (data: Buffer, isBinary: boolean) => void): this;
  on(event: "close", listener: (code: number, reason: Buffer) => void): this;
  on(event: "error", listener: (error: Error & { code?: string }) => void): this;
  on(event: "open" | "pong", listener: () => void): this;
  on(
    event: "unexpected-response",
    listener: (request: unknown, response: IncomingMessage) => void,
  ): this;
  once(event: "open", listener: () => void): this;
  once(event: "error", listener: (error: Error) => void): this;
  off(event: "error", listener: (error: Error) => void): this;
}

/** A `ws` server, used without a server of its own (`noServer`). */
export class WebSocketServer {
  constructor(options: {
    noServer: true;
    clientTracking?: boolean;
    perMessageDeflate?: boolean;
    maxPayload?: number;
  });
  handleUpgrade(
    request: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    callback: (ws: WebSocket) => void,
  ): void;
  on(event: "headers", listener: (headers: string[], request: IncomingMessage) => void): this;
}
