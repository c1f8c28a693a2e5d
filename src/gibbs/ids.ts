/**
 * Identifiers: worker routing ids and request ids, 32 lowercase hex chars like a uuid4's hex.
 *
 * @module
 */

/** A random 32-char lowercase hex string (128 random bits, as `uuid.uuid4().hex` has 122). */
export function randomHexId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  let out = "";
  for (const b of bytes) out += HEX[b];
  return out;
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

const HEX_CODES = Array.from({ length: 16 }, (_, i) => i.toString(16).charCodeAt(0));

/**
 * Request ids: a random 16-hex-char prefix per generator and a 16-hex-char counter, so ids
 * stay unique across hubs and 32 hex chars long as gibbs makes them.
 * {@linkcode RequestIds.seqOf} reads back the number an id stands for, so that pending
 * requests can be indexed by number instead of by a fresh string.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { RequestIds } from "./ids.ts";
 * const ids = new RequestIds();
 * const first = ids.next();
 * assert.equal(first.length, 32);
 * assert.equal(ids.seqOf(first), 0);
 * assert.equal(ids.seqOf(ids.next()), 1);
 * assert.equal(ids.seqOf("f".repeat(32)), undefined); // not one of ours
 * ```
 */
export class RequestIds {
  readonly #prefix = randomHexId().slice(0, 16);
  // Character codes of the next id: one flat string per id (a concatenation would make a rope
  // that is flattened again when it is first read).
  readonly #codes: number[] = Array.from({ length: 32 }, (_, i) => i < 16 ? 0 : 48);
  #counter = 0;
  #last = "";

  constructor() {
    for (let i = 0; i < 16; i++) this.#codes[i] = this.#prefix.charCodeAt(i);
  }

  /** The next id. */
  next(): string {
    const codes = this.#codes;
    let n = this.#counter++;
    for (let i = 31; i >= 16 && n > 0; i--) {
      codes[i] = HEX_CODES[n % 16];
      n = Math.floor(n / 16);
    }
    // Positions above the counter's highest digit were never written: still "0".
    return this.#last = String.fromCharCode.apply(null, codes);
  }

  /** The number `id` stands for, or undefined when this generator did not make it. */
  seqOf(id: string): number | undefined {
    // The id just made (a hub numbers its request as it submits it): the same string object.
    if (id === this.#last) return this.#counter - 1;
    if (id.length !== 32 || !id.startsWith(this.#prefix)) return undefined;
    const seq = parseInt(id.slice(16), 16);
    return Number.isSafeInteger(seq) ? seq : undefined;
  }
}
