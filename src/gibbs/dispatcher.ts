/**
 * The hub's scheduler as a sans-IO core: which request goes to which worker, and when a request
 * ends. It never touches a socket or a timer: the hub feeds it what happened (a worker joined,
 * spoke, answered, left; a request was made, aborted; time passed) with the current time, and
 * it acts through a {@linkcode DispatcherHost} — send these bytes to that worker, settle that
 * request — and tells when it next needs the time ({@linkcode Dispatcher.nextDeadline}).
 *
 * The rules, in one place:
 * - A worker exists from its handshake ({@linkcode Dispatcher.join}) to its disconnect
 *   ({@linkcode Dispatcher.leave}); messages from a worker that is not there are ignored.
 * - Every worker serves one service (Python workers: `"default"`); a request goes only to a
 *   worker of its service, and waits while that service has none.
 * - A worker gets a request only while it holds fewer than its credit (see
 *   {@linkcode DispatcherOptions.prefetch}), is not quarantined, and was heard from within
 *   the heartbeat interval (gibbs's availability rule). Any message marks it available.
 * - Requests leave the queue in the order they were made; a request taken back from a lost
 *   worker goes to the head of the queue, and to another worker when one is available.
 * - A request ends exactly once: with its result, its worker's error, a timeout after its
 *   retries, eviction, its abort, a given-up re-dispatch, or the dispatcher's close. A late or
 *   second answer is dropped; only a worker the request was sent to may answer it.
 * - A streamed request that delivered a chunk is past retrying: from then on it has no timeout,
 *   and the loss of its worker ends it with an error (its chunks cannot be taken back).
 * - An aborted request held by one of our workers is cancelled there; its slot is free when
 *   the worker answers (as a plain gibbs worker's slot is).
 * - A worker that answers with bytes no gibbs worker sends is quarantined: what it holds goes
 *   to the others (or fails with {@linkcode WorkerProtocolError} when none is sound).
 * - One of our workers may decline a request it was sent (its capacity went to other hubs):
 *   the request goes back to the head of the queue and to another worker at once, as if never
 *   sent — not a loss, not a re-dispatch, no count against its retries — and the worker gets
 *   nothing more until it offers room ({@linkcode Dispatcher.room}: the dispatcher sends it
 *   what requests there are for it, then a pass, then nothing until the next offer if it sent
 *   any) or lets it send as before ({@linkcode Dispatcher.setCapacity}).
 *
 * @module
 */

import { Deque } from "../socket/deque.ts";
import { CODE_OK } from "./codec.ts";
import {
  GibbsError,
  HubClosedError,
  QueueFullError,
  RequestEvictedError,
  RequestTimeoutError,
  UserCodeError,
  WorkerProtocolError,
} from "./errors.ts";
import { DEFAULT_SERVICE } from "./extension.ts";
import { formatMs } from "./logger.ts";
import type { HubStats, ServiceCounters } from "./stats.ts";

/** With `prefetch: "auto"`, a worker holds what it serves in this many ms... */
export const AUTO_PREFETCH_BUDGET_MS = 5;
/** ...and never more than this many requests. */
export const AUTO_PREFETCH_MAX = 32;
/** A request whose workers kept failing is given up after this many re-dispatches. */
export const MAX_REDISPATCH = 5;
/** What {@linkcode Dispatcher}'s worker choice answers for a request to keep waiting. */
const PARK = Symbol("park");

/** Requests waiting with no worker connected are reported this often, in ms. */
export const NO_WORKER_WARNING_MS = 10_000;

/** Settings of a {@linkcode Dispatcher}. Times are in milliseconds. */
export interface DispatcherOptions {
  /** A worker not heard from for longer gets no request. */
  heartbeatMs: number;
  /** Most requests pending at once. */
  respBufferSize: number;
  /** Past `respBufferSize`: fail the oldest request, or refuse the new one. */
  overflow: "evict-oldest" | "reject-new";
  /** Re-send at once what a lost worker held. */
  redispatch: boolean;
  /** Requests a worker may hold before it answers: a number, or measured (`"auto"`). */
  prefetch: number | "auto";
  /**
   * The number a request id stands for, unique among pending requests, or undefined for an id
   * the host never made (see {@linkcode RequestIds}). Pending requests are indexed by it: the
   * first lookup of a string key (its hash) costs a call into the engine, about 250 ns, which
   * a fresh request id pays on every request. Ids it gives no number (and every id, without
   * it) are numbered as they come, below zero.
   */
  requestSeq?: (reqId: string) => number | undefined;
}

/** What a worker told about itself when it joined. */
export interface WorkerInfo {
  /**
   * Requests it serves at once, announced in its handshake: a worker that announces one is one
   * of ours (it may change it later with {@linkcode Dispatcher.setCapacity}). Without it, a
   * worker gets gibbs's treatment: one request at a time, plus prefetch.
   */
  capacity?: number;
  /** The service it serves (default `"default"`). */
  service?: string;
  /** A label for log lines (its routing id as text). */
  name?: string;
  /** Its address, for log lines. */
  remote?: string;
}

