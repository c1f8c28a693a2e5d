/**
 * How a worker's code is called: the same convention for constructor and request arguments.
 *
 * @module
 */

import { CODE_ERROR, CODE_OK, encodeResponse, type Kwargs } from "./codec.ts";

/** A function serving requests. */
export type HandlerFunction = (...args: any[]) => unknown;

/** A class whose instances serve requests with their `call` method. */
export interface HandlerClass {
  /** Builds the instance from the worker's constructor arguments. */
  new (...args: any[]): { call(...args: any[]): unknown };
}

/** What a worker can serve: a function, a class with a `call` method, or an object with one. */
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

function isClass(handler: unknown): handler is HandlerClass {
  return typeof handler === "function" &&
    typeof (handler as { prototype?: { call?: unknown } }).prototype?.call === "function";
}

/**
 * Turns a handler into the function that serves one request, constructing a class once with
 * the constructor arguments.
 *
 * @throws whatever the class constructor throws (the worker then fails to start)
 */
export function instantiate(
  handler: Handler,
  args: readonly unknown[] = [],
  kwargs: Kwargs = {},
): (args: readonly unknown[], kwargs: Kwargs) => unknown {
  if (isClass(handler)) {
    const instance = new handler(...callArgs(args, kwargs));
    return (a, k) => instance.call(...callArgs(a, k));
  }
  if (typeof handler === "function") {
    const fn = handler as HandlerFunction;
    return (a, k) => fn(...callArgs(a, k));
  }
  if (handler !== null && typeof handler === "object" && typeof handler.call === "function") {
    return (a, k) => handler.call(...callArgs(a, k));
  }
  throw new TypeError(
    "A worker handler must be a function, a class with a call() method, or an object with one",
  );
}

/** The text sent back for a failure: the stack when there is one, as gibbs sends a traceback. */
export function errorText(error: unknown): string {
  if (error instanceof Error) return error.stack ?? `${error.name}: ${error.message}`;
  return `Thrown: ${String(error)}`;
}

/**
 * Serves one request with `serve` and returns the encoded response: code 0 with the result, or
 * code 1 with the error's text when the handler throws or its result cannot be encoded.
 */
export async function respond(
  serve: (args: readonly unknown[], kwargs: Kwargs) => unknown,
  reqId: string,
  args: readonly unknown[],
  kwargs: Kwargs,
): Promise<Uint8Array> {
  let result: unknown;
  try {
    result = await serve(args, kwargs);
  } catch (error) {
    return encodeResponse(reqId, CODE_ERROR, errorText(error));
  }
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
