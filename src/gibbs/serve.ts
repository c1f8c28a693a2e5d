/**
 * Serving requests with a handler, wherever it runs (the worker's own thread or a handler
 * thread): the call in its request context, a streamed result sent chunk by chunk within its
 * credit, a batch split back into one response per request, and every outcome encoded as the
 * gibbs response to send.
 *
 * @module
 */

import { CODE_ERROR, CODE_OK, encodeResponse, type Kwargs, pack } from "./codec.ts";
import { withRequestContext } from "./context.ts";
import { errorText, type Instance } from "./handler.ts";

/**
 * How many chunks of a stream may still be sent: the hub gives a window, and credit back as its
 * reader takes chunks. A chunk waits here when there is none.
 */
export class Credits {
  #left: number;
  #waiters: (() => void)[] = [];
  #closed: Error | null = null;

  /** Starts with `window` chunks allowed. */
  constructor(window: number) {
    this.#left = window;
  }

  /** The reader took `n` chunks: `n` more may go. */
  give(n: number): void {
    this.#left += n;
    while (this.#left > 0 && this.#waiters.length > 0) {
      this.#left--;
      this.#waiters.shift()!();
    }
  }

  /** Waits for credit for one chunk; rejects once the stream is given up. */
  take(): Promise<void> {
    if (this.#closed) return Promise.reject(this.#closed);
    if (this.#left > 0) {
      this.#left--;
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      this.#waiters.push(() => (this.#closed ? reject(this.#closed) : resolve()));
    });
  }

  /** Gives the stream up: waiting chunks reject with `reason`. */
  close(reason: Error): void {
    this.#closed = reason;
    for (const wake of this.#waiters.splice(0)) wake();
  }
}

/** How one call is controlled. */
export interface CallControl {
  /** Aborted when the caller gives up (the handler sees it as `requestSignal()`). */
  signal: AbortSignal;
  /**
   * Set for a streamed request: each value the handler yields is encoded as a chunk body
   * (`[req_id, value]`) and handed to `send` once `credits` allow it.
   */
  stream?: { credits: Credits; send(chunk: Uint8Array): void };
}

/** True for what a handler returns to stream its result: an async iterable, or a generator. */
function isStreaming(value: unknown): value is AsyncIterable<unknown> | Iterable<unknown> {
  if (typeof value !== "object" || value === null) return false;
  if (typeof (value as AsyncIterable<unknown>)[Symbol.asyncIterator] === "function") return true;
  // A generator streams; an array or a string, though iterable, is a value.
  return Object.prototype.toString.call(value) === "[object Generator]";
}

function cancelledText(signal: AbortSignal): string {
  const reason = signal.reason;
  return `Cancelled: ${reason instanceof Error ? reason.message : String(reason)}`;
}

/**
 * Serves one request with `instance` and returns the encoded response: code 0 with the result,
 * or code 1 with the error's text when the handler throws, its result cannot be encoded, or the
 * request was cancelled. A streamed result goes out chunk by chunk through `control.stream`
 * (the response then carries the number of chunks); without it, it is collected into a list.
 */
export async function respond(
  instance: Instance,
  reqId: string,
  args: readonly unknown[],
  kwargs: Kwargs,
  control: CallControl,
): Promise<Uint8Array> {
  const signal = control.signal;
  let result: unknown;
  try {
    if (instance.call === undefined) {
      throw new TypeError("This handler serves batches only: start its worker with a batch option");
    }
    // The context covers the iteration too: a generator's body runs as it is iterated.
    result = await withRequestContext({ requestId: reqId, signal }, async () => {
      const value = await instance.call!(args, kwargs);
      if (isStreaming(value)) return await drain(value, reqId, control);
      if (control.stream === undefined) return value;
      // A streamed request to a handler that returns one value: a stream of one chunk.
      await control.stream.credits.take();
      control.stream.send(pack([reqId, value]));
      return 1;
    });
  } catch (error) {
    if (signal.aborted) return encodeResponse(reqId, CODE_ERROR, cancelledText(signal));
    return encodeResponse(reqId, CODE_ERROR, errorText(error));
  }
  if (signal.aborted) return encodeResponse(reqId, CODE_ERROR, cancelledText(signal));
  return encodeResult(reqId, result);
}

/** Iterates a streamed result: sends each chunk (within credit), or collects them. */
async function drain(
  iterable: AsyncIterable<unknown> | Iterable<unknown>,
  reqId: string,
  control: CallControl,
): Promise<unknown> {
  const stream = control.stream;
  const collected: unknown[] = [];
  let count = 0;
  for await (const value of iterable as AsyncIterable<unknown>) {
    if (control.signal.aborted) throw control.signal.reason;
    if (stream === undefined) {
      collected.push(value);
      continue;
    }
    await stream.credits.take();
    stream.send(pack([reqId, value]));
    count++;
  }
  return stream === undefined ? collected : count;
}

function encodeResult(reqId: string, result: unknown): Uint8Array {
  try {
    return encodeResponse(reqId, CODE_OK, result);
  } catch (error) {
    return encodeResponse(
      reqId,
      CODE_ERROR,
      `The handler's result cannot be sent as msgpack: ${errorText(error)}`,
    );
  }
}

/** One request of a batch. */
export interface BatchItem {
  /** Its id. */
  reqId: string;
  /** Its positional arguments. */
  args: readonly unknown[];
  /** Its keyword arguments. */
  kwargs: Kwargs;
}

/**
 * Serves requests in one call of the handler's `batch`, and returns one encoded response per
 * request, in order: a result that is an `Error` fails its own request only; a `batch` that
 * throws, or returns a list of the wrong length, fails them all.
 */
export async function respondBatch(
  instance: Instance,
  items: readonly BatchItem[],
): Promise<Uint8Array[]> {
  const failAll = (text: string) =>
    items.map((item) => encodeResponse(item.reqId, CODE_ERROR, text));
  if (instance.batch === undefined) {
    return failAll("This handler has no batch(items) method (mark a function with batched())");
  }
  let results: unknown;
  try {
    const calls = items.map((item) =>
      Object.keys(item.kwargs).length > 0 ? [...item.args, item.kwargs] : [...item.args]
    );
    results = await instance.batch(calls);
  } catch (error) {
    return failAll(errorText(error));
  }
  if (!Array.isArray(results) || results.length !== items.length) {
    return failAll(
      `batch() must return one result per request: ${items.length} requests, got ${
        Array.isArray(results) ? `${results.length} results` : typeof results
      }`,
    );
  }
  return items.map((item, i) => {
    const result = results[i];
    if (result instanceof Error) return encodeResponse(item.reqId, CODE_ERROR, errorText(result));
    return encodeResult(item.reqId, result);
  });
}
