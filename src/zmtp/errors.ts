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
  | "authentication-failed"
  | "decryption-failed"
  | "key-exchange-failed"
  | "bad-nonce";

/**
 * A protocol violation by the peer, or a limit it exceeded. The connection that raised it is
 * over; the socket that owns it keeps serving its other peers.
 *
 * @example
 * ```ts
 * import { ZmtpError } from "./errors.ts";
 * const err = new ZmtpError("bad-signature", "first byte is 0x47, expected 0xff");
 * console.log(err.code, err.message);
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
