/**
 * Typed errors of the socket layer.
 *
 * @module
 */

import type { TransportErrorCode } from "../transport/errors.ts";
import { describeId } from "./routing_id.ts";

/**
 * Machine-readable kind of a {@linkcode SocketError}, named as libzmq's errno values are:
 * `EBADF` the socket is closed (as zeromq.js reports it), `EAGAIN` a timeout, `EHOSTUNREACH` no
 * peer with that routing id, `EINVAL` a bad argument or endpoint, and the transport's codes
 * (`EADDRINUSE`, `EACCES`, `ECONNREFUSED`, ...) for what the operating system refused.
 */
export type SocketErrorCode = "EBADF" | "EHOSTUNREACH" | "EAGAIN" | TransportErrorCode;

/**
 * Base class of errors a socket operation rejects with.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { SocketError } from "./errors.ts";
 * const error: unknown = new SocketError("EAGAIN", "receive timed out after 100 ms");
 * // Match the code, never the message text:
 * assert.ok(error instanceof SocketError && error.code === "EAGAIN");
 * ```
 */
export class SocketError extends Error {
  /** Machine-readable kind. */
  readonly code: SocketErrorCode;

  /** Creates the error. */
  constructor(code: SocketErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "SocketError";
    this.code = code;
  }
}

/** The socket was closed before or while the operation waited. */
export class SocketClosedError extends SocketError {
  /** Creates the error for the named operation. */
  constructor(operation: string) {
    super("EBADF", `Socket is closed: ${operation} cannot complete`);
    this.name = "SocketClosedError";
  }
}

/** A ROUTER with `mandatory` set was asked to send to a routing id no peer has. */
export class HostUnreachableError extends SocketError {
  /** The routing id that matched no peer. */
  readonly routingId: Uint8Array;

  /** Creates the error for `routingId`. */
  constructor(routingId: Uint8Array) {
    super("EHOSTUNREACH", `No connected peer has routing id ${describeId(routingId)}`);
    this.name = "HostUnreachableError";
    this.routingId = routingId;
  }
}

/** An endpoint string that cannot be used: an unknown transport or a malformed address. */
export class EndpointError extends SocketError {
  /** Creates the error with the whole explanation. */
  constructor(message: string, options?: ErrorOptions) {
    super("EINVAL", message, options);
    this.name = "EndpointError";
  }
}

/** A send or receive did not complete within its timeout. */
export class TimeoutError extends SocketError {
  /** Creates the error for the named operation and timeout. */
  constructor(operation: string, ms: number) {
    super("EAGAIN", `${operation} did not complete within ${ms} ms`);
    this.name = "TimeoutError";
  }
}
