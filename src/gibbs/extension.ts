/**
 * The extensions our hub and our worker speak beyond gibbs 0.3, negotiated in the ZMTP handshake
 * and never sent to a Python peer (see docs/protocol.md):
 *
 * - **Recognition.** Each side adds `X-Gibbs: 1` to its ZMTP READY (ZMTP 3.1 application
 *   metadata: libzmq keeps unknown properties and Python gibbs never reads them). A worker adds
 *   `X-Gibbs-Capacity: N`, the requests it serves at once. Only when both sides announced
 *   themselves may either send an extension message.
 * - **Extension messages** have three frames after the DEALER's empty delimiter,
 *   `["", KIND, BODY]` (the hub's ROUTER sees `[id, "", KIND, BODY]`): gibbs 0.3 only ever sends
 *   one (`[""]`, a ping) or two (`["", P]`), so no gibbs message can be taken for one. `KIND` is
 *   a short ASCII name, `BODY` msgpack. Decoding is strict: a malformed extension message is a
 *   protocol error like any other.
 *
 * @module
 */

import { pack, unpack } from "./codec.ts";
import { WorkerProtocolError } from "./errors.ts";

/** The READY property by which our hub and our worker recognise each other. */
export const EXT_PROPERTY = "X-Gibbs";
/** The READY property in which our worker announces its capacity. */
export const CAPACITY_PROPERTY = "X-Gibbs-Capacity";
/** The READY property in which our worker names the service it serves. */
export const SERVICE_PROPERTY = "X-Gibbs-Service";
/** The service of every worker that names none (every Python worker). */
export const DEFAULT_SERVICE = "default";
/** Version of the extension protocol we speak. */
export const EXT_VERSION = 1;
/** Largest capacity a worker may announce. */
export const MAX_CAPACITY = 65_536;

/** Kinds of extension messages. */
export const ExtKind = {
  /** Worker → hub: its capacity changed; body: the new capacity (an integer ≥ 0). */
  capacity: "capacity",
  /**
   * Hub → worker: a request whose result the caller reads as a stream; body:
   * `[req_id, args, kwargs, window]`, window the chunks the worker may send before more credit.
   */
  stream: "stream",
  /** Hub → worker: the caller read chunks of a stream; body: `[req_id, n]`, n more may come. */
  credit: "credit",
  /** Hub → worker: the caller gave up on a request; body: `req_id`. */
  cancel: "cancel",
  /** Worker → hub: one value of a stream; body: `[req_id, value]`. The response ends it. */
  chunk: "chunk",
} as const;

/** A kind of extension message. */
export type ExtKind = typeof ExtKind[keyof typeof ExtKind];

const KINDS: ReadonlySet<string> = new Set(Object.values(ExtKind));
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const KIND_BYTES = new Map<string, Uint8Array>(
  Object.values(ExtKind).map((kind) => [kind, encoder.encode(kind)]),
);
const EMPTY = new Uint8Array(0);

/** READY metadata of our side: the recognition property, and a worker's capacity and service. */
export function extensionMetadata(capacity?: number, service?: string): Record<string, string> {
  const metadata: Record<string, string> = { [EXT_PROPERTY]: String(EXT_VERSION) };
  if (capacity !== undefined) metadata[CAPACITY_PROPERTY] = String(capacity);
  if (service !== undefined && service !== DEFAULT_SERVICE) metadata[SERVICE_PROPERTY] = service;
  return metadata;
}

/** Checks a service name: 1 to 64 letters, digits, `.`, `_` or `-`. */
export function checkServiceName(name: string): string {
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(name)) {
    throw new RangeError(
      `service name "${name}" must be 1 to 64 letters, digits, ".", "_" or "-"`,
    );
  }
  return name;
}

/** The service a worker announced ({@linkcode DEFAULT_SERVICE} when none, or an invalid one). */
export function readService(properties: ReadonlyMap<string, Uint8Array> | undefined): string {
  const value = properties?.get(SERVICE_PROPERTY.toLowerCase());
  if (value === undefined) return DEFAULT_SERVICE;
  const name = decoder.decode(value);
  return /^[A-Za-z0-9._-]{1,64}$/.test(name) ? name : DEFAULT_SERVICE;
}

