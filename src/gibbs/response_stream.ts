/**
 * The caller's side of a streamed request: an async iterable of the chunks a worker sends, with
 * flow control (the worker may run at most a window ahead of the reader).
 *
 * @module
 */

import { Deque } from "../socket/deque.ts";

/** Chunks a worker may send before the reader takes any (the stream's window). */
export const STREAM_WINDOW = 16;

/** What a stream asks of the hub that feeds it. */
export interface StreamFeed {
  /** The reader took `n` chunks: the worker may send `n` more. */
  credit(n: number): void;
  /** The reader stopped before the end (it broke out of its loop): cancel the request. */
  cancel(): void;
}

/**
 * The chunks of a streamed request, in order: `for await (const chunk of hub.stream(...))`.
 * An error (the handler threw, the worker was lost mid-stream, a timeout before the first
 * chunk, an abort) is thrown where it happened: after the chunks that came before it. Leaving
 * the loop early cancels the request.
 *
 * @example
 * ```ts ignore
 * for await (const token of hub.stream("Tell me a story")) console.log(token);
 * ```
 */
export class ResponseStream implements AsyncIterableIterator<unknown> {
  #chunks = new Deque<unknown>();
  #done = false;
  #error: Error | undefined;
  #waiter: { resolve: (r: IteratorResult<unknown>) => void; reject: (e: unknown) => void } | null =
    null;
  #feed: StreamFeed | null = null;
  #taken = 0;
  #window: number;
  /** Chunks received so far. */
  received = 0;

  /** Creates a stream; the hub attaches its feed once the request is made. */
  constructor(window = STREAM_WINDOW) {
    this.#window = window;
  }

  /** The window: chunks the worker may send ahead of the reader. */
  get window(): number {
    return this.#window;
  }

  /** True once the stream ended (with its last chunk read) or failed. */
  get closed(): boolean {
    return this.#done && this.#chunks.length === 0;
  }

  /** @ignore */
  attach(feed: StreamFeed): void {
    this.#feed = feed;
  }

  /**
   * A chunk arrived. Returns false when the worker ran past its window (a protocol error: the
   * hub never buffers more than the window for a reader).
   *
   * @ignore
   */
  push(chunk: unknown): boolean {
    if (this.#done) return true;
    if (this.#chunks.length >= this.#window) return false;
    this.received++;
    const waiter = this.#waiter;
    if (waiter !== null) {
      this.#waiter = null;
      this.#took();
      waiter.resolve({ value: chunk, done: false });
    } else {
      this.#chunks.push(chunk);
    }
    return true;
  }

  /**
   * The stream ended, with an error or without.
   *
   * @ignore
   */
  end(error?: Error): void {
    if (this.#done) return;
    this.#done = true;
    this.#error = error;
    const waiter = this.#waiter;
    if (waiter === null || this.#chunks.length > 0) return;
    this.#waiter = null;
    if (error) waiter.reject(error);
    else waiter.resolve({ value: undefined, done: true });
  }

  /** The next chunk. */
  next(): Promise<IteratorResult<unknown>> {
    if (this.#chunks.length > 0) {
      const value = this.#chunks.shift();
      this.#took();
      return Promise.resolve({ value, done: false });
    }
    if (this.#done) {
      if (this.#error) {
        const error = this.#error;
        this.#error = undefined; // thrown once; afterwards the stream is simply over
        return Promise.reject(error);
      }
      return Promise.resolve({ value: undefined, done: true });
    }
    if (this.#waiter !== null) {
      return Promise.reject(new Error("ResponseStream.next() called again before it settled"));
    }
    return new Promise((resolve, reject) => (this.#waiter = { resolve, reject }));
  }

  /** Stops reading: cancels the request if it is still running. */
  return(): Promise<IteratorResult<unknown>> {
    if (!this.#done) {
      this.#done = true;
      this.#chunks.drain();
      this.#feed?.cancel();
    }
    return Promise.resolve({ value: undefined, done: true });
  }

  /** Reads the whole stream into an array. */
  async toArray(): Promise<unknown[]> {
    const all: unknown[] = [];
    for await (const chunk of this) all.push(chunk);
    return all;
  }

  /** The stream is its own iterator: it can be read once. */
  [Symbol.asyncIterator](): AsyncIterableIterator<unknown> {
    return this;
  }

  /** Gives credit back in halves of the window, so that credits cost few messages. */
  #took(): void {
    if (++this.#taken >= Math.max(1, this.#window >> 1)) {
      const n = this.#taken;
      this.#taken = 0;
      this.#feed?.credit(n);
    }
  }
}
