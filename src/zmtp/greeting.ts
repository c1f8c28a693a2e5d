/**
 * The 64-byte ZMTP 3.x greeting: signature, version, mechanism, as-server.
 *
 * @module
 */

import {
  AS_SERVER_OFFSET,
  GREETING_SIZE,
  MECHANISM_OFFSET,
  MECHANISM_SIZE,
  SIGNATURE_SIZE,
  VERSION_MAJOR,
} from "./constants.ts";
import { ZmtpError } from "./errors.ts";

/** What a peer announced in its greeting. */
export interface Greeting {
  /** Major protocol version (3 for ZMTP 3.x). */
  major: number;
  /** Minor protocol version (0 or 1 in practice). */
  minor: number;
  /** Mechanism name, e.g. `"NULL"`. */
  mechanism: string;
  /** The as-server flag. */
  asServer: boolean;
}

/**
 * Encodes our greeting. The signature is written the way libzmq writes it (a length of 1 in the
 * padding) so that very old peers fail cleanly.
 */
export function encodeGreeting(
  mechanism: string,
  asServer: boolean,
  minor: number,
): Uint8Array {
  const out = new Uint8Array(GREETING_SIZE);
  out[0] = 0xff;
  out[8] = 0x01;
  out[9] = 0x7f;
  out[10] = VERSION_MAJOR;
  out[11] = minor;
  const name = new TextEncoder().encode(mechanism);
  if (name.length > MECHANISM_SIZE) {
    throw new RangeError(`Mechanism name "${mechanism}" is longer than ${MECHANISM_SIZE} bytes`);
  }
  out.set(name, MECHANISM_OFFSET);
  out[AS_SERVER_OFFSET] = asServer ? 1 : 0;
  return out;
}

/**
 * Checks the part of a peer greeting received so far, so that a wrong peer is refused as soon as
 * its first bytes arrive rather than after a full greeting that may never come.
 *
 * @param bytes the first `bytes.length` bytes of the greeting (any split)
 * @throws {ZmtpError} on a wrong signature or a version below 3
 */
export function checkGreetingPrefix(bytes: Uint8Array): void {
  if (bytes.length >= 1 && bytes[0] !== 0xff) {
    throw new ZmtpError(
      "bad-signature",
      `greeting byte 0 is 0x${hex(bytes[0])}, expected 0xff (not a ZMTP peer)`,
    );
  }
  // Bytes 1..8 are a length field in libzmq's signature; only byte 9 is fixed.
  if (bytes.length >= SIGNATURE_SIZE && bytes[9] !== 0x7f) {
    throw new ZmtpError(
      "bad-signature",
      `greeting byte 9 is 0x${hex(bytes[9])}, expected 0x7f (ZMTP 1.0 peer or not ZMTP)`,
    );
  }
  if (bytes.length > 10 && bytes[10] < VERSION_MAJOR) {
    throw new ZmtpError(
      "unsupported-version",
      `peer speaks ZMTP major version ${bytes[10]}, we need 3 or later`,
    );
  }
}

/**
 * Parses a complete 64-byte greeting.
 *
 * @throws {ZmtpError} on a wrong signature or a version below 3
 */
export function parseGreeting(bytes: Uint8Array): Greeting {
  if (bytes.length < GREETING_SIZE) {
    throw new RangeError(`A greeting is ${GREETING_SIZE} bytes, got ${bytes.length}`);
  }
  checkGreetingPrefix(bytes);
  let end = MECHANISM_OFFSET;
  while (end < MECHANISM_OFFSET + MECHANISM_SIZE && bytes[end] !== 0) end++;
  for (let i = end; i < MECHANISM_OFFSET + MECHANISM_SIZE; i++) {
    // The name must be padded with zero bytes only; anything else is not a name we know.
    if (bytes[i] !== 0) {
      end = -1;
      break;
    }
  }
  const mechanism = end < 0
    ? "<malformed>"
    : String.fromCharCode(...bytes.subarray(MECHANISM_OFFSET, end));
  return {
    major: bytes[10],
    minor: bytes[11],
    mechanism,
    asServer: bytes[AS_SERVER_OFFSET] === 1,
  };
}

/**
 * The mechanism name in the first 32 bytes of a greeting (the rest may not have arrived), or
 * undefined when it is not a zero-padded name.
 */
export function parseGreetingMechanism(bytes: Uint8Array): string | undefined {
  const name = bytes.subarray(MECHANISM_OFFSET, MECHANISM_OFFSET + MECHANISM_SIZE);
  const end = name.indexOf(0) < 0 ? name.length : name.indexOf(0);
  if (end === 0 || name.subarray(end).some((b) => b !== 0)) return undefined;
  return String.fromCharCode(...name.subarray(0, end));
}

function hex(byte: number): string {
  return byte.toString(16).padStart(2, "0");
}
