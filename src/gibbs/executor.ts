/**
 * Where a worker's handler runs: in the worker's own thread, or on handler threads (a Web Worker
 * on Deno, `node:worker_threads` on Node) so that the thread owning the connection stays free to
 * answer heartbeats while the handler computes.
 *
 * @module
 */

import { runtime } from "../transport/runtime.ts";
import type { Thread } from "../transport/runtime_types.ts";
import { CODE_ERROR, encodeResponse, type Kwargs, type RequestMessage } from "./codec.ts";
import { GibbsError } from "./errors.ts";
import { errorText, type Handler, instantiate, respond } from "./handler.ts";
import { HandlerModuleError, importHandler } from "./handler_module.ts";
import type { FromThread, ToThread } from "./thread_protocol.ts";

// The thread's entry next door: `.ts` when running from source, `.js` in the npm build.
const THREAD_ENTRY = new URL(
  import.meta.url.endsWith(".ts") ? "./thread_entry.ts" : "./thread_entry.js",
  import.meta.url,
);

/** Serves requests for a worker. */
export interface Executor {
  /** Handler threads (0: the worker's own thread). */
  readonly threads: number;
  /**
   * Loads and constructs the handler (on every thread). Rejects with what the module or the
   * constructor threw: the worker then fails before it connects.
   */
  start(): Promise<void>;
  /** Serves one request; resolves with the encoded response (code 0 or 1), never rejects. */
  serve(request: RequestMessage, payload: Uint8Array): Promise<Uint8Array>;
  /** Stops the threads. */
  close(): Promise<void>;
}

/**
 * A handler that failed to start on a thread: its module could not be loaded or lacks the
 * export (`kind: "module"`), or loading or constructing it threw (`kind: "handler"`).
 */
export class HandlerStartError extends GibbsError {
  /** The thread's account of the failure (a stack, for `handler`). */
  readonly detail: string;
  /** What failed. */
  readonly kind: "module" | "handler";

  /** Creates the error from the thread's text. */
  constructor(detail: string, kind: "module" | "handler") {
    super(
      kind === "module" ? detail : `The handler failed to start: ${detail.split("\n")[0]}`,
    );
    this.name = "HandlerStartError";
    this.detail = detail;
    this.kind = kind;
  }
}

/** Runs the handler in the worker's own thread. */
export class InProcessExecutor implements Executor {
  readonly threads = 0;
  #serve: ((args: readonly unknown[], kwargs: Kwargs) => unknown) | null = null;
  #load: (() => Promise<Handler>) | null = null;
  #args: readonly unknown[];
  #kwargs: Kwargs;

  /**
   * A handler given as a value is constructed at once (its constructor's error is thrown from
   * here); one given as a module is imported by {@linkcode InProcessExecutor.start}.
   */
  constructor(handler: Handler | { module: URL; export: string }, args: unknown[], kwargs: Kwargs) {
    this.#args = args;
    this.#kwargs = kwargs;
    if (isModule(handler)) {
      this.#load = () => importHandler(handler.module, handler.export);
    } else {
      this.#serve = instantiate(handler, args, kwargs);
    }
  }

