/**
 * The hub's figures with no I/O: counters as numbers, histograms with fixed buckets, and a
 * per-second history of the last minutes. Nothing here allocates per observation, so counting
 * every request costs a few additions (see `bench/metrics_cost_bench.ts`). Time is passed in,
 * in milliseconds, as the hub's clock gives it.
 *
 * @module
 */

import {
  GibbsError,
  HubClosedError,
  QueueFullError,
  RequestEvictedError,
  RequestTimeoutError,
  UserCodeError,
  WorkerProtocolError,
} from "./errors.ts";

/**
 * Upper bounds of the latency buckets, in ms: 100 µs to 60 s, about 2.5× apart, which covers an
 * in-process echo as well as a model computing for a minute.
 */
export const LATENCY_BUCKETS_MS: readonly number[] = [
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
  25,
  50,
  100,
  250,
  500,
  1000,
  2500,
  5000,
  10_000,
  30_000,
  60_000,
];

/**
 * How a request ended, as the `outcome` label of `gibbs_requests_total` names it:
 * `ok`; `user_error` (the worker's code threw); `timeout` (after its retries); `evicted` (pushed
 * out of the response buffer); `rejected` (the queue was full); `cancelled` (its signal
 * aborted); `closed` (the hub closed); `worker_error` (a worker answered garbage and no sound
 * worker was left); `lost` (given up after repeated re-dispatches, or the hub could not listen).
 */
export const OUTCOMES = [
  "ok",
  "user_error",
  "timeout",
  "evicted",
  "rejected",
  "cancelled",
  "closed",
  "worker_error",
  "lost",
] as const;

/** One of {@linkcode OUTCOMES}. */
export type OutcomeLabel = typeof OUTCOMES[number];

const O_OK = 0;
const O_USER = 1;

/** The index in {@linkcode OUTCOMES} of a request that failed with `error`. */
export function outcomeOf(error: unknown): number {
  // Most likely first: a failing model, then the hub's own limits.
  if (error instanceof UserCodeError) return O_USER;
  if (error instanceof RequestTimeoutError) return 2;
  if (error instanceof RequestEvictedError) return 3;
  if (error instanceof QueueFullError) return 4;
  if (error instanceof HubClosedError) return 6;
  if (error instanceof WorkerProtocolError) return 7;
  if (error instanceof GibbsError) return 8;
  // Only an abort ends a request with an error that is not ours (the signal's reason).
  return 5;
}

/**
 * A histogram with fixed buckets, observed in ms. Counts are kept per bucket (the last one is
 * `+Inf`) and made cumulative only when read.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Histogram } from "./metrics.ts";
 * const h = new Histogram([1, 10, 100]);
 * for (const ms of [0.5, 2, 3, 50, 500]) h.observe(ms);
 * assert.equal(h.count, 5);
 * assert.deepEqual(h.cumulative(), [1, 3, 4, 5]);
 * // the 2.5th of 5 observations lies 3/4 of the way through the (1, 10] bucket
 * assert.equal(h.quantile(0.5), 7.75);
 * ```
 */
export class Histogram {
  /** Upper bounds of the finite buckets, ascending, in ms. */
  readonly bounds: Float64Array;
  /** Observations per bucket; the last entry is the `+Inf` bucket. */
  readonly counts: Float64Array;
  /** Sum of the observations, in ms. */
  sum = 0;
  /** Number of observations. */
  count = 0;

  /** Makes an empty histogram with these upper bounds (ms, ascending). */
  constructor(bounds: readonly number[] = LATENCY_BUCKETS_MS) {
    for (let i = 1; i < bounds.length; i++) {
      if (!(bounds[i] > bounds[i - 1])) throw new RangeError("histogram bounds must ascend");
    }
    this.bounds = Float64Array.from(bounds);
    this.counts = new Float64Array(bounds.length + 1);
  }

  /** Records one observation of `ms`; returns the index of its bucket. */
  observe(ms: number): number {
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && ms > bounds[i]) i++;
    this.counts[i]++;
    this.sum += ms;
    this.count++;
    return i;
  }

  /** Cumulative counts, one per bucket, the last being the total (Prometheus's `le` series). */
  cumulative(): number[] {
    const out = new Array<number>(this.counts.length);
    let total = 0;
    for (let i = 0; i < this.counts.length; i++) out[i] = total += this.counts[i];
    return out;
  }

  /** Estimated `q`-quantile in ms (see {@linkcode quantileOf}); NaN when empty. */
  quantile(q: number): number {
    return quantileOf(this.bounds, this.counts, 0, q);
  }
}

