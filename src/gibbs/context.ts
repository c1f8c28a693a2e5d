/**
 * What a handler can learn about the request it serves, without a change to its arguments:
 * `requestSignal()` anywhere in a handler's code (before or after an `await`) gives the request's
 * `AbortSignal`, aborted when the caller gives up (its signal, its timeout, an HTTP client gone).
 *
 * @module
 */

import { runtime } from "../transport/runtime.ts";

/** The request a handler is serving. */
export interface RequestContext {
  /** The request's id (32 hex chars). */
  readonly requestId: string;
  /** Aborted when the caller gives up; its reason says why. */
  readonly signal: AbortSignal;
}

const store = runtime.asyncContext<RequestContext>();
const NEVER = new AbortController().signal;

/**
 * The `AbortSignal` of the request the calling handler serves; outside a handler, a signal that
 * never aborts. A handler that stops early when it fires frees its worker's slot at once.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { requestSignal } from "./context.ts";
 * async function generate(prompt: string) {
 *   const signal = requestSignal();
 *   for (let i = 0; i < 1000; i++) {
 *     if (signal.aborted) throw signal.reason; // the caller went away: stop computing
 *     await new Promise((r) => setTimeout(r, 1));
 *   }
 *   return prompt;
 * }
 * assert.equal(requestSignal().aborted, false);
 * ```
 */
export function requestSignal(): AbortSignal {
  return store.get()?.signal ?? NEVER;
}

/** The request the calling handler serves, or undefined outside a handler. */
export function requestContext(): RequestContext | undefined {
  return store.get();
}

/**
 * Runs a handler call with its request context.
 *
 * @ignore
 */
export function withRequestContext<R>(context: RequestContext, fn: () => R): R {
  return store.run(context, fn);
}
