/**
 * Byte helpers shared by every layer (no I/O).
 *
 * @module
 */

/**
 * The parts joined into one new array (always a copy, even of a single part). `size`, when the
 * caller already knows it, saves a pass over the parts.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { concatBytes } from "./bytes.ts";
 * assert.deepEqual(concatBytes([Uint8Array.of(1), Uint8Array.of(2, 3)]), Uint8Array.of(1, 2, 3));
 * ```
 */
export function concatBytes(parts: readonly Uint8Array[], size?: number): Uint8Array {
  if (size === undefined) {
    size = 0;
    for (const part of parts) size += part.length;
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}