/** True when a peer's handshake properties say it speaks our extensions. */
export function isExtendedPeer(properties: ReadonlyMap<string, Uint8Array> | undefined): boolean {
  const value = properties?.get(EXT_PROPERTY.toLowerCase());
  if (value === undefined) return false;
  const version = Number(decoder.decode(value));
  return Number.isInteger(version) && version >= 1;
}

/**
 * The capacity a worker announced, or undefined when it announced none or an invalid one.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readCapacity } from "./extension.ts";
 * const props = new Map([["x-gibbs-capacity", new TextEncoder().encode("4")]]);
 * assert.equal(readCapacity(props), 4);
 * ```
 */
export function readCapacity(
  properties: ReadonlyMap<string, Uint8Array> | undefined,
): number | undefined {
  const value = properties?.get(CAPACITY_PROPERTY.toLowerCase());
  if (value === undefined) return undefined;
  const text = decoder.decode(value);
  const n = Number(text);
  return /^\d+$/.test(text) && n >= 1 && n <= MAX_CAPACITY ? n : undefined;
}

/** The frames of an extension message as a DEALER sends it: `["", KIND, BODY]`. */
export function encodeExtension(kind: ExtKind, body: unknown): Uint8Array[] {
  return [EMPTY, KIND_BYTES.get(kind)!, pack(body)];
}

/** The frames of an extension message whose body is already encoded. */
export function extensionFrames(kind: ExtKind, body: Uint8Array): Uint8Array[] {
  return [EMPTY, KIND_BYTES.get(kind)!, body];
}

/** A decoded extension message. */
export interface ExtensionMessage {
  /** Its kind. */
  kind: ExtKind;
  /** Its decoded body. */
  body: unknown;
}

/**
 * Decodes the frames after the empty delimiter, `[KIND, BODY]`, and checks the body's shape for
 * the kind.
 *
 * @throws {WorkerProtocolError} for an unknown kind or a body of the wrong shape
 */
export function decodeExtension(kindFrame: Uint8Array, bodyFrame: Uint8Array): ExtensionMessage {
  const kind = kindFrame.length <= 32 ? decoder.decode(kindFrame) : "";
  if (!KINDS.has(kind)) {
    throw new WorkerProtocolError(`unknown extension message kind "${kind.slice(0, 32)}"`);
  }
  const body = unpack(bodyFrame);
  const fail = (shape: string) => {
    throw new WorkerProtocolError(`a "${kind}" message must carry ${shape}`);
  };
  switch (kind as ExtKind) {
    case ExtKind.capacity:
      if (!Number.isInteger(body) || (body as number) < 0 || (body as number) > MAX_CAPACITY) {
        fail(`an integer 0 to ${MAX_CAPACITY}`);
      }
      break;
    case ExtKind.stream:
      if (
        !Array.isArray(body) || body.length !== 4 || typeof body[0] !== "string" ||
        !Array.isArray(body[1]) || !isMap(body[2]) || !isCount(body[3])
      ) fail("[req_id, args, kwargs, window]");
      break;
    case ExtKind.credit:
      if (
        !Array.isArray(body) || body.length !== 2 || typeof body[0] !== "string" ||
        !isCount(body[1])
      ) {
        fail("[req_id, n]");
      }
      break;
    case ExtKind.cancel:
      if (typeof body !== "string") fail("a request id");
      break;
    case ExtKind.chunk:
      if (!Array.isArray(body) || body.length !== 2 || typeof body[0] !== "string") {
        fail("[req_id, value]");
      }
      break;
  }
  return { kind: kind as ExtKind, body };
}

function isMap(value: unknown): boolean {
  return typeof value === "object" && value !== null && !Array.isArray(value) &&
    !(value instanceof Uint8Array);
}

function isCount(value: unknown): boolean {
  return Number.isInteger(value) && (value as number) >= 1 && (value as number) <= MAX_CAPACITY;
}
