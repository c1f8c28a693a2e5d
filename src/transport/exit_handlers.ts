/**
 * Handlers run when the process ends, behind one listener of the runtime's own exit event
 * (attached while there is a handler): how each adapter implements `Runtime.onExit`.
 *
 * @module
 */

/**
 * Makes an `onExit(handler)` whose handlers run, each once, from the one listener that `attach`
 * registers (and `detach` removes when the last handler is gone). It returns a function that
 * removes the handler.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { exitHandlers } from "./exit_handlers.ts";
 * let fire = () => {};
 * const onExit = exitHandlers((run) => fire = run, () => fire = () => {});
 * const ran: string[] = [];
 * onExit(() => ran.push("a"));
 * const remove = onExit(() => ran.push("b"));
 * remove();
 * fire();
 * assert.deepEqual(ran, ["a"]);
 * ```
 */
export function exitHandlers(
  attach: (run: () => void) => void,
  detach: (run: () => void) => void,
): (handler: () => void) => () => void {
  const handlers = new Set<() => void>();
  const run = (): void => {
    for (const handler of [...handlers]) {
      try {
        handler();
      } catch {
        // One failing handler must not keep the others from running.
      }
    }
  };
  return (handler) => {
    if (handlers.size === 0) attach(run);
    handlers.add(handler);
    return () => {
      handlers.delete(handler);
      if (handlers.size === 0) detach(run);
    };
  };
}
