/**
 * How a worker's code is called: the same convention for constructor and request arguments.
 *
 * @module
 */

import type { Kwargs } from "./codec.ts";

// `any` in the handler types below: a handler's parameters are the caller's to type, and
// `unknown[]` would refuse `(a: number) => …` under strictFunctionTypes.

/** A function serving requests. */
// deno-lint-ignore no-explicit-any
export type HandlerFunction = (...args: any[]) => unknown;

/** A class whose instances serve requests with their `call` method (or `batch`). */
export interface HandlerClass {
  /** Builds the instance from the worker's constructor arguments. */
  // deno-lint-ignore no-explicit-any
  new (...args: any[]): { call?(...args: any[]): unknown; batch?(items: any[][]): unknown };
}

/**
 * What a worker can serve: a function (or one marked {@linkcode batched}), a class with a
 * `call` or `batch` method, or an object with a `call` method.
 */
// deno-lint-ignore no-explicit-any
export type Handler = HandlerFunction | HandlerClass | { call(...args: any[]): unknown };

/**
 * Spreads positional args and appends kwargs as one trailing plain object when it has keys, so
 * that Python's `f(x, scale=2)` arrives as `f(x, { scale: 2 })`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { callArgs } from "./handler.ts";
 * assert.deepEqual(callArgs([1, 2], {}), [1, 2]);
 * assert.deepEqual(callArgs([1], { scale: 2 }), [1, { scale: 2 }]);
 * ```
 */
export function callArgs(args: readonly unknown[], kwargs: Kwargs): unknown[] {
  return Object.keys(kwargs).length > 0 ? [...args, kwargs] : [...args];
}

/**
 * A handler as a worker calls it: `call` serves one request, `batch` a list of them (see
 * {@linkcode batched}). A handler has one or both.
 */
export interface Instance {
  /** Serves one request. */
  call?: (args: readonly unknown[], kwargs: Kwargs) => unknown;
  /** Serves several requests at once: one argument list per request, results in order. */
  batch?: (items: unknown[][]) => unknown;
}

const BATCHED = Symbol.for("gibbs.batched");

/**
 * Marks a function as serving requests in batches: it is called with a list of argument lists
 * (one per request, each as `call` would get them) and returns the list of their results in
 * the same order. A result that is an `Error` fails that request only. Serve it with a worker's
 * `batch` option; a class can instead have a `batch(items)` method.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { batched, instantiate } from "./handler.ts";
 * const embed = batched((items: unknown[][]) => items.map(([text]) => String(text).length));
 * assert.deepEqual(instantiate(embed).batch!([["ab"], ["abc"]]), [2, 3]);
 * ```
 */
// deno-lint-ignore no-explicit-any
export function batched<F extends (items: any[]) => unknown>(fn: F): F {
  Object.defineProperty(fn, BATCHED, { value: true });
  return fn;
}

function isClass(handler: unknown): handler is HandlerClass {
  const proto = (handler as { prototype?: { call?: unknown; batch?: unknown } }).prototype;
  return typeof handler === "function" &&
    (typeof proto?.call === "function" || typeof proto?.batch === "function");
}

/**
 * Turns a handler into what serves requests, constructing a class once with the constructor
 * arguments.
 *
 * @throws whatever the class constructor throws (the worker then fails to start)
 */
export function instantiate(
  handler: Handler,
  args: readonly unknown[] = [],
  kwargs: Kwargs = {},
): Instance {
  if (isClass(handler)) {
    const instance = new handler(...callArgs(args, kwargs)) as {
      call?: (...a: unknown[]) => unknown;
      batch?: (items: unknown[][]) => unknown;
    };
    return {
      call: typeof instance.call === "function"
        ? (a, k) => instance.call!(...callArgs(a, k))
        : undefined,
      batch: typeof instance.batch === "function" ? (items) => instance.batch!(items) : undefined,
    };
  }
  if (typeof handler === "function") {
    const fn = handler as HandlerFunction;
    if ((fn as unknown as Record<symbol, unknown>)[BATCHED]) return { batch: (items) => fn(items) };
    return { call: (a, k) => fn(...callArgs(a, k)) };
  }
  if (handler !== null && typeof handler === "object" && typeof handler.call === "function") {
    const object = handler as {
      call(...a: unknown[]): unknown;
      batch?: (i: unknown[][]) => unknown;
    };
    return {
      call: (a, k) => object.call(...callArgs(a, k)),
      batch: typeof object.batch === "function" ? (items) => object.batch!(items) : undefined,
    };
  }
  throw new TypeError(
    "A worker handler must be a function, a class with a call() or batch() method, or an " +
      "object with one",
  );
}

/** The text sent back for a failure: the stack when there is one, as gibbs sends a traceback. */
export function errorText(error: unknown): string {
  if (error instanceof Error) return error.stack ?? `${error.name}: ${error.message}`;
  return `Thrown: ${String(error)}`;
}