/**
 * Estimates a quantile from per-bucket counts as Prometheus's `histogram_quantile` does:
 * linearly within the bucket where it falls, from 0 for the first bucket; in the `+Inf` bucket
 * it is the largest finite bound. `counts` holds `bounds.length + 1` entries from `offset`.
 */
export function quantileOf(
  bounds: ArrayLike<number>,
  counts: ArrayLike<number>,
  offset: number,
  q: number,
): number {
  let total = 0;
  for (let i = 0; i <= bounds.length; i++) total += counts[offset + i];
  if (total === 0) return NaN;
  const rank = q * total;
  let below = 0;
  for (let i = 0; i < bounds.length; i++) {
    const n = counts[offset + i];
    if (below + n >= rank && n > 0) {
      const lower = i === 0 ? 0 : bounds[i - 1];
      return lower + (bounds[i] - lower) * ((rank - below) / n);
    }
    below += n;
  }
  return bounds[bounds.length - 1];
}

/** The figures of one service: requests by outcome and their timings. */
export class ServiceMetrics {
  /** The service's name (`"default"` until named services exist). */
  readonly name: string;
  /** Requests ended, indexed as {@linkcode OUTCOMES}. */
  readonly requests: Float64Array = new Float64Array(OUTCOMES.length);
  /** From the request's creation to the send that was answered (requests that were sent). */
  readonly queueWait: Histogram = new Histogram();
  /** From the last send to the answer (answered requests: ok and user errors). */
  readonly service: Histogram = new Histogram();
  /** From the request's creation to its end (every request). */
  readonly latency: Histogram = new Histogram();

  /** Makes the figures of service `name`, all zero. */
  constructor(name: string) {
    this.name = name;
  }
}

/** A request's times, as the dispatcher keeps them (ms on the hub's clock). */
export interface RequestTimes {
  /** When it was made. */
  readonly createdAt: number;
  /** When it was last sent to a worker. */
  readonly sentAt: number;
  /** The workers it was sent to (empty if never sent). */
  readonly sentTo: readonly unknown[];
}

/**
 * Records a request that ended with outcome index `outcome` (see {@linkcode outcomeOf}) at
 * `now` into `service` and `history`. No allocation.
 */
export function recordRequest(
  service: ServiceMetrics,
  history: History,
  request: RequestTimes,
  outcome: number,
  now: number,
): void {
  service.requests[outcome]++;
  const ms = now - request.createdAt;
  const bucket = service.latency.observe(ms);
  if (request.sentTo.length > 0) {
    service.queueWait.observe(request.sentAt - request.createdAt);
    if (outcome === O_OK || outcome === O_USER) service.service.observe(now - request.sentAt);
  }
  history.record(now, outcome !== O_OK, bucket);
}

/** Seconds of history the hub keeps for its dashboard. */
export const HISTORY_SECONDS = 300;

/** The history as series, oldest second first; the last entry is the current second. */
export interface HistorySeries {
  /** Seconds covered (the length of each series). */
  seconds: number;
  /** Requests ended in each second. */
  requests: number[];
  /** Requests that ended with an error (anything but `ok`) in each second. */
  errors: number[];
  /** Median end-to-end latency of the requests ended in each second, ms (null: none). */
  p50Ms: (number | null)[];
  /** 99th percentile of the same, ms (null: none). */
  p99Ms: (number | null)[];
  /** Most requests waiting for a worker seen in each second (null: not sampled). */
  queued: (number | null)[];
  /** Workers connected when last sampled in each second (null: not sampled). */
  workers: (number | null)[];
  /** The last {@linkcode WINDOW_SECONDS} seconds (the current one included) taken together. */
  window: WindowSummary;
}

/** Seconds summed up in {@linkcode HistorySeries.window}. */
export const WINDOW_SECONDS = 60;

/** Requests and latency over the last seconds. */
export interface WindowSummary {
  /** Seconds covered. */
  seconds: number;
  /** Requests ended in them. */
  requests: number;
  /** Median end-to-end latency, ms (null: no request). */
  p50Ms: number | null;
  /** 99th percentile, ms (null: no request). */
  p99Ms: number | null;
}

