/**
 * Work deferred to the end of the event loop's turn, shared by every connection: one
 * `setImmediate` per turn however many callbacks wait, instead of a timer each (a timer cost
 * about 2 µs of a hub's time per request with a thousand workers).
 *
 * @module
 */

/**
 * Makes an `afterTurn(fn)`: `fn` runs once the current turn of the event loop is over, after the
 * microtasks queued now and the other callbacks of this turn. Callbacks added while they run
 * wait for the next turn. `schedule` runs its callback at the end of a turn (`setImmediate`
 * where there is one; each runtime adapter passes its own).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { setImmediate } from "node:timers";
 * import { turnQueue } from "./turn.ts";
 * const afterTurn = turnQueue(setImmediate);
 * const order: string[] = [];
 * afterTurn(() => order.push("after the turn"));
 * queueMicrotask(() => order.push("microtask"));
 * await new Promise<void>((resolve) => afterTurn(resolve));
 * assert.deepEqual(order, ["microtask", "after the turn"]);
 * ```
 */
export function turnQueue(schedule: (run: () => void) => unknown): (fn: () => void) => void {
  let queue: Array<() => void> = [];
  let spare: Array<() => void> = [];
  let scheduled = false;
  const runQueued = (): void => {
    scheduled = false;
    const run = queue;
    queue = spare;
    let failure: { error: unknown } | undefined;
    for (let i = 0; i < run.length; i++) {
      try {
        run[i]();
      } catch (error) {
        // One failing callback must not keep the others from running; the error is not lost.
        failure ??= { error };
      }
    }
    run.length = 0;
    spare = run;
    if (failure !== undefined) {
      queueMicrotask(() => {
        throw failure.error;
      });
    }
  };
  return (fn) => {
    queue.push(fn);
    if (!scheduled) {
      scheduled = true;
      schedule(runQueued);
    }
  };
}