/** A worker as the dispatcher sees it. The host addresses it by {@linkcode WorkerState.id}. */
export interface WorkerState<H = unknown> {
  /** Map key of its routing id. */
  readonly key: string;
  /** Its routing id. */
  readonly id: Uint8Array;
  /** Label for log lines. */
  readonly name: string;
  /** Its address, when known. */
  readonly remote: string | undefined;
  /** The service it serves. */
  readonly service: string;
  /** One of ours: it announced a capacity, may ping while it computes, may stream. */
  extended: boolean;
  /** Its announced capacity (0 for a plain gibbs worker, or one that takes nothing now). */
  capacity: number;
  /** When it was last heard from. */
  lastSeen: number;
  /** Listed in its service's available queue. */
  inAvailable: boolean;
  /** Still connected (false once it left). */
  connected: boolean;
  /** Requests sent to it and not answered yet, oldest first. */
  held: Request<H>[];
  /** Pings received while holding requests (a plain gibbs worker never pings while busy). */
  pingsWhileHolding: number;
  /** Sent a malformed answer: gets no more requests on this connection. */
  quarantined: boolean;
  /**
   * Declined a request: gets no more until it announces its capacity again (it does once it
   * has room for this hub).
   */
  declined: boolean;
  /** Moving average of its time per request, in ms (-1 until it answered once). */
  serviceMs: number;
  /** When it last answered. */
  lastAnswer: number;
  /** Requests it answered. */
  served: number;
}

/** Where a request is. */
export type RequestState = "queued" | "sent" | "done";

/** A request as the dispatcher sees it; the host may keep its own fields in `handle`. */
export interface Request<H = unknown> {
  /** Request id (32 hex chars). */
  readonly reqId: string;
  /** Its number among pending requests (see {@linkcode DispatcherOptions.requestSeq}). */
  readonly seq: number;
  /** The encoded `[req_id, args, kwargs]`. */
  readonly payload: Uint8Array;
  /** Whatever the host needs to settle it (its promise's resolvers). */
  readonly handle: H;
  /** The service it is for. */
  readonly service: string;
  /** The caller reads the result as a stream of chunks. */
  readonly stream: boolean;
  /** A chunk of it was delivered: no more timeouts, retries or re-dispatch. */
  streaming: boolean;
  /** The worker whose chunks are delivered (the first one to send any). */
  streamFrom: WorkerState<H> | undefined;
  /** Where it is. */
  state: RequestState;
  /** Per-attempt timeout in ms (0: none). */
  readonly timeoutMs: number;
  /** Retries left after a timeout (-1: forever). */
  retriesLeft: number;
  /** Attempts made (1 + retries used). */
  attempts: number;
  /** Times it was re-sent because its worker was lost. */
  redispatches: number;
  /** Workers it was sent to: only they may answer it; a lost copy is not re-sent to them. */
  sentTo: WorkerState<H>[];
  /** When it was made. */
  readonly createdAt: number;
  /** When it was last sent. */
  sentAt: number;
  /** When its current attempt times out (Infinity: never). */
  deadline: number;
  /** Its place in the deadline heap (-1: not there). */
  heapIndex: number;
}

/** How a request ended. */
export type Outcome = { ok: true; value: unknown } | { ok: false; error: Error };

/** What a {@linkcode Dispatcher} does to the world, implemented by the hub (or a test). */
export interface DispatcherHost<H> {
  /**
   * Sends a request to a worker now, without queueing: false when the worker cannot take it at
   * once (its connection is full or gone). A streamed request goes to one of our workers as a
   * stream; to a plain gibbs worker as a request.
   */
  send(worker: WorkerState<H>, request: Request<H>): boolean;
  /** Tells one of our workers that a request it holds was given up. */
  cancel(worker: WorkerState<H>, request: Request<H>): void;
  /**
   * Tells one of our workers that offered room ({@linkcode Dispatcher.room}) that the requests
   * for it were sent, perhaps none: sent after them, so that the worker knows which ones came
   * for the room. (A host whose workers never offer room may leave it out.)
   */
  pass?(worker: WorkerState<H>): void;
  /**
   * A request ended; called exactly once per request. `from` is the worker whose answer ended
   * it (undefined when it ended otherwise: timeout, abort, eviction, loss, close).
   */
  settle(request: Request<H>, outcome: Outcome, from?: WorkerState<H>): void;
  /** Something worth a log line. */
  log(level: "debug" | "info" | "warn", event: string, message: string, fields?: object): void;
}