/**
 * Per-second figures of the last {@linkcode HISTORY_SECONDS} seconds in fixed rings: requests,
 * errors, a latency histogram per second (for p50/p99), and sampled queue depth and workers.
 * A slot is reset when its second comes round again, so nothing grows and nothing allocates.
 */
export class History {
  /** Seconds kept. */
  readonly length: number;
  #bounds: Float64Array;
  #width: number;
  #second: Float64Array;
  #requests: Float64Array;
  #errors: Float64Array;
  #latency: Float64Array;
  #queued: Float64Array;
  #workers: Float64Array;

  /** Makes an empty history of `seconds` seconds with latency buckets `bounds` (ms). */
  constructor(seconds: number = HISTORY_SECONDS, bounds: readonly number[] = LATENCY_BUCKETS_MS) {
    this.length = seconds;
    this.#bounds = Float64Array.from(bounds);
    this.#width = bounds.length + 1;
    // -Infinity: no second (a young process's history reaches into negative seconds).
    this.#second = new Float64Array(seconds).fill(-Infinity);
    this.#requests = new Float64Array(seconds);
    this.#errors = new Float64Array(seconds);
    this.#latency = new Float64Array(seconds * this.#width);
    this.#queued = new Float64Array(seconds).fill(-1);
    this.#workers = new Float64Array(seconds).fill(-1);
  }

  /** A request ended at `now` (ms) in latency bucket `bucket`; `failed` unless it was ok. */
  record(now: number, failed: boolean, bucket: number): void {
    const i = this.#slot(now);
    this.#requests[i]++;
    if (failed) this.#errors[i]++;
    this.#latency[i * this.#width + bucket]++;
  }

  /** Samples the queue depth and the workers connected at `now`. */
  sample(now: number, queued: number, workers: number): void {
    const i = this.#slot(now);
    if (queued > this.#queued[i]) this.#queued[i] = queued;
    this.#workers[i] = workers;
  }

  /** The series up to the second of `now`. */
  series(now: number): HistorySeries {
    const n = this.length;
    const current = Math.floor(now / 1000);
    const width = this.#width;
    const merged = new Float64Array(width);
    const out: HistorySeries = {
      seconds: n,
      requests: [],
      errors: [],
      p50Ms: [],
      p99Ms: [],
      queued: [],
      workers: [],
      window: { seconds: Math.min(WINDOW_SECONDS, n - 1), requests: 0, p50Ms: null, p99Ms: null },
    };
    const windowFrom = current - out.window.seconds + 1;
    for (let s = current - n + 1; s <= current; s++) {
      const i = ((s % n) + n) % n;
      if (this.#second[i] !== s) {
        out.requests.push(0);
        out.errors.push(0);
        out.p50Ms.push(null);
        out.p99Ms.push(null);
        out.queued.push(null);
        out.workers.push(null);
        continue;
      }
      out.requests.push(this.#requests[i]);
      out.errors.push(this.#errors[i]);
      const offset = i * width;
      if (s >= windowFrom) {
        out.window.requests += this.#requests[i];
        for (let b = 0; b < width; b++) merged[b] += this.#latency[offset + b];
      }
      const p50 = quantileOf(this.#bounds, this.#latency, offset, 0.5);
      const p99 = quantileOf(this.#bounds, this.#latency, offset, 0.99);
      out.p50Ms.push(Number.isNaN(p50) ? null : round3(p50));
      out.p99Ms.push(Number.isNaN(p99) ? null : round3(p99));
      out.queued.push(this.#queued[i] < 0 ? null : this.#queued[i]);
      out.workers.push(this.#workers[i] < 0 ? null : this.#workers[i]);
    }
    if (out.window.requests > 0) {
      out.window.p50Ms = round3(quantileOf(this.#bounds, merged, 0, 0.5));
      out.window.p99Ms = round3(quantileOf(this.#bounds, merged, 0, 0.99));
    }
    return out;
  }

  /** The slot of the second of `now`, reset if it held an older second. */
  #slot(now: number): number {
    const s = Math.floor(now / 1000);
    const i = s % this.length;
    if (this.#second[i] !== s) {
      this.#second[i] = s;
      this.#requests[i] = 0;
      this.#errors[i] = 0;
      this.#latency.fill(0, i * this.#width, (i + 1) * this.#width);
      this.#queued[i] = -1;
      this.#workers[i] = -1;
    }
    return i;
  }
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}
