/**
 * The read-buffer policy both runtime adapters share: a small buffer per connection that
 * doubles while reads fill it, unless the caller offers a target to read straight into.
 *
 * @module
 */

/** First size of a connection's own read buffer: a hub may hold thousands of idle ones. */
export const READ_BUFFER_MIN = 16 * 1024;
/** Largest size the buffer grows to. */
export const READ_BUFFER_MAX = 256 * 1024;

/**
 * One connection's read buffer.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ReadBuffer } from "./read_buffer.ts";
 * const reads = new ReadBuffer();
 * const buffer = reads.next(null); // 16 KiB of our own
 * reads.filled(buffer, buffer.length); // a full read: the next buffer is twice as large
 * assert.equal(reads.next(null).length, 32768);
 * ```
 */
export class ReadBuffer {
  // A plain Uint8Array, not a Node Buffer: slice() on a Buffer would make a view of memory that
  // the next read overwrites, and the frame decoder copies with slice().
  #own = new Uint8Array(READ_BUFFER_MIN);

  /** The buffer to read into next: the caller's target when it offers one, else our own. */
  next(target: Uint8Array | null | undefined): Uint8Array {
    return target ?? this.#own;
  }

  /** Records that a read put `bytes` bytes into `buffer`; a full read of our own grows it. */
  filled(buffer: Uint8Array, bytes: number): void {
    const own = this.#own;
    if (buffer === own && bytes === own.length && own.length < READ_BUFFER_MAX) {
      this.#own = new Uint8Array(own.length * 2);
    }
  }
}