/** Options of one request given to {@linkcode Dispatcher.submit}. */
export interface SubmitOptions {
  /** Per-attempt timeout in ms (0: none). */
  timeoutMs?: number;
  /** Retries after a timeout (-1: forever). */
  retries?: number;
  /** The service it is for (default `"default"`). */
  service?: string;
  /** The caller reads the result as a stream of chunks. */
  stream?: boolean;
}

/** The requests and workers of one service. */
interface Pool<H> {
  readonly name: string;
  readonly queue: Deque<Request<H>>;
  queued: number;
  pending: number;
  readonly available: Deque<WorkerState<H>>;
  /** Its connected workers. */
  readonly members: Set<WorkerState<H>>;
  workers: number;
  completed: number;
  redispatched: number;
  /** Since when requests have waited with no worker of this service (-1: not waiting). */
  noWorkerSince: number;
  noWorkerWarnedAt: number;
}

/**
 * The hub's scheduler, with no I/O: see the module documentation for its rules.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Dispatcher } from "./dispatcher.ts";
 * const sent: string[] = [];
 * const results: unknown[] = [];
 * const d = new Dispatcher<null>({
 *   heartbeatMs: 1000, respBufferSize: 10, overflow: "reject-new", redispatch: true, prefetch: 1,
 * }, {
 *   send: (w) => (sent.push(w.name), true),
 *   cancel: () => {},
 *   pass: () => {},
 *   settle: (_r, outcome) => results.push(outcome.ok ? outcome.value : outcome.error),
 *   log: () => {},
 * });
 * const id = new TextEncoder().encode("w1");
 * d.join("w1", id, 0, { name: "w1" });
 * d.heard("w1", 0); // its first ping: available
 * d.submit("r1", new Uint8Array(), null, 0);
 * d.answer("w1", "r1", 0, 42, 1);
 * assert.deepEqual(sent, ["w1"]);
 * assert.deepEqual(results, [42]);
 * ```
 */
export class Dispatcher<H = unknown> {
  #o: DispatcherOptions;
  #host: DispatcherHost<H>;
  #pending = new Map<number, Request<H>>();
  /** Numbers of the pending ids that {@linkcode DispatcherOptions.requestSeq} does not number. */
  #seqs: Map<string, number> | null = null;
  #nextSeq = 0;
  #pools = new Map<string, Pool<H>>();
  #workers = new Map<string, WorkerState<H>>();
  #deadlines = new DeadlineHeap<H>();
  #closed = false;

  /** Creates a dispatcher acting through `host`. */
  constructor(options: DispatcherOptions, host: DispatcherHost<H>) {
    this.#o = options;
    this.#host = host;
  }

  /** Number of workers connected. */
  get workerCount(): number {
    return this.#workers.size;
  }

  /** The workers connected now. */
  workers(): IterableIterator<WorkerState<H>> {
    return this.#workers.values();
  }

  /** The worker with this key, if connected. */
  worker(key: string): WorkerState<H> | undefined {
    return this.#workers.get(key);
  }

  /** The pending request with this id, if any. */
  request(reqId: string): Request<H> | undefined {
    const seq = this.#o.requestSeq?.(reqId) ?? this.#seqs?.get(reqId);
    if (seq === undefined) return undefined;
    const request = this.#pending.get(seq);
    return request?.reqId === reqId ? request : undefined;
  }

