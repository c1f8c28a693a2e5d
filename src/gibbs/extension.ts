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
/** Version of the extension protocol we speak. */
export const EXT_VERSION = 1;
/** Largest capacity a worker may announce. */
export const MAX_CAPACITY = 65_536;

/** Kinds of extension messages. */
export const ExtKind = {
  /** Worker → hub: its capacity changed; body: the new capacity (an integer ≥ 0). */
  capacity: "capacity",
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

/** READY metadata of our side: the recognition property, and a worker's capacity. */
export function extensionMetadata(capacity?: number): Record<string, string> {
  const metadata: Record<string, string> = { [EXT_PROPERTY]: String(EXT_VERSION) };
  if (capacity !== undefined) metadata[CAPACITY_PROPERTY] = String(capacity);
  return metadata;
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
  switch (kind as ExtKind) {
    case ExtKind.capacity:
      if (!Number.isInteger(body) || (body as number) < 0 || (body as number) > MAX_CAPACITY) {
        throw new WorkerProtocolError(`capacity must be an integer 0 to ${MAX_CAPACITY}`);
      }
      break;
  }
  return { kind: kind as ExtKind, body };
}
