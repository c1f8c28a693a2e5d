/**
 * Where a worker's handler runs: in the worker's own thread, or on handler threads (a Web Worker
 * on Deno, `node:worker_threads` on Node) so that the thread owning the connection stays free to
 * answer heartbeats while the handler computes.
 *
 * @module
 */

import { runtime } from "../transport/runtime.ts";
import type { Thread } from "../transport/runtime_types.ts";
import {
  CODE_ERROR,
  encodeRequest,
  encodeResponse,
  type Kwargs,
  type RequestMessage,
} from "./codec.ts";
import { GibbsError } from "./errors.ts";
import { errorText, type Handler, type Instance, instantiate } from "./handler.ts";
import { HandlerModuleError, type HandlerModuleReason, importHandler } from "./handler_module.ts";
import { Credits, respond, respondBatch } from "./serve.ts";
import type { FromThread, ToThread } from "./thread_protocol.ts";

// The thread's entry next door: `.ts` when running from source, `.js` in the npm build.
const THREAD_ENTRY = new URL(
  import.meta.url.endsWith(".ts") ? "./thread_entry.ts" : "./thread_entry.js",
  import.meta.url,
);

/** How a request's chunks leave, for a streamed request. */
export interface StreamOut {
  /** Chunks that may go before the hub gives credit. */
  window: number;
  /** Sends one encoded chunk body (`[req_id, value]`). */
  send(chunk: Uint8Array): void;
}

/** A request handed to an executor. */
export interface Job {
  /** The decoded request. */
  request: RequestMessage;
  /** Its bytes as the hub sent them (a plain gibbs request), when it came as one. */
  payload: Uint8Array | undefined;
}

/** Serves requests for a worker. */
export interface Executor {
  /** Handler threads (0: the worker's own thread). */
  readonly threads: number;
  /**
   * Loads and constructs the handler (on every thread). Rejects with what the module or the
   * constructor threw: the worker then fails before it connects.
   */
  start(): Promise<void>;
  /**
   * Serves one request; resolves with the encoded response (code 0 or 1), never rejects. With
   * `stream`, a streamed result leaves chunk by chunk.
   */
  serve(job: Job, stream?: StreamOut): Promise<Uint8Array>;
  /** Serves requests in one call of the handler's `batch`: one response each, in order. */
  serveBatch(jobs: readonly Job[]): Promise<Uint8Array[]>;
  /** A streamed request's reader took `n` chunks. */
  credit(reqId: string, n: number): void;
  /** The caller gave up on a request being served: its handler's signal aborts. */
  cancel(reqId: string, reason: Error): void;
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
  /** For `module`: why (see {@linkcode HandlerModuleReason}). */
  readonly reason: HandlerModuleReason | undefined;

  /** Creates the error from the thread's text. */
  constructor(detail: string, kind: "module" | "handler", reason?: HandlerModuleReason) {
    super(
      kind === "module" ? detail : `The handler failed to start: ${detail.split("\n")[0]}`,
    );
    this.name = "HandlerStartError";
    this.detail = detail;
    this.kind = kind;
    this.reason = reason;
  }
}

