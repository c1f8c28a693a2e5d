/**
 * Errors of the transport layer: runtime failures translated into the errno names libzmq and
 * Node use, so that the layers above match codes, never message text.
 *
 * @module
 */

/** Machine-readable kind of a {@linkcode TransportError}: POSIX errno names. */
export type TransportErrorCode =
  | "EADDRINUSE"
  | "EADDRNOTAVAIL"
  | "EACCES"
  | "ECONNREFUSED"
  | "ECONNRESET"
  | "ECONNABORTED"
  | "EHOSTUNREACH"
  | "ENETUNREACH"
  | "ETIMEDOUT"
  | "EPIPE"
  | "ENOENT"
  | "EMFILE"
  | "EINVAL"
  | "EIO";

const KNOWN = new Set<string>([
  "EADDRINUSE",
  "EADDRNOTAVAIL",
  "EACCES",
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ETIMEDOUT",
  "EPIPE",
  "ENOENT",
  "EMFILE",
  "EINVAL",
]);

/** What each code means, in the words of an error message. */
const MEANING: Partial<Record<TransportErrorCode, string>> = {
  EADDRINUSE: "address already in use",
  EADDRNOTAVAIL: "address not available on this machine",
  EACCES: "permission denied",
  ECONNREFUSED: "connection refused",
  ECONNRESET: "connection reset by peer",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
  ETIMEDOUT: "timed out",
  ENOENT: "no such file or directory",
  EMFILE: "too many open files",
};

/**
 * A runtime failure to listen, connect, read or write, with its errno name.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { TransportError } from "./errors.ts";
 * const error = new TransportError("EADDRINUSE", "Cannot bind tcp://0.0.0.0:5019");
 * assert.equal(error.message, "Cannot bind tcp://0.0.0.0:5019: address already in use");
 * ```
 */
export class TransportError extends Error {
  /** The errno name. */
  readonly code: TransportErrorCode;

  /** Creates the error; the message gets the code's meaning appended when it is known. */
  constructor(code: TransportErrorCode, what: string, options?: ErrorOptions) {
    const meaning = MEANING[code];
    super(meaning ? `${what}: ${meaning}` : what, options);
    this.name = "TransportError";
    this.code = code;
  }
}

/**
 * Translates what a runtime threw into a {@linkcode TransportError}: both Deno's and Node's
 * errors carry the errno name as `code`.
 */
export function transportError(error: unknown, what: string): TransportError {
  if (error instanceof TransportError) return error;
  const code = (error as { code?: unknown })?.code;
  if (typeof code === "string" && KNOWN.has(code)) {
    return new TransportError(code as TransportErrorCode, what, { cause: error });
  }
  const detail = error instanceof Error ? error.message : String(error);
  return new TransportError("EIO", `${what}: ${detail}`, { cause: error });
}