  async start(): Promise<void> {
    if (this.#serve !== null || this.#load === null) return;
    let handler: Handler;
    try {
      handler = await this.#load();
    } catch (error) {
      if (error instanceof HandlerModuleError) throw new HandlerStartError(error.message, "module");
      throw new HandlerStartError(errorText(error), "handler");
    }
    try {
      this.#serve = instantiate(handler, this.#args, this.#kwargs);
    } catch (error) {
      throw new HandlerStartError(errorText(error), "handler");
    }
  }

  serve(request: RequestMessage): Promise<Uint8Array> {
    return respond(this.#serve!, request.reqId, request.args, request.kwargs);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

function isModule(handler: unknown): handler is { module: URL; export: string } {
  return typeof handler === "object" && handler !== null && (handler as { module?: unknown })
        .module instanceof URL;
}

interface Lane {
  thread: Thread;
  inFlight: number;
  calls: Map<number, { reqId: string; resolve: (response: Uint8Array) => void }>;
  /** Set while a fresh thread is being started in place of this failed one. */
  replacement: Promise<Lane | null> | null;
}

/**
 * Runs the handler on `count` threads, each of which imports the module and constructs its own
 * instance (threads share nothing). A call goes to the thread with the fewest calls in hand.
 */
export class ThreadPoolExecutor implements Executor {
  readonly threads: number;
  #init: ToThread;
  #lanes: Lane[] = [];
  #nextId = 0;
  #closed = false;
  #onFailure: (message: string) => void;

  /** Prepares `count` threads for the module's export; {@linkcode start} starts them. */
  constructor(
    module: URL,
    exportName: string,
    count: number,
    args: unknown[],
    kwargs: Kwargs,
    onFailure: (message: string) => void,
  ) {
    this.threads = count;
    this.#init = { type: "init", module: module.href, export: exportName, args, kwargs };
    this.#onFailure = onFailure;
  }

  async start(): Promise<void> {
    const started = await Promise.allSettled(
      Array.from({ length: this.threads }, () => this.#startLane()),
    );
    const failed = started.find((s) => s.status === "rejected");
    if (failed !== undefined) {
      await this.close();
      throw (failed as PromiseRejectedResult).reason;
    }
    this.#lanes = started.map((s) => (s as PromiseFulfilledResult<Lane>).value);
  }

  serve(request: RequestMessage, payload: Uint8Array): Promise<Uint8Array> {
    let lane = this.#lanes[0];
    for (const l of this.#lanes) if (l.inFlight < lane.inFlight) lane = l;
    if (lane === undefined || this.#closed) {
      return Promise.resolve(
        encodeResponse(request.reqId, CODE_ERROR, "The worker's handler threads are stopped"),
      );
    }
    if (lane.replacement !== null) {
      return lane.replacement.then((fresh) =>
        fresh === null
          ? encodeResponse(request.reqId, CODE_ERROR, "The handler thread could not be restarted")
          : this.serve(request, payload)
      );
    }
    const id = this.#nextId++;
    lane.inFlight++;
    return new Promise((resolve) => {
      lane.calls.set(id, { reqId: request.reqId, resolve });
      // The frame may view a larger read buffer: move a copy of just its bytes.
      const own = payload.slice();
      lane.thread.post({ type: "call", id, payload: own } satisfies ToThread, [own.buffer]);
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    const lanes = this.#lanes;
    this.#lanes = [];
    await Promise.all(lanes.map((lane) => lane.thread.terminate()));
  }

  #startLane(): Promise<Lane> {
    const thread = runtime.startThread(THREAD_ENTRY);
    const lane: Lane = { thread, inFlight: 0, calls: new Map(), replacement: null };
    return new Promise((resolve, reject) => {
      let ready = false;
      thread.onMessage((data) => {
        const message = data as FromThread;
        if (message.type === "done") {
          const call = lane.calls.get(message.id);
          if (call === undefined) return;
          lane.calls.delete(message.id);
          lane.inFlight--;
          call.resolve(message.response);
        } else if (message.type === "ready") {
          ready = true;
          resolve(lane);
        } else {
          thread.terminate();
          reject(new HandlerStartError(message.text, message.kind));
        }
      });
      thread.onError((error) => {
        if (!ready) {
          reject(new HandlerStartError(error.stack ?? error.message, "handler"));
          return;
        }
        this.#laneFailed(lane, error);
      });
      thread.post(this.#init);
    });
  }

  /** A thread died with calls in hand: they fail, and a fresh thread takes its place. */
  #laneFailed(lane: Lane, error: Error): void {
    const index = this.#lanes.indexOf(lane);
    if (this.#closed || index < 0) return;
    const text = `The handler thread failed: ${error.message}`;
    for (const call of lane.calls.values()) {
      call.resolve(encodeResponse(call.reqId, CODE_ERROR, text));
    }
    lane.calls.clear();
    lane.inFlight = 0;
    this.#onFailure(`${text}; starting a new thread`);
    lane.thread.terminate();
    // Until the new thread is ready, calls that pick this lane wait for it.
    lane.inFlight = Number.MAX_SAFE_INTEGER;
    lane.replacement = this.#startLane().then((fresh) => {
      if (this.#closed) {
        fresh.thread.terminate();
        return null;
      }
      this.#lanes[this.#lanes.indexOf(lane)] = fresh;
      return fresh;
    }, (startError) => {
      this.#onFailure(`a new handler thread failed to start: ${startError.message}`);
      return null;
    });
  }
}
