/**
 * The demo's model: stands for a model that takes 250 ms per request (say, on a GPU), as in
 * gibbs's documentation.
 *
 * @module
 */

/** URL of this module, to start workers serving the demo model. */
export const DEMO_MODEL_URL: string = import.meta.url;

/**
 * A slow model. Waiting rather than spinning keeps the CPU free, as a GPU-bound model does, so
 * that four of them on a two-core machine still show the speed-up of running in parallel.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import DemoModel from "./demo_model.ts";
 * const model = new DemoModel(0.01);
 * assert.equal(await model.call(21), 42);
 * ```
 */
export default class DemoModel {
  #seconds: number;

  /** Creates the model; `seconds` is the time one request takes (default 0.25). */
  constructor(seconds = 0.25) {
    this.#seconds = seconds;
  }

  /** Doubles `x`, slowly. */
  async call(x: number): Promise<number> {
    await new Promise((resolve) => setTimeout(resolve, this.#seconds * 1000));
    return x * 2;
  }
}
