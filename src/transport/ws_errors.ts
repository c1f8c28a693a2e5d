/**
 * Errors of the WebSocket transport: why a WebSocket peer was refused or dropped.
 *
 * @module
 */

/** Why a WebSocket peer was refused or dropped, in a word. */
export type WebSocketErrorCode =
  | "text-frame"
  | "message-too-large"
  | "unknown-subprotocol"
  | "origin-not-allowed"
  | "websocket-protocol"
  | "websocket-closed"
  | "heartbeat-timeout"
  | "bad-request"
  | "bad-handshake";

/**
 * A WebSocket peer broke a rule of the transport: it sent a text message (ZWS 2.0 carries binary
 * messages only), a message over the size limit, a handshake we refuse, or invalid framing. The
 * connection it concerns is over; the socket keeps serving its other peers.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { WebSocketError } from "./ws_errors.ts";
 * const error = new WebSocketError("text-frame", "peer sent a text message");
 * assert.equal(error.code, "text-frame");
 * assert.equal(error.message, "text-frame: peer sent a text message");
 * ```
 */
export class WebSocketError extends Error {
  /** Machine-readable reason. */
  readonly code: WebSocketErrorCode;

  /** Creates an error with a reason code and a human-readable explanation. */
  constructor(code: WebSocketErrorCode, message: string) {
    super(`${code}: ${message}`);
    this.name = "WebSocketError";
    this.code = code;
  }
}

/** WebSocket close codes (RFC 6455, 7.4.1) the transport sends or reads. */
export const CloseCode = {
  /** Normal closure. */
  normal: 1000,
  /** The endpoint is going away (a page closed, a server stopping). */
  goingAway: 1001,
  /** A protocol error. */
  protocolError: 1002,
  /** A data type the endpoint cannot accept (for us: text). */
  unsupportedData: 1003,
  /** No status code was present. */
  noStatus: 1005,
  /** The connection was lost without a close frame. */
  abnormal: 1006,
  /** A message too big to process. */
  messageTooBig: 1009,
  /** The server is overloaded (connection limit). */
  tryAgainLater: 1013,
} as const;

/**
 * Turns the close code a WebSocket ended with into the error to report, or undefined for an
 * orderly end. `ours` is true when we closed it ourselves.
 */
export function closeError(code: number, reason: string, ours: boolean): Error | undefined {
  // Below 1000 is no valid code at all (libzmq closes with 0): an end like a normal one.
  if (ours || code <= CloseCode.goingAway || code === CloseCode.noStatus) return undefined;
  const why = reason ? `: ${reason}` : "";
  if (code === CloseCode.messageTooBig) {
    return new WebSocketError("message-too-large", `WebSocket closed with 1009${why}`);
  }
  if (code === CloseCode.protocolError || code === CloseCode.unsupportedData) {
    return new WebSocketError("websocket-protocol", `WebSocket closed with ${code}${why}`);
  }
  if (code === CloseCode.abnormal) return new Error("WebSocket connection lost (1006)");
  return new WebSocketError("websocket-closed", `WebSocket closed with ${code}${why}`);
}
