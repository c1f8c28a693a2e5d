/**
 * A FIFO queue with O(1) push and shift, for message and waiter queues on the hot path.
 *
 * @module
 */

/** A first-in first-out queue. */
export class Deque<T> {
  #items: (T | undefined)[] = [];
  #head = 0;

  /** Number of items queued. */
  get length(): number {
    return this.#items.length - this.#head;
  }

  /** Appends an item. */
  push(item: T): void {
    this.#items.push(item);
  }

  /** Puts an item in front of all others. */
  unshift(item: T): void {
    if (this.#head > 0) this.#items[--this.#head] = item;
    else this.#items.unshift(item);
  }

  /** Removes and returns the oldest item. */
  shift(): T | undefined {
    if (this.#head >= this.#items.length) return undefined;
    const item = this.#items[this.#head];
    this.#items[this.#head++] = undefined;
    // Compact once the dead prefix dominates, so memory follows the live length.
    if (this.#head >= 1024 && this.#head * 2 >= this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return item;
  }

  /** The oldest item, left in place. */
  peek(): T | undefined {
    return this.#head < this.#items.length ? this.#items[this.#head] : undefined;
  }

  /** Removes every item and returns them in order. */
  drain(): T[] {
    const items = this.#items.slice(this.#head) as T[];
    this.#items = [];
    this.#head = 0;
    return items;
  }

  /** Removes the first item for which `match` holds; tells whether one was removed. */
  remove(match: (item: T) => boolean): boolean {
    for (let i = this.#head; i < this.#items.length; i++) {
      if (match(this.#items[i] as T)) {
        this.#items.splice(i, 1);
        return true;
      }
    }
    return false;
  }
}
