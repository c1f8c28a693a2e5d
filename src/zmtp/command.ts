/**
 * ZMTP commands: READY, ERROR, PING, PONG, and the metadata properties READY carries.
 *
 * @module
 */

import { PING_CONTEXT_MAX } from "./constants.ts";
import { ZmtpError } from "./errors.ts";

const encoder = new TextEncoder();
const latin1 = new TextDecoder("latin1");

/** A decoded command: its name and the bytes after it. */
export interface Command {
  /** Command name, e.g. `"READY"`. */
  name: string;
  /** Command data following the name. */
  data: Uint8Array;
}

/** Encodes a command body: name length, name, data. */
export function encodeCommand(name: string, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  const nameBytes = encoder.encode(name);
  const body = new Uint8Array(1 + nameBytes.length + data.length);
  body[0] = nameBytes.length;
  body.set(nameBytes, 1);
  body.set(data, 1 + nameBytes.length);
  return body;
}

/**
 * Decodes a command body.
 *
 * @throws {ZmtpError} when the name length runs past the body
 */
export function parseCommand(body: Uint8Array): Command {
  if (body.length < 1 || body[0] === 0 || 1 + body[0] > body.length) {
    throw new ZmtpError(
      "malformed-command",
      `command name does not fit its ${body.length}-byte frame`,
    );
  }
  const nameLength = body[0];
  return {
    name: latin1.decode(body.subarray(1, 1 + nameLength)),
    data: body.subarray(1 + nameLength),
  };
}

/**
 * Encodes metadata properties as READY carries them. Names are sent exactly as given: libzmq
 * compares `Socket-Type` and `Identity` byte for byte.
 */
export function encodeProperties(properties: ReadonlyMap<string, Uint8Array>): Uint8Array {
  let size = 0;
  const names: Uint8Array[] = [];
  for (const [name, value] of properties) {
    const bytes = encoder.encode(name);
    if (bytes.length === 0 || bytes.length > 255) {
      throw new RangeError(`Property name "${name}" must be 1 to 255 bytes`);
    }
    names.push(bytes);
    size += 1 + bytes.length + 4 + value.length;
  }
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  let at = 0;
  let i = 0;
  for (const value of properties.values()) {
    const name = names[i++];
    out[at++] = name.length;
    out.set(name, at);
    at += name.length;
    view.setUint32(at, value.length);
    at += 4;
    out.set(value, at);
    at += value.length;
  }
  return out;
}

/**
 * Decodes metadata properties. Names are returned lower-cased: peers differ in case.
 *
 * @throws {ZmtpError} when a name or value runs past the data
 */
export function parseProperties(data: Uint8Array): Map<string, Uint8Array> {
  const properties = new Map<string, Uint8Array>();
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  let at = 0;
  while (at < data.length) {
    const nameLength = data[at++];
    if (nameLength === 0 || at + nameLength + 4 > data.length) {
      throw new ZmtpError("malformed-command", "metadata property name runs past the command");
    }
    const name = latin1.decode(data.subarray(at, at + nameLength)).toLowerCase();
    at += nameLength;
    const valueLength = view.getUint32(at);
    at += 4;
    if (at + valueLength > data.length) {
      throw new ZmtpError("malformed-command", `metadata property "${name}" runs past the command`);
    }
    properties.set(name, data.slice(at, at + valueLength));
    at += valueLength;
  }
  return properties;
}

/** Encodes a PING command with a TTL in tenths of a second and up to 16 context bytes. */
export function encodePing(ttlDeciseconds: number, context: Uint8Array): Uint8Array {
  if (context.length > PING_CONTEXT_MAX) {
    throw new RangeError(`PING context is at most ${PING_CONTEXT_MAX} bytes`);
  }
  const data = new Uint8Array(2 + context.length);
  data[0] = (ttlDeciseconds >>> 8) & 0xff;
  data[1] = ttlDeciseconds & 0xff;
  data.set(context, 2);
  return encodeCommand("PING", data);
}

/** Decodes the data of a PING: TTL (tenths of a second) and context. */
export function parsePing(data: Uint8Array): { ttl: number; context: Uint8Array } {
  if (data.length < 2 || data.length > 2 + PING_CONTEXT_MAX) {
    throw new ZmtpError("malformed-command", `PING carries ${data.length} bytes, expected 2 to 18`);
  }
  return { ttl: (data[0] << 8) | data[1], context: data.subarray(2) };
}

/** Encodes an ERROR command with a reason of at most 255 bytes. */
export function encodeError(reason: string): Uint8Array {
  const bytes = encoder.encode(reason).subarray(0, 255);
  const data = new Uint8Array(1 + bytes.length);
  data[0] = bytes.length;
  data.set(bytes, 1);
  return encodeCommand("ERROR", data);
}

/** Decodes the reason of an ERROR command, tolerating a reason that overruns the frame. */
export function parseErrorReason(data: Uint8Array): string {
  if (data.length === 0) return "";
  return new TextDecoder().decode(data.subarray(1, 1 + data[0]));
}

/**
 * Says in words why a server refused us, from the reason of its ERROR command. A ZAP status
 * code (libzmq sends just "300", "400" or "500") is spelled out.
 */
export function describeRefusal(reason: string): string {
  switch (reason) {
    case "300":
      return "server refused our credentials for now (ZAP status 300, temporary failure)";
    case "400":
      return "server refused our credentials (ZAP status 400)";
    case "500":
      return "server could not check our credentials (ZAP status 500, internal error)";
    default:
      return `server refused the handshake: ${reason || "<no reason given>"}`;
  }
}

/**
 * libzmq's PLAIN ERROR, as every libzmq since 4.3.0 sends it: its C literal `"\x05ERROR"` reads
 * as the one escape `\x05E`, so the command goes out as `^RROR` (0x5E, then "RROR") with no name
 * length, followed by the reason. Its own PLAIN client expects exactly that.
 */
const LIBZMQ_PLAIN_ERROR = [0x5e, 0x52, 0x52, 0x4f, 0x52];

/**
 * Decodes a command body during the handshake: as {@linkcode parseCommand}, and also libzmq's
 * malformed PLAIN ERROR (see above), which is read as the ERROR it means.
 *
 * @throws {ZmtpError} when the name length runs past the body
 */
export function parseHandshakeCommand(body: Uint8Array): Command {
  if (body.length >= 6 && LIBZMQ_PLAIN_ERROR.every((b, i) => body[i] === b)) {
    return { name: "ERROR", data: body.subarray(5) };
  }
  return parseCommand(body);
}