/** Runs the handler in the worker's own thread. */
export class InProcessExecutor implements Executor {
  readonly threads = 0;
  #instance: Instance | null = null;
  #load: (() => Promise<Handler>) | null = null;
  #args: readonly unknown[];
  #kwargs: Kwargs;
  #calls = new Map<string, { controller: AbortController; credits?: Credits }>();

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
      this.#instance = instantiate(handler, args, kwargs);
    }
  }

  async start(): Promise<void> {
    if (this.#instance !== null || this.#load === null) return;
    let handler: Handler;
    try {
      handler = await this.#load();
    } catch (error) {
      if (error instanceof HandlerModuleError) {
        throw new HandlerStartError(error.message, "module", error.reason);
      }
      throw new HandlerStartError(errorText(error), "handler");
    }
    try {
      this.#instance = instantiate(handler, this.#args, this.#kwargs);
    } catch (error) {
      throw new HandlerStartError(errorText(error), "handler");
    }
  }

  async serve(job: Job, stream?: StreamOut): Promise<Uint8Array> {
    const { reqId, args, kwargs } = job.request;
    const controller = new AbortController();
    const credits = stream ? new Credits(stream.window) : undefined;
    this.#calls.set(reqId, { controller, credits });
    try {
      return await respond(this.#instance!, reqId, args, kwargs, {
        signal: controller.signal,
        stream: credits && { credits, send: stream!.send },
      });
    } finally {
      this.#calls.delete(reqId);
    }
  }

  serveBatch(jobs: readonly Job[]): Promise<Uint8Array[]> {
    return respondBatch(this.#instance!, jobs.map((job) => job.request));
  }

  credit(reqId: string, n: number): void {
    this.#calls.get(reqId)?.credits?.give(n);
  }

  cancel(reqId: string, reason: Error): void {
    const call = this.#calls.get(reqId);
    if (call === undefined) return;
    call.controller.abort(reason);
    call.credits?.close(reason);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

function isModule(handler: unknown): handler is { module: URL; export: string } {
  return typeof handler === "object" && handler !== null && (handler as { module?: unknown })
        .module instanceof URL;
}

/** A call in a thread's hands: how to answer it, and where its chunks go. */
interface LaneCall {
  /** The request ids it answers (one; several for a batch). */
  reqIds: string[];
  resolve(responses: Uint8Array[]): void;
  stream?: StreamOut;
}

interface Lane {
  thread: Thread;
  inFlight: number;
  calls: Map<number, LaneCall>;
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
  /** Where each request being served is: its thread and call, for credit and cancel. */
  #byReqId = new Map<string, { lane: Lane; id: number }>();

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

  async serve(job: Job, stream?: StreamOut): Promise<Uint8Array> {
    const { reqId, args, kwargs } = job.request;
    // The frame may view a larger read buffer: move a copy of just its bytes.
    const payload = job.payload?.slice() ?? encodeRequest(reqId, args, kwargs).slice();
    const [response] = await this.#call([reqId], (lane, id) => {
      lane.thread.post(
        { type: "call", id, payload, window: stream?.window } satisfies ToThread,
        [payload.buffer],
      );
    }, stream);
    return response;
  }

  serveBatch(jobs: readonly Job[]): Promise<Uint8Array[]> {
    const payloads = jobs.map((job) =>
      job.payload?.slice() ?? encodeRequest(job.request.reqId, job.request.args, job.request.kwargs)
    );
    return this.#call(jobs.map((job) => job.request.reqId), (lane, id) => {
      lane.thread.post(
        { type: "batch", id, payloads } satisfies ToThread,
        payloads.map((p) => p.buffer as ArrayBuffer),
      );
    });
  }

  credit(reqId: string, n: number): void {
    const at = this.#byReqId.get(reqId);
    at?.lane.thread.post({ type: "credit", id: at.id, n } satisfies ToThread);
  }

  cancel(reqId: string, reason: Error): void {
    const at = this.#byReqId.get(reqId);
    at?.lane.thread.post({ type: "cancel", id: at.id, reason: reason.message } satisfies ToThread);
  }

  async close(): Promise<void> {
    this.#closed = true;
    const lanes = this.#lanes;
    this.#lanes = [];
    await Promise.all(lanes.map((lane) => lane.thread.terminate()));
  }

  /** Posts a call to the least busy thread and resolves with its responses. */
  #call(
    reqIds: string[],
    post: (lane: Lane, id: number) => void,
    stream?: StreamOut,
  ): Promise<Uint8Array[]> {
    const failAll = (text: string) =>
      Promise.resolve(reqIds.map((reqId) => encodeResponse(reqId, CODE_ERROR, text)));
    let lane = this.#lanes[0];
    for (const l of this.#lanes) if (l.inFlight < lane.inFlight) lane = l;
    if (lane === undefined || this.#closed) {
      return failAll("The worker's handler threads are stopped");
    }
    if (lane.replacement !== null) {
      return lane.replacement.then((fresh) =>
        fresh === null
          ? failAll("The handler thread could not be restarted")
          : this.#call(reqIds, post, stream)
      );
    }
    const id = this.#nextId++;
    lane.inFlight++;
    for (const reqId of reqIds) this.#byReqId.set(reqId, { lane, id });
    return new Promise((resolve) => {
      lane.calls.set(id, {
        reqIds,
        resolve: (responses) => {
          for (const reqId of reqIds) this.#byReqId.delete(reqId);
          resolve(responses);
        },
        stream,
      });
      post(lane, id);
    });
  }

  #startLane(): Promise<Lane> {
    const thread = runtime.startThread(THREAD_ENTRY);
    const lane: Lane = { thread, inFlight: 0, calls: new Map(), replacement: null };
    return new Promise((resolve, reject) => {
      let ready = false;
      thread.onMessage((data) => {
        const message = data as FromThread;
        switch (message.type) {
          case "chunk":
            lane.calls.get(message.id)?.stream?.send(message.chunk);
            break;
          case "done":
          case "batch-done": {
            const call = lane.calls.get(message.id);
            if (call === undefined) return;
            lane.calls.delete(message.id);
            lane.inFlight--;
            call.resolve(message.type === "done" ? [message.response] : message.responses);
            break;
          }
          case "ready":
            ready = true;
            resolve(lane);
            break;
          case "init-error":
            thread.terminate();
            reject(new HandlerStartError(message.text, message.kind, message.reason));
            break;
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
      call.resolve(call.reqIds.map((reqId) => encodeResponse(reqId, CODE_ERROR, text)));
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
