/**
 * A FIFO queue with O(1) push and shift, for message and waiter queues on the hot path.
 *
 * @module
 */

/** Capacity of a new queue's ring; it doubles when full. */
const INITIAL_CAPACITY = 8;
/**
 * A ring at least this large halves once a quarter full, so that memory follows the length.
 * Not less: a connection's queue takes up to a read's worth of messages (about a thousand of
 * 64 bytes) and is emptied at once, and a smaller bound made it halve and double again for
 * every read (4 % of a busy receiver's time).
 */
const SHRINK_MIN = 4096;

/**
 * A first-in first-out queue, kept in a ring whose size is a power of two: pushing and shifting
 * never move items nor allocate, except when the ring doubles.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Deque } from "./deque.ts";
 * const queue = new Deque<number>();
 * queue.push(2);
 * queue.push(3);
 * queue.unshift(1);
 * assert.equal(queue.shift(), 1);
 * assert.deepEqual(queue.drain(), [2, 3]);
 * ```
 */
export class Deque<T> {
  #ring: (T | undefined)[] = new Array(INITIAL_CAPACITY);
  #mask = INITIAL_CAPACITY - 1;
  #head = 0;
  #length = 0;

  /** Number of items queued. */
  get length(): number {
    return this.#length;
  }

  /** Appends an item. */
  push(item: T): void {
    if (this.#length > this.#mask) this.#grow();
    this.#ring[(this.#head + this.#length) & this.#mask] = item;
    this.#length++;
  }

  /** Puts an item in front of all others. */
  unshift(item: T): void {
    if (this.#length > this.#mask) this.#grow();
    this.#head = (this.#head - 1) & this.#mask;
    this.#ring[this.#head] = item;
    this.#length++;
  }

  /** Removes and returns the oldest item. */
  shift(): T | undefined {
    if (this.#length === 0) return undefined;
    const head = this.#head;
    const item = this.#ring[head];
    this.#ring[head] = undefined;
    this.#head = (head + 1) & this.#mask;
    this.#length--;
    if (this.#mask >= SHRINK_MIN && this.#length <= this.#mask >> 2) {
      this.#resize((this.#mask + 1) >> 1);
    }
    return item;
  }

  /** The oldest item, left in place. */
  peek(): T | undefined {
    return this.#length === 0 ? undefined : this.#ring[this.#head];
  }

  /** Removes every item and returns them in order. */
  drain(): T[] {
    const items = this.#toArray();
    this.#ring = new Array(INITIAL_CAPACITY);
    this.#mask = INITIAL_CAPACITY - 1;
    this.#head = 0;
    this.#length = 0;
    return items;
  }

  /** Removes the first item for which `match` holds; tells whether one was removed. */
  remove(match: (item: T) => boolean): boolean {
    const ring = this.#ring;
    const mask = this.#mask;
    for (let i = 0; i < this.#length; i++) {
      if (!match(ring[(this.#head + i) & mask] as T)) continue;
      // Close the gap by moving the later items one place forward.
      for (let j = i; j < this.#length - 1; j++) {
        ring[(this.#head + j) & mask] = ring[(this.#head + j + 1) & mask];
      }
      ring[(this.#head + this.#length - 1) & mask] = undefined;
      this.#length--;
      return true;
    }
    return false;
  }

  #toArray(): T[] {
    const items = new Array<T>(this.#length);
    for (let i = 0; i < this.#length; i++) {
      items[i] = this.#ring[(this.#head + i) & this.#mask] as T;
    }
    return items;
  }

  #grow(): void {
    this.#resize((this.#mask + 1) * 2);
  }

  #resize(capacity: number): void {
    const items = this.#toArray();
    const ring = new Array<T | undefined>(capacity);
    for (let i = 0; i < items.length; i++) ring[i] = items[i];
    this.#ring = ring;
    this.#mask = capacity - 1;
    this.#head = 0;
  }
}
