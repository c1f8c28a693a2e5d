/**
 * The gibbs message codec: msgpack as Python's msgpack 1.0 writes and reads it by default.
 *
 * @module
 */

import { Packr, REUSE_BUFFER_MODE } from "msgpackr";
import { WorkerProtocolError } from "./errors.ts";

/** Keyword arguments: a map with string keys. */
export type Kwargs = Record<string, unknown>;

/** A decoded request. */
export interface RequestMessage {
  /** Request id (gibbs uses 32 hex chars). */
  reqId: string;
  /** Positional arguments. */
  args: unknown[];
  /** Keyword arguments. */
  kwargs: Kwargs;
}

/** A decoded response. */
export interface ResponseMessage {
  /** Request id the response answers. */
  reqId: string;
  /** 0 success, 1 failure. */
  code: 0 | 1;
  /** The result, or the traceback text on failure. */
  result: unknown;
}

/** Response code of a success. */
export const CODE_OK = 0;
/** Response code of a failure in user code. */
export const CODE_ERROR = 1;

// str as str, bytes as bin, floats as float64, no msgpackr records; 64-bit integers come back as
// numbers when exact and as bigint otherwise.
const packr = new Packr(
  {
    useRecords: false,
    mapsAsObjects: true,
    int64AsType: "auto",
    encodeUndefinedAsNil: true,
    copyBuffers: true,
  } as unknown as ConstructorParameters<typeof Packr>[0],
);

/**
 * msgpackr writes whole numbers beyond 32 bits as float64, and Python then sees `2.0**40`, a
 * float. Such numbers become bigints, which it writes as 64-bit integers. Copy-on-write: the
 * caller's objects are left as they are, and a value without such numbers is returned as is.
 */
function widenIntegers(value: unknown): unknown {
  if (typeof value === "number") {
    return (value > 0xffff_ffff || value < -0x8000_0000) && Number.isSafeInteger(value)
      ? BigInt(value)
      : value;
  }
  if (typeof value !== "object" || value === null || ArrayBuffer.isView(value)) return value;
  if (Array.isArray(value)) {
    let copy: unknown[] | null = null;
    for (let i = 0; i < value.length; i++) {
      const widened = widenIntegers(value[i]);
      if (widened !== value[i]) (copy ??= value.slice())[i] = widened;
    }
    return copy ?? value;
  }
  if (value instanceof Map) {
    let copy: Map<unknown, unknown> | null = null;
    for (const [k, v] of value) {
      const widened = widenIntegers(v);
      if (widened !== v) (copy ??= new Map(value)).set(k, widened);
    }
    return copy ?? value;
  }
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return value;
  let copy: Record<string, unknown> | null = null;
  for (const key in value as Record<string, unknown>) {
    const v = (value as Record<string, unknown>)[key];
    const widened = widenIntegers(v);
    if (widened !== v) (copy ??= { ...(value as Record<string, unknown>) })[key] = widened;
  }
  return copy ?? value;
}

/** Encodes any value as msgpack. */
export function pack(value: unknown): Uint8Array {
  // msgpackr's shared buffer itself with the bounds beside it: one view of ours instead of a
  // Buffer subarray and a view of it (later packs write past `end`, never over it).
  const shared = packr.pack(widenIntegers(value), REUSE_BUFFER_MODE) as unknown as
    & Uint8Array
    & Bounds;
  return new Uint8Array(shared.buffer, shared.byteOffset + shared.start, shared.end - shared.start);
}

/** Where msgpackr's `REUSE_BUFFER_MODE` says the message is in its buffer. */
interface Bounds {
  start: number;
  end: number;
}

/**
 * Decodes msgpack. Byte strings come back as plain `Uint8Array`s.
 *
 * @throws {WorkerProtocolError} on bytes that are not msgpack
 */
export function unpack(bytes: Uint8Array): unknown {
  // A plain Uint8Array (not a Buffer) makes msgpackr return plain Uint8Arrays for bin values.
  const plain = Object.getPrototypeOf(bytes) === Uint8Array.prototype
    ? bytes
    : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  try {
    return packr.unpack(plain);
  } catch (error) {
    throw new WorkerProtocolError(`Not msgpack: ${(error as Error).message}`);
  }
}

/** Encodes `[req_id, args, kwargs]`. */
export function encodeRequest(reqId: string, args: readonly unknown[], kwargs: Kwargs): Uint8Array {
  return pack([reqId, args, kwargs]);
}

/**
 * Decodes and checks `[req_id, args, kwargs]`.
 *
 * @throws {WorkerProtocolError} when the shape is wrong
 */
export function decodeRequest(bytes: Uint8Array): RequestMessage {
  const value = unpack(bytes);
  if (
    !Array.isArray(value) || value.length !== 3 || typeof value[0] !== "string" ||
    !Array.isArray(value[1]) || !isPlainMap(value[2])
  ) {
    throw new WorkerProtocolError("Request is not [req_id: str, args: list, kwargs: map]");
  }
  return { reqId: value[0], args: value[1], kwargs: value[2] as Kwargs };
}

/** Encodes `[req_id, code, result]`. */
export function encodeResponse(reqId: string, code: 0 | 1, result: unknown): Uint8Array {
  return pack([reqId, code, result]);
}

/**
 * Decodes and checks `[req_id, code, result]`.
 *
 * @throws {WorkerProtocolError} when the shape is wrong
 */
export function decodeResponse(bytes: Uint8Array): ResponseMessage {
  const value = unpack(bytes);
  if (
    !Array.isArray(value) || value.length !== 3 || typeof value[0] !== "string" ||
    (value[1] !== CODE_OK && value[1] !== CODE_ERROR)
  ) {
    throw new WorkerProtocolError("Response is not [req_id: str, code: 0|1, result]");
  }
  return { reqId: value[0], code: value[1], result: value[2] };
}

function isPlainMap(value: unknown): boolean {
  return typeof value === "object" && value !== null && !Array.isArray(value) &&
    !(value instanceof Uint8Array);
}
