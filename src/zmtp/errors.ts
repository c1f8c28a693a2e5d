/**
 * Errors raised by the sans-IO protocol core.
 *
 * @module
 */

/** Why a ZMTP connection was refused or dropped. */
export type ZmtpErrorCode =
  | "bad-signature"
  | "unsupported-version"
  | "mechanism-mismatch"
  | "handshake-failed"
  | "socket-type-mismatch"
  | "malformed-command"
  | "message-too-large"
  | "too-many-frames"
  | "unexpected-frame"
  | "peer-error"
  | "handshake-timeout"
  | "heartbeat-timeout"
  | "auth-failed"
  | "decryption-failed"
  | "key-exchange-failed"
  | "bad-nonce";

/** Codes of peers refused by a mechanism's authentication (wrong key, wrong password, ...). */
const AUTH_CODES: ReadonlySet<ZmtpErrorCode> = new Set<ZmtpErrorCode>(["auth-failed"]);

/**
 * Sorts a handshake failure as zeromq.js sorts its `handshake:error:*` events: `auth` for a
 * peer refused by authentication, `other` for a handshake that timed out, `protocol` for the
 * rest.
 */
export function handshakeFailureKind(code: ZmtpErrorCode): "protocol" | "auth" | "other" {
  if (AUTH_CODES.has(code)) return "auth";
  return code === "handshake-timeout" ? "other" : "protocol";
}

/**
 * A protocol violation by the peer, or a limit it exceeded. The connection that raised it is
 * over; the socket that owns it keeps serving its other peers.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ZmtpError } from "./errors.ts";
 * const err = new ZmtpError("bad-signature", "first byte is 0x47, expected 0xff");
 * assert.equal(err.code, "bad-signature");
 * assert.equal(err.message, "bad-signature: first byte is 0x47, expected 0xff");
 * ```
 */
export class ZmtpError extends Error {
  /** Machine-readable reason. */
  readonly code: ZmtpErrorCode;

  /** Creates an error with a reason code and a human-readable explanation. */
  constructor(code: ZmtpErrorCode, message: string) {
    super(`${code}: ${message}`);
    this.name = "ZmtpError";
    this.code = code;
  }
}
