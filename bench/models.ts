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

/** CPU-bound: computes for `ms` milliseconds (5 by default), blocking its thread. */
export function spin(ms = 5): number {
  const end = performance.now() + ms;
  let n = 0;
  while (performance.now() < end) n++;
  return n;
}

/** I/O-bound: waits `ms` milliseconds (50 by default) without using the CPU. */
export async function wait(ms = 50): Promise<number> {
  await new Promise((resolve) => setTimeout(resolve, ms));
  return ms;
}