  /** A snapshot of the counters, for all services and for each. */
  stats(): HubStats {
    const services: Record<string, ServiceCounters> = {};
    const all: ServiceCounters = {
      workers: 0,
      busy: 0,
      queued: 0,
      pending: 0,
      completed: 0,
      redispatched: 0,
    };
    for (const pool of this.#pools.values()) {
      services[pool.name] = {
        workers: pool.workers,
        busy: 0,
        queued: pool.queued,
        pending: pool.pending,
        completed: pool.completed,
        redispatched: pool.redispatched,
      };
    }
    for (const w of this.#workers.values()) if (w.held.length > 0) services[w.service].busy++;
    for (const s of Object.values(services)) {
      for (const key of Object.keys(all) as (keyof ServiceCounters)[]) all[key] += s[key];
    }
    return { ...all, services };
  }

  /**
   * The earliest time at which {@linkcode Dispatcher.tick} has something to do: a request's
   * deadline, or the next report of requests waiting with no worker (Infinity: nothing).
   */
  nextDeadline(): number {
    let next = this.#deadlines.peekTime();
    for (const pool of this.#pools.values()) {
      if (pool.noWorkerSince >= 0 && pool.pending > 0) {
        const at = Math.max(pool.noWorkerSince, pool.noWorkerWarnedAt) + NO_WORKER_WARNING_MS;
        if (at < next) next = at;
      }
    }
    return next;
  }

  /**
   * A new request. Returns it, or null when it was refused (then it was already settled with
   * {@linkcode QueueFullError} or {@linkcode HubClosedError}).
   */
  submit(
    reqId: string,
    payload: Uint8Array,
    handle: H,
    now: number,
    options: SubmitOptions = {},
  ): Request<H> | null {
    const timeoutMs = options.timeoutMs ?? 0;
    let seq = this.#o.requestSeq?.(reqId);
    if (seq === undefined) {
      const seqs = this.#seqs ??= new Map();
      seq = seqs.get(reqId);
      // Below zero: never one the host's numbering gives.
      if (seq === undefined) seqs.set(reqId, seq = -++this.#nextSeq);
    }
    const request: Request<H> = {
      reqId,
      seq,
      payload,
      handle,
      service: options.service ?? DEFAULT_SERVICE,
      stream: options.stream ?? false,
      streaming: false,
      streamFrom: undefined,
      state: "queued",
      timeoutMs,
      retriesLeft: options.retries ?? 0,
      attempts: 1,
      redispatches: 0,
      sentTo: [],
      createdAt: now,
      sentAt: 0,
      deadline: timeoutMs > 0 ? now + timeoutMs : Infinity,
      heapIndex: -1,
    };
    if (this.#closed) {
      request.state = "done";
      this.#host.settle(request, { ok: false, error: new HubClosedError() });
      return null;
    }
    if (this.#pending.size >= this.#o.respBufferSize) {
      if (this.#o.overflow === "reject-new") {
        request.state = "done";
        this.#host.settle(request, {
          ok: false,
          error: new QueueFullError(this.#o.respBufferSize),
        });
        return null;
      }
      const oldest = this.#pending.values().next().value!;
      this.#giveUp(oldest, new RequestEvictedError(this.#o.respBufferSize));
    }
    const pool = this.#pool(request.service);
    this.#pending.set(seq, request);
    pool.pending++;
    if (request.deadline < Infinity) this.#deadlines.set(request);
    if (pool.workers === 0 && pool.noWorkerSince < 0) pool.noWorkerSince = now;
    this.#enqueue(request, false);
    this.#pump(pool, now);
    return request;
  }

  /**
   * Ends a request at the caller's wish (its signal aborted, its HTTP client gone), with
   * `error`. One of our workers holding it is told to stop; its slot is free once it answers.
   */
  cancel(reqId: string, error: Error): void {
    const request = this.request(reqId);
    if (request !== undefined) this.#giveUp(request, error);
  }

  /** A worker finished its handshake. A worker already known under this key is replaced. */
  join(key: string, id: Uint8Array, now: number, info: WorkerInfo = {}): WorkerState<H> {
    const old = this.#workers.get(key);
    if (old !== undefined) this.leave(key, "replaced by a new connection with its id", now);
    const w: WorkerState<H> = {
      key,
      id,
      name: info.name ?? key,
      remote: info.remote,
      service: info.service ?? DEFAULT_SERVICE,
      extended: info.capacity !== undefined,
      capacity: info.capacity ?? 0,
      lastSeen: -Infinity,
      inAvailable: false,
      connected: true,
      held: [],
      pingsWhileHolding: 0,
      quarantined: false,
      declined: false,
      serviceMs: -1,
      lastAnswer: -Infinity,
      served: 0,
    };
    this.#workers.set(key, w);
    const pool = this.#pool(w.service);
    pool.workers++;
    pool.members.add(w);
    pool.noWorkerSince = -1;
    pool.noWorkerWarnedAt = -1;
    return w;
  }

  /** A worker's connection ended: what it held goes back to the queue (with re-dispatch on). */
  leave(key: string, why: string, now: number): void {
    const w = this.#workers.get(key);
    if (w === undefined) return;
    this.#workers.delete(key);
    w.connected = false;
    const pool = this.#pool(w.service);
    pool.workers--;
    pool.members.delete(w);
    if (w.inAvailable) {
      pool.available.remove((x) => x === w);
      w.inAvailable = false;
    }
    this.#takeBack(w, `worker ${w.name} disconnected${why ? `: ${why}` : ""}`);
    if (pool.workers === 0 && pool.pending > 0) pool.noWorkerSince = now;
    this.#pump(pool, now);
    this.#dropIfIdle(pool);
  }

  /**
   * A worker pinged (gibbs's `[""]`): it is alive and, by gibbs's rule, available. A plain gibbs
   * worker never pings while computing, so a second ping while it holds a request means the
   * request never reached it. Returns false for a worker that is not there.
   */
  ping(key: string, now: number): boolean {
    const w = this.#workers.get(key);
    if (w === undefined) return false;
    w.lastSeen = now;
    if (!w.extended && w.held.length > 0 && ++w.pingsWhileHolding >= 2) {
      // One ping may have crossed our request; a second means the request never reached it.
      this.#takeBack(w, `worker ${w.name} pinged twice while holding a request`);
    }
    this.#offer(w);
    this.#pump(this.#pool(w.service), now);
    return true;
  }

  /**
   * One of our workers announced a new capacity (after a decline: it may be sent requests as
   * before). Requests it holds beyond it stay with it (it serves or declines them); it gets no
   * more until it is below.
   */
  setCapacity(key: string, capacity: number, now: number): void {
    const w = this.#workers.get(key);
    if (w === undefined || !w.extended) return;
    w.capacity = capacity;
    w.declined = false;
    w.lastSeen = now;
    this.#offer(w);
    this.#pump(this.#pool(w.service), now);
  }

  /**
   * One of our workers that declined a request offers room: a slot it keeps for this hub. It
   * gets what requests there are for it now (up to its credit), then a pass
   * ({@linkcode DispatcherHost.pass}); having got any, it gets nothing more until its next
   * offer, so that hubs sharing it take turns.
   */
  room(key: string, now: number): void {
    const w = this.#workers.get(key);
    if (w === undefined || !w.extended) return;
    w.declined = false;
    w.lastSeen = now;
    const held = w.held.length;
    this.#offer(w);
    this.#pump(this.#pool(w.service), now);
    this.#host.pass?.(w);
    if (w.held.length > held) this.#block(w);
  }

  /**
   * One of our workers declined a request it was sent: its capacity is in use by other hubs.
   * The request goes to another worker at once (or waits at the head of the queue), as if it
   * had never been sent: no re-dispatch is counted and its retries are untouched. The worker
   * gets nothing more until its next {@linkcode Dispatcher.setCapacity}.
   */
  decline(key: string, reqId: string, now: number): void {
    const w = this.#workers.get(key);
    if (w === undefined || !w.extended) return;
    w.lastSeen = now;
    this.#block(w);
    const index = w.held.findIndex((r) => r.reqId === reqId);
    if (index < 0) return; // ended meanwhile (timeout, abort), or held by an older connection
    const request = w.held[index];
    if (request.streaming && request.streamFrom === w) {
      // Its chunks were delivered: the worker did run it.
      this.malformed(key, `worker ${w.name} declined request ${reqId} after streaming it`, now);
      return;
    }
    w.held.splice(index, 1);
    // Back to the queue unless it ended, or another copy (a retry's) is held or queued.
    if (request.state === "sent" && !request.sentTo.some((o) => o.held.includes(request))) {
      this.#enqueue(request, true);
    }
    this.#pump(this.#pool(w.service), now);
  }

  /** Marks a worker heard from (any message) and available. */
  heard(key: string, now: number): void {
    const w = this.#workers.get(key);
    if (w === undefined) return;
    w.lastSeen = now;
    this.#offer(w);
    this.#pump(this.#pool(w.service), now);
  }

  /**
   * One of our workers sent a chunk of a streamed request. Returns the request when the chunk
   * is to be delivered: the worker holds it and the caller still waits. From the first chunk on
   * the request has no timeout and is not re-sent elsewhere.
   */
  chunk(key: string, reqId: string, now: number): Request<H> | undefined {
    const w = this.#workers.get(key);
    if (w === undefined) return undefined;
    w.lastSeen = now;
    const request = this.request(reqId);
    if (request === undefined || !request.stream || !w.held.includes(request)) return undefined;
    if (!request.streaming) {
      request.streaming = true;
      request.streamFrom = w;
      request.deadline = Infinity;
      this.#deadlines.delete(request);
      // A retry's copy still waiting must not produce a second stream.
      if (request.state === "queued") this.#unqueue(request);
      request.state = "sent";
    }
    // Another copy (a retry's) that streams too is not listened to.
    return request.streamFrom === w ? request : undefined;
  }

  /** A worker answered `[req_id, code, result]`. */
  answer(key: string, reqId: string, code: number, result: unknown, now: number): void {
    const w = this.#workers.get(key);
    if (w === undefined) return;
    w.lastSeen = now;
    // Held requests may have ended meanwhile (timeout, abort): they are found by id.
    let index = -1;
    for (let i = 0; i < w.held.length; i++) {
      if (w.held[i].reqId === reqId) {
        index = i;
        break;
      }
    }
    let request: Request<H> | undefined;
    if (index >= 0) {
      request = w.held[index];
      removeAt(w.held, index);
      // A queued request's clock starts when the worker finished the one before it.
      const sample = now - Math.max(request.sentAt, w.lastAnswer);
      w.serviceMs = w.serviceMs < 0 ? sample : 0.8 * w.serviceMs + 0.2 * sample;
      w.lastAnswer = now;
      w.served++;
    } else {
      request = this.request(reqId);
      if (request !== undefined && !request.sentTo.includes(w)) {
        this.#host.log(
          "warn",
          "response.unexpected",
          `worker ${w.name} answered request ${reqId}, never sent to it`,
          { peer: w.remote },
        );
        request = undefined;
      }
    }
    w.pingsWhileHolding = 0;
    // A stream that started on another worker's copy ends with that worker's answer only.
    if (request?.streaming && request.streamFrom !== w) request = undefined;
    // Undefined: a late duplicate, or evicted: exactly one result was delivered.
    if (request !== undefined && request.state !== "done") {
      this.#pool(request.service).completed++;
      this.#end(
        request,
        code === CODE_OK
          ? { ok: true, value: result }
          : { ok: false, error: new UserCodeError(String(result)) },
        w,
      );
    }
    this.#offer(w, true);
    this.#pump(this.#pool(w.service), now);
  }

  /**
   * A worker sent what no gibbs worker sends (bytes that are not a response): it gets no more
   * requests on this connection, and what it holds goes to the others.
   */
  malformed(key: string, reason: string, now: number): void {
    const w = this.#workers.get(key);
    if (w === undefined) return;
    w.quarantined = true;
    this.#host.log(
      "warn",
      "worker.quarantined",
      `${reason}; worker ${w.name} gets no more requests on this connection`,
      { peer: w.remote, worker: w.name, reason },
    );
    let sound = false;
    for (const o of this.#workers.values()) {
      if (!o.quarantined && o.service === w.service) sound = true;
    }
    const held = w.held.splice(0).reverse();
    for (const request of held) {
      if (request.streaming && request.streamFrom !== w) continue;
      if (sound && !request.streaming) {
        this.#retryElsewhere(request, new WorkerProtocolError(reason));
      } else if (request.state !== "done") {
        // No sound worker to turn to: a typed error now rather than an open-ended wait.
        this.#end(request, { ok: false, error: new WorkerProtocolError(reason) });
      }
    }
    this.#pump(this.#pool(w.service), now);
  }

  /** Runs what is due at `now`: timeouts and retries, and the no-worker reports. */
  tick(now: number): void {
    for (let r = this.#deadlines.popDue(now); r !== undefined; r = this.#deadlines.popDue(now)) {
      this.#onTimeout(r, now);
    }
    for (const pool of this.#pools.values()) {
      if (pool.noWorkerSince >= 0 && pool.pending > 0) {
        const since = Math.max(pool.noWorkerSince, pool.noWorkerWarnedAt);
        if (now - since >= NO_WORKER_WARNING_MS) {
          pool.noWorkerWarnedAt = now;
          const n = pool.pending;
          const who = pool.name === DEFAULT_SERVICE
            ? "no worker connected"
            : `no worker serves "${pool.name}"`;
          this.#host.log(
            "warn",
            "requests.waiting",
            `${n} request${n === 1 ? "" : "s"} waiting for ${
              formatMs(now - pool.noWorkerSince)
            }: ${who}`,
            { pending: n, service: pool.name },
          );
        }
      }
      this.#pump(pool, now);
    }
  }

  /** Tries to send queued requests again (a worker's connection may have room now). */
  pump(now: number): void {
    for (const pool of this.#pools.values()) this.#pump(pool, now);
  }

  /** Ends every pending request with `error`; further requests are refused the same way. */
  close(error: Error): void {
    this.#closed = true;
    for (const request of [...this.#pending.values()]) this.#end(request, { ok: false, error });
    for (const pool of this.#pools.values()) {
      pool.queue.drain();
      pool.queued = 0;
    }
  }

  #pool(service: string): Pool<H> {
    let pool = this.#pools.get(service);
    if (pool === undefined) {
      pool = {
        name: service,
        queue: new Deque(),
        queued: 0,
        pending: 0,
        available: new Deque(),
        members: new Set(),
        workers: 0,
        completed: 0,
        redispatched: 0,
        noWorkerSince: -1,
        noWorkerWarnedAt: -1,
      };
      this.#pools.set(service, pool);
    }
    return pool;
  }

  /** Forgets a service nobody serves or asks for (names come from peers: they must not pile up). */
  #dropIfIdle(pool: Pool<H>): void {
    if (pool.workers === 0 && pool.pending === 0 && pool.name !== DEFAULT_SERVICE) {
      this.#pools.delete(pool.name);
    }
  }

  /**
   * Ends a request the caller no longer waits for (aborted, timed out, evicted): one of our
   * workers holding it is told to stop, and its slot is free once it answers.
   */
  #giveUp(request: Request<H>, error: Error): void {
    const holders = request.sentTo.filter((w) =>
      w.connected && w.extended && w.held.includes(request)
    );
    this.#end(request, { ok: false, error });
    for (const w of holders) this.#host.cancel(w, request);
  }

  #onTimeout(request: Request<H>, now: number): void {
    if (request.retriesLeft === 0) {
      this.#giveUp(request, new RequestTimeoutError(request.timeoutMs / 1000, request.attempts));
      return;
    }
    if (request.retriesLeft > 0) request.retriesLeft--;
    request.attempts++;
    // The worker that holds it stays busy until it answers; another one gets a copy.
    if (request.state === "sent") this.#enqueue(request, true);
    request.deadline = now + request.timeoutMs;
    this.#deadlines.set(request);
  }

  /** Puts back the requests a lost worker held, if re-dispatch is on. */
  #takeBack(w: WorkerState<H>, why: string): void {
    const held = w.held;
    w.held = [];
    w.pingsWhileHolding = 0;
    if (held.length === 0) return;
    // Reversed so that unshifting each keeps them in their original order at the queue's head.
    for (let i = held.length - 1; i >= 0; i--) {
      const request = held[i];
      if (request.state !== "sent") continue;
      if (request.streaming) {
        // Its chunks were delivered: a copy elsewhere would deliver them twice.
        if (request.streamFrom === w) {
          this.#end(request, { ok: false, error: new GibbsError(`Stream interrupted: ${why}`) });
        }
        continue;
      }
      if (!this.#o.redispatch) continue; // the caller's timeout decides, as in gibbs
      this.#host.log(
        "warn",
        "request.redispatched",
        `re-sending request ${request.reqId}: ${why}`,
        {
          reqId: request.reqId,
          peer: w.remote,
          worker: w.name,
        },
      );
      this.#retryElsewhere(request, new GibbsError(`Request lost ${MAX_REDISPATCH} times: ${why}`));
    }
  }

  #retryElsewhere(request: Request<H>, giveUp: Error): void {
    if (request.state !== "sent") return; // ended, or already waiting for another worker
    if (++request.redispatches > MAX_REDISPATCH) {
      this.#end(request, { ok: false, error: giveUp });
      return;
    }
    this.#pool(request.service).redispatched++;
    this.#enqueue(request, true);
  }

  #enqueue(request: Request<H>, front: boolean): void {
    const pool = this.#pool(request.service);
    request.state = "queued";
    pool.queued++;
    if (front) pool.queue.unshift(request);
    else pool.queue.push(request);
  }

  /** A queued request leaves its queue without being sent (it is met and skipped later). */
  #unqueue(request: Request<H>): void {
    if (request.state === "queued") this.#pool(request.service).queued--;
  }

  #end(request: Request<H>, outcome: Outcome, from?: WorkerState<H>): void {
    if (request.state === "done") return;
    const pool = this.#pool(request.service);
    if (request.state === "queued") pool.queued--;
    request.state = "done";
    this.#deadlines.delete(request);
    if (this.#pending.get(request.seq) === request) {
      this.#pending.delete(request.seq);
      if (this.#seqs !== null) this.#seqs.delete(request.reqId);
    }
    pool.pending--;
    if (pool.pending === 0) pool.noWorkerWarnedAt = -1;
    this.#host.settle(request, outcome, from);
    this.#dropIfIdle(pool);
  }

  /**
   * How many requests `w` may hold at once: its capacity (1 for a plain gibbs worker), plus
   * what prefetch lets wait in its socket meanwhile (see {@linkcode DispatcherOptions.prefetch}).
   */
  #credit(w: WorkerState<H>): number {
    const capacity = w.extended ? w.capacity : 1;
    if (capacity === 0) return 0;
    return capacity - 1 + this.#prefetch(w);
  }

  #prefetch(w: WorkerState<H>): number {
    const prefetch = this.#o.prefetch;
    if (prefetch !== "auto") return prefetch;
    if (w.serviceMs < 0) return 1;
    return Math.max(
      1,
      Math.min(AUTO_PREFETCH_MAX, Math.floor(AUTO_PREFETCH_BUDGET_MS / w.serviceMs)),
    );
  }

  /** `w` gets nothing until it offers room or announces its capacity. */
  #block(w: WorkerState<H>): void {
    w.declined = true;
    if (w.inAvailable) {
      this.#pool(w.service).available.remove((x) => x === w);
      w.inAvailable = false;
    }
  }

  /**
   * Lists `w` as available if it may take more: last in line, or first with `first` when it
   * has just finished everything it held. The worker freed last gets the next request, as
   * gibbs's ready set (a dict it pops the last entry of) gives it: its connection, its process
   * and its model are the warmest, and workers the load does not need stay idle instead of
   * taking turns (with a thousand workers and a few hundred requests in flight, the hub's CPU
   * per request fell by a fifth). A worker still holding requests goes last, so that an idle
   * one is preferred to it; one already in line keeps its place.
   */
  #offer(w: WorkerState<H>, first = false): void {
    if (
      !w.inAvailable && w.connected && !w.quarantined && !w.declined &&
      w.held.length < this.#credit(w)
    ) {
      w.inAvailable = true;
      const available = this.#pool(w.service).available;
      if (first && w.held.length === 0) available.unshift(w);
      else available.push(w);
    }
  }

  /** Sends queued requests of a service to its available, live workers. */
  #pump(pool: Pool<H>, now: number): void {
    if (this.#closed) return;
    const queue = pool.queue;
    let parked: Request<H>[] | undefined;
    while (queue.length > 0) {
      const request = queue.peek()!;
      if (request.state !== "queued") {
        queue.shift(); // finished, or already re-sent elsewhere
        continue;
      }
      const w = this.#take(pool, now, request.redispatches > 0 ? request.sentTo : undefined);
      if (w === PARK) {
        // Only workers that lost it are free, and another one is there: it waits for that one,
        // and the requests behind it go on.
        (parked ??= []).push(queue.shift()!);
        continue;
      }
      if (w === undefined) break;
      // Full or gone: skip it; it is offered again when it speaks.
      if (!this.#host.send(w, request)) continue;
      queue.shift();
      pool.queued--;
      request.state = "sent";
      request.sentAt = now;
      if (!request.sentTo.includes(w)) request.sentTo.push(w);
      if (w.held.length === 0) w.pingsWhileHolding = 0;
      w.held.push(request);
      this.#offer(w); // back in line if it may take more
    }
    if (parked !== undefined) {
      for (let i = parked.length - 1; i >= 0; i--) queue.unshift(parked[i]);
    }
  }

  /**
   * Takes the next available live worker of a service, skipping stale ones (they come back when
   * they speak) and, for a request that was lost, the workers that lost it: while another sound
   * worker is connected, the request waits for it ({@linkcode PARK}) — a worker that lost it may
   * well lose it again — and only a worker that is alone gets it back.
   */
  #take(
    pool: Pool<H>,
    now: number,
    avoid?: WorkerState<H>[],
  ): WorkerState<H> | typeof PARK | undefined {
    const available = pool.available;
    let skipped: WorkerState<H>[] | undefined;
    let found: WorkerState<H> | undefined;
    while (available.length > 0) {
      const w = available.shift()!;
      w.inAvailable = false;
      if (!w.connected || w.quarantined || w.declined || w.held.length >= this.#credit(w)) {
        continue;
      }
      if (now - w.lastSeen > this.#o.heartbeatMs) continue;
      if (avoid !== undefined && avoid.includes(w)) {
        (skipped ??= []).push(w);
        continue;
      }
      found = w;
      break;
    }
    if (skipped !== undefined) {
      for (const w of skipped) this.#offer(w);
      if (found === undefined) {
        for (const w of pool.members) if (!w.quarantined && !avoid!.includes(w)) return PARK;
        // Nobody else is there: better the worker that lost it than no worker at all.
        found = skipped[0];
        available.remove((x) => x === found);
        found.inAvailable = false;
      }
    }
    return found;
  }
}

