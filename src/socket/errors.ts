/**
 * Typed errors of the socket layer.
 *
 * @module
 */

/** Machine-readable kind of a {@linkcode SocketError}, named as libzmq's errno values are. */
export type SocketErrorCode = "ECLOSED" | "EHOSTUNREACH" | "EAGAIN" | "EINVAL" | "EADDRINUSE";

/**
 * Base class of errors a socket operation rejects with.
 *
 * @example
 * ```ts
 * import { SocketError } from "./errors.ts";
 * try {
 *   throw new SocketError("EAGAIN", "receive timed out after 100 ms");
 * } catch (error) {
 *   if (error instanceof SocketError && error.code === "EAGAIN") console.log("try again");
 * }
 * ```
 */
export class SocketError extends Error {
  /** Machine-readable kind. */
  readonly code: SocketErrorCode;

  /** Creates the error. */
  constructor(code: SocketErrorCode, message: string) {
    super(message);
    this.name = "SocketError";
    this.code = code;
  }
}

/** The socket was closed before or while the operation waited. */
export class SocketClosedError extends SocketError {
  /** Creates the error for the named operation. */
  constructor(operation: string) {
    super("ECLOSED", `Socket is closed: ${operation} cannot complete`);
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

/** A send or receive did not complete within its timeout. */
export class TimeoutError extends SocketError {
  /** Creates the error for the named operation and timeout. */
  constructor(operation: string, ms: number) {
    super("EAGAIN", `${operation} did not complete within ${ms} ms`);
    this.name = "TimeoutError";
  }
}

/** Shows a routing id as text when it is printable, else as hex. */
export function describeId(id: Uint8Array): string {
  const printable = id.length > 0 && id.every((b) => b >= 0x20 && b < 0x7f);
  if (printable) return `"${String.fromCharCode(...id)}"`;
  return `0x${Array.from(id, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}
