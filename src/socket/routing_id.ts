/**
 * Routing ids as map keys and in messages: they are bytes, not text.
 *
 * @module
 */

/**
 * Turns routing-id bytes into a map key, one char per byte, so that ids that are not UTF-8 stay
 * distinct.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { keyOf } from "./routing_id.ts";
 * assert.equal(keyOf(new Uint8Array([0, 1, 255])), "\x00\x01\xff");
 * ```
 */
export function keyOf(id: Uint8Array): string {
  return String.fromCharCode.apply(null, id as unknown as number[]);
}

/** The bytes of a key made by {@linkcode keyOf}. */
export function idOfKey(key: string): Uint8Array {
  const id = new Uint8Array(key.length);
  for (let i = 0; i < key.length; i++) id[i] = key.charCodeAt(i);
  return id;
}

/**
 * Shows a routing id as text when it is printable ASCII, else as hex.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { describeId } from "./routing_id.ts";
 * assert.equal(describeId(new TextEncoder().encode("w1")), '"w1"');
 * assert.equal(describeId(new Uint8Array([0, 1])), "0x0001");
 * ```
 */
export function describeId(id: Uint8Array): string {
  const printable = id.length > 0 && id.every((b) => b >= 0x20 && b < 0x7f);
  if (printable) return `"${String.fromCharCode(...id)}"`;
  return `0x${Array.from(id, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}
