/**
 * Messages between a worker and its handler threads (see thread_pool.ts and thread_entry.ts).
 *
 * @module
 */

import type { Kwargs } from "./codec.ts";

/** Worker → thread, first: which module to serve and how to construct its handler. */
export interface InitMessage {
  /** Discriminant. */
  type: "init";
  /** URL of the handler's module. */
  module: string;
  /** Name of the export to serve. */
  export: string;
  /** Constructor arguments of a class handler. */
  args: unknown[];
  /** Constructor keyword arguments of a class handler. */
  kwargs: Kwargs;
}

/** Worker → thread: serve one request, given as the bytes the hub sent. */
export interface CallMessage {
  /** Discriminant. */
  type: "call";
  /** Matches the answer to the call. */
  id: number;
  /** The request's msgpack `[req_id, args, kwargs]`. */
  payload: Uint8Array;
}

/** Thread → worker: the handler is constructed and serves. */
export interface ReadyMessage {
  /** Discriminant. */
  type: "ready";
}

/** Thread → worker: loading the module or constructing the handler failed. */
export interface InitErrorMessage {
  /** Discriminant. */
  type: "init-error";
  /** What failed, with its stack. */
  text: string;
  /** `module`: the module could not be loaded or lacks the export; `handler`: it threw. */
  kind: "module" | "handler";
}

/** Thread → worker: a call's answer, as the msgpack `[req_id, code, result]` to send. */
export interface DoneMessage {
  /** Discriminant. */
  type: "done";
  /** The call's id. */
  id: number;
  /** The encoded response. */
  response: Uint8Array;
}

/** What a worker sends its threads. */
export type ToThread = InitMessage | CallMessage;
/** What a thread sends its worker. */
export type FromThread = ReadyMessage | InitErrorMessage | DoneMessage;
