/**
 * Messages between a worker and its handler threads (see executor.ts and thread_entry.ts).
 * Requests travel as the bytes the hub sent and answers as the bytes to send it: decoding and
 * encoding happen on the handler's thread.
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
  /** Set for a streamed request: the chunks it may send before more credit. */
  window?: number;
}

/** Worker → thread: serve requests in one call of the handler's `batch`. */
export interface BatchMessage {
  /** Discriminant. */
  type: "batch";
  /** Matches the answer to the call. */
  id: number;
  /** The requests' msgpack payloads. */
  payloads: Uint8Array[];
}

/** Worker → thread: a stream's reader took `n` chunks. */
export interface CreditMessage {
  /** Discriminant. */
  type: "credit";
  /** The call. */
  id: number;
  /** Chunks that may now go. */
  n: number;
}

/** Worker → thread: the caller gave up on a call. */
export interface CancelMessage {
  /** Discriminant. */
  type: "cancel";
  /** The call. */
  id: number;
  /** Why, in words (the handler's signal aborts with an Error of this message). */
  reason: string;
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
  /** For `module`: why. */
  reason?: "not-found" | "load-failed" | "no-export" | "not-callable";
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

/** Thread → worker: one chunk of a streamed call, as the msgpack `[req_id, value]` to send. */
export interface ChunkMessage {
  /** Discriminant. */
  type: "chunk";
  /** The call's id. */
  id: number;
  /** The encoded chunk body. */
  chunk: Uint8Array;
}

/** Thread → worker: a batch's answers, one encoded response per request, in order. */
export interface BatchDoneMessage {
  /** Discriminant. */
  type: "batch-done";
  /** The call's id. */
  id: number;
  /** The encoded responses. */
  responses: Uint8Array[];
}

/** What a worker sends its threads. */
export type ToThread = InitMessage | CallMessage | BatchMessage | CreditMessage | CancelMessage;
/** What a thread sends its worker. */
export type FromThread =
  | ReadyMessage
  | InitErrorMessage
  | DoneMessage
  | ChunkMessage
  | BatchDoneMessage;
