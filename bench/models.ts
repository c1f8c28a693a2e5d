/**
 * Trivial models for the hub benchmarks, the same work as the Python anchor's `add` model.
 *
 * @module
 */

/** Adds its arguments. */
export default function add(...args: number[]): number {
  let sum = 0;
  for (const x of args) sum += x;
  return sum;
}
