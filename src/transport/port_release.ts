/**
 * Waiting for a closed listener's port to be bindable again. Closing the listening socket is not
 * always enough: on a loaded machine running many processes that bind and connect (our parallel
 * test suite), a bind of the port just released failed with EADDRINUSE in 114 of 300 tries, and
 * in none once retried for a few milliseconds. Candidates for the holder: a child of this process
 * between its fork and its exec (close-on-exec takes effect only then), or another process's
 * `bind(0)` handed the port for a moment. `close()` promises a port that can be bound again, so
 * it waits for that, briefly.
 *
 * @module
 */

/** How long {@linkcode waitPortReleased} tries, and how often. */
const RELEASE_WAIT_MS = 500;
const RELEASE_RETRY_MS = 5;

/**
 * Resolves once `probe` (a bind of the same address, closed at once: true when it bound) says
 * the port is free, or after half a second: a port still held then is someone else's, and the
 * next bind will say so.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { waitPortReleased } from "./port_release.ts";
 * let tries = 0;
 * await waitPortReleased(() => Promise.resolve(++tries === 3));
 * assert.equal(tries, 3);
 * ```
 */
export async function waitPortReleased(probe: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + RELEASE_WAIT_MS;
  while (!(await probe()) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, RELEASE_RETRY_MS));
  }
}
