/**
 * Trivial models for the hub benchmarks, the same work as the Python anchor's `add` model.
 *
 * @module
 */

import { requestSignal } from "../mod.ts";

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

/** Computes for `ms` milliseconds on its thread, as a device busy with one call would be. */
function busy(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    // spin
  }
}

/**
 * GPU-like: each call costs 2 ms, plus 0.05 ms per item, whatever the batch size; `call` serves
 * one request (a batch of one), `batch` many at once.
 */
export class GpuLike {
  call(x: number): number {
    busy(2 + 0.05);
    return x * 2;
  }

  batch(items: [number][]): number[] {
    busy(2 + 0.05 * items.length);
    return items.map(([x]) => x * 2);
  }
}

/** Streams `n` chunks, `ms` apart (0: as fast as the reader takes them). */
export async function* chunks(n: number, ms = 0): AsyncGenerator<number> {
  for (let i = 0; i < n; i++) {
    if (ms > 0) await new Promise((resolve) => setTimeout(resolve, ms));
    yield i;
  }
}

/** Waits `ms` (a long computation), or stops as soon as its caller gives up. */
export async function cancellable(ms: number): Promise<number> {
  const signal = requestSignal();
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });
  signal.throwIfAborted();
  return ms;
}