/** Removes `array[index]`, keeping the order, without the array `splice` would return. */
function removeAt<T>(array: T[], index: number): void {
  for (let i = index + 1; i < array.length; i++) array[i - 1] = array[i];
  array.pop();
}

/**
 * A min-heap of requests by deadline. Each request knows its place, so that one that ends is
 * taken out at once instead of staying (with its payload) until its deadline.
 */
class DeadlineHeap<H> {
  #items: Request<H>[] = [];

  get size(): number {
    return this.#items.length;
  }

  /** Adds `request`, or moves it if it is in already. */
  set(request: Request<H>): void {
    if (request.heapIndex >= 0) {
      this.#siftDown(this.#siftUp(request.heapIndex));
      return;
    }
    request.heapIndex = this.#items.length;
    this.#items.push(request);
    this.#siftUp(request.heapIndex);
  }

  delete(request: Request<H>): void {
    const i = request.heapIndex;
    if (i < 0) return;
    request.heapIndex = -1;
    const last = this.#items.pop()!;
    if (i === this.#items.length) return;
    this.#items[i] = last;
    last.heapIndex = i;
    this.#siftDown(this.#siftUp(i));
  }

  peekTime(): number {
    return this.#items.length > 0 ? this.#items[0].deadline : Infinity;
  }

  popDue(now: number): Request<H> | undefined {
    const top = this.#items[0];
    if (top === undefined || top.deadline > now) return undefined;
    this.delete(top);
    return top;
  }

  #siftUp(i: number): number {
    const items = this.#items;
    const item = items[i];
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (items[parent].deadline <= item.deadline) break;
      items[i] = items[parent];
      items[i].heapIndex = i;
      i = parent;
    }
    items[i] = item;
    item.heapIndex = i;
    return i;
  }

  #siftDown(i: number): void {
    const items = this.#items;
    const n = items.length;
    const item = items[i];
    while (true) {
      let child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && items[child + 1].deadline < items[child].deadline) child++;
      if (items[child].deadline >= item.deadline) break;
      items[i] = items[child];
      items[i].heapIndex = i;
      i = child;
    }
    items[i] = item;
    item.heapIndex = i;
  }
}
