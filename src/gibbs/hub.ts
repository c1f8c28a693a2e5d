/**
 * The Hub: embedded in an application, it hands requests to idle workers and awaits results.
 *
 * @module
 */

import { Deque } from "../socket/deque.ts";
import type { SocketEvent } from "../socket/options.ts";
import { Router } from "../socket/router.ts";
import { runtime } from "../transport/runtime.ts";
import { decodeResponse, encodeRequest, type Kwargs } from "./codec.ts";
import {
  GibbsError,
  HubClosedError,
  QueueFullError,
  RequestEvictedError,
  RequestTimeoutError,
  UserCodeError,
  WorkerProtocolError,
} from "./errors.ts";
import { requestIdGenerator } from "./ids.ts";

const EMPTY = new Uint8Array(0);
/** With `prefetch: "auto"`, a worker holds what it serves in this many ms... */
const AUTO_PREFETCH_BUDGET_MS = 5;
/** ...and never more than this many requests. */
const AUTO_PREFETCH_MAX = 32;
/** A request whose workers kept failing is given up after this many re-dispatches. */
const MAX_REDISPATCH = 5;

/** Options of a {@linkcode Hub}. Durations are in seconds, as in Python gibbs. */
export interface HubOptions {
  /** TCP port to bind on every interface (default 5019). */
  port?: number;
  /** Interface to bind (default `"*"`: all IPv4 interfaces). */
  host?: string;
  /** Full endpoint to bind instead of host and port, e.g. `"ipc:///tmp/hub"`. */
  endpoint?: string;
  /** Seconds between worker heartbeats; a worker not heard from for longer is skipped (default 1). */
  heartbeatInterval?: number;
  /** Most requests pending at once (default 4096). */
  respBufferSize?: number;
  /**
   * What happens to a request past `respBufferSize`: `"evict-oldest"` fails the oldest pending
   * request with {@linkcode RequestEvictedError} (gibbs's behaviour, minus its endless wait);
   * `"reject-new"` fails the new one with {@linkcode QueueFullError} (default `"evict-oldest"`).
   */
  overflow?: "evict-oldest" | "reject-new";
  /**
   * Re-send a request at once to another worker when the worker holding it disconnects or goes
   * silent (default true). Execution is then at-least-once, delivery still exactly-once; turn
   * it off for handlers that must never run twice.
   */
  redispatch?: boolean;
  /**
   * Most requests sent to one worker before it answers. `1` is gibbs's rule: a request goes
   * only to an idle worker. A higher number lets a worker's next requests wait in its socket
   * while it computes (still one at a time, so Python workers need no change), which hides the
   * round trip for fast models. `"auto"` (the default) measures each worker's time per request
   * and lets it hold as many as it serves in about 5 ms (at most 32): fast models get the
   * throughput of a deep pipeline, slow models (anything over 2.5 ms) keep gibbs's rule, so
   * that a request never queues behind a long one while another worker frees up.
   */
  prefetch?: number | "auto";
  /** Seconds of silence on a connection (no ZMTP PONG) after which it is dropped (default 10). */
  deadAfter?: number;
  /** Largest message accepted from a worker, in bytes (default 256 MiB). */
  maxMessageSize?: number;
  /** Seconds a new connection has to finish the ZMTP handshake (default 10). */
  handshakeTimeout?: number;
  /** Most simultaneous worker connections (default 10,000). */
  maxConnections?: number;
  /** Where warnings go (dropped peers, malformed answers); default `console.warn`. */
  logger?: (message: string) => void;
}

/** Options of one request made with {@linkcode Hub.requestWith}. */
export interface RequestOptions {
  /** Positional arguments. */
  args?: unknown[];
  /** Keyword arguments (a Python worker receives them as `**kwargs`). */
  kwargs?: Kwargs;
  /** Seconds to wait for a result per attempt (default: no limit). */
  timeout?: number;
  /** Further attempts after a timeout; -1 retries forever (default 0). */
  retries?: number;
  /** Aborts the request; it then rejects with the signal's reason. */
  signal?: AbortSignal;
}

/** Counters describing a hub's state, for health checks and monitoring. */
export interface HubStats {
  /** Workers connected now. */
  workers: number;
  /** Workers computing a request now. */
  busy: number;
  /** Requests waiting for a worker. */
  queued: number;
  /** Requests pending in all (waiting or computing). */
  pending: number;
  /** Requests completed since start. */
  completed: number;
  /** Requests re-sent because their worker was lost. */
  redispatched: number;
}

interface WorkerEntry {
  id: Uint8Array;
  key: string;
  lastSeen: number;
  connected: boolean;
  inAvailable: boolean;
  /** Requests sent to it and not answered yet, oldest first. */
  held: Pending[];
  pingsWhileHolding: number;
  /** Sent a malformed answer: gets no more requests on this connection. */
  quarantined: boolean;
  /** Moving average of its time per request, in ms (-1 until it answered once). */
  serviceMs: number;
  /** When it last answered (runtime ms). */
  lastAnswer: number;
}

interface Pending {
  reqId: string;
  payload: Uint8Array;
  resolve(value: unknown): void;
  reject(error: unknown): void;
  state: "queued" | "sent" | "done";
  timeout: number;
  retriesLeft: number;
  attempts: number;
  redispatches: number;
  /** Workers it was sent to: only they may answer it, and a lost copy is not re-sent to them. */
  sentTo: WorkerEntry[];
  /** When it was last sent (runtime ms). */
  sentAt: number;
  timer: ReturnType<typeof setTimeout> | undefined;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

function keyOf(id: Uint8Array): string {
  return String.fromCharCode.apply(null, id as unknown as number[]);
}

function describe(id: Uint8Array): string {
  return new TextDecoder().decode(id);
}

/**
 * A gibbs hub: a ROUTER that workers connect to. `await hub.request(...args)` runs on whichever
 * worker is idle and returns its result. Wire-compatible with Python gibbs 0.3 workers.
 *
 * Unlike gibbs 0.3: requests beyond the number of idle workers simply wait; a request pushed
 * out of the response buffer fails at once; `close()` fails what is pending; a request held by
 * a worker that disconnects is re-sent to another worker at once.
 *
 * @example
 * ```ts ignore
 * import { Hub } from "./hub.ts";
 * const hub = new Hub({ port: 5019 });
 * const result = await hub.request(2, 3); // a worker computes it
 * const scaled = await hub.requestWith({ args: [2], kwargs: { scale: 10 }, timeout: 5, retries: 2 });
 * await hub.close();
 * ```
 */
export class Hub {
  /** Resolves with the bound endpoint once the hub listens; rejects if it cannot bind. */
  readonly ready: Promise<string>;
  #router: Router;
  #hbMs: number;
  #respBufferSize: number;
  #overflow: "evict-oldest" | "reject-new";
  #redispatch: boolean;
  #prefetch: number | "auto";
  #log: (message: string) => void;
  #nextId = requestIdGenerator();
  #pending = new Map<string, Pending>();
  #queue = new Deque<Pending>();
  #queued = 0;
  #workers = new Map<string, WorkerEntry>();
  #available = new Deque<WorkerEntry>();
  #completed = 0;
  #redispatched = 0;
  #closed = false;
  #endpoint: string | undefined;
  #stopSweep: () => void;

  /** Creates a hub and starts binding; see {@linkcode Hub.ready}. */
  constructor(options: HubOptions = {}) {
    const heartbeat = options.heartbeatInterval ?? 1;
    if (!(heartbeat > 0)) throw new RangeError("heartbeatInterval must be > 0 seconds");
    this.#hbMs = heartbeat * 1000;
    this.#respBufferSize = options.respBufferSize ?? 4096;
    if (!(this.#respBufferSize >= 1)) throw new RangeError("respBufferSize must be at least 1");
    this.#overflow = options.overflow ?? "evict-oldest";
    this.#redispatch = options.redispatch ?? true;
    this.#prefetch = options.prefetch ?? "auto";
    if (
      this.#prefetch !== "auto" && !(Number.isInteger(this.#prefetch) && this.#prefetch >= 1)
    ) {
      throw new RangeError('prefetch must be "auto" or an integer >= 1');
    }
    this.#log = options.logger ?? ((m) => console.warn(`[gibbs hub] ${m}`));
    const deadAfterMs = (options.deadAfter ?? 10) * 1000;
    this.#router = new Router({
      handover: true, // a worker that resets its socket comes back under the same id
      heartbeatInterval: Math.min(this.#hbMs, deadAfterMs / 2),
      heartbeatTimeout: deadAfterMs,
      maxMessageSize: options.maxMessageSize,
      handshakeTimeout: (options.handshakeTimeout ?? 10) * 1000,
      maxConnections: options.maxConnections ?? 10_000,
      linger: 0,
      onEvent: (event) => this.#onSocketEvent(event),
    });
    const endpoint = options.endpoint ??
      `tcp://${options.host ?? "*"}:${options.port ?? 5019}`;
    this.ready = this.#router.bind(endpoint).then((bound) => {
      this.#endpoint = bound;
      return bound;
    });
    // Nobody may be awaiting `ready`; the failure still reaches every request.
    this.ready.catch(() => {});
    this.#receiveLoop();
    this.#stopSweep = runtime.every(this.#hbMs, () => this.#pump());
  }

  /** The endpoint bound, once {@linkcode Hub.ready} resolved. */
  get endpoint(): string | undefined {
    return this.#endpoint;
  }

  /** Number of workers connected now. */
  get workers(): number {
    let n = 0;
    for (const w of this.#workers.values()) if (w.connected) n++;
    return n;
  }

  /** A snapshot of the hub's counters. */
  stats(): HubStats {
    let busy = 0;
    for (const w of this.#workers.values()) if (w.connected && w.held.length > 0) busy++;
    return {
      workers: this.workers,
      busy,
      queued: this.#queued,
      pending: this.#pending.size,
      completed: this.#completed,
      redispatched: this.#redispatched,
    };
  }

  /**
   * Runs a request with positional arguments on an idle worker and returns its result.
   *
   * @throws {UserCodeError} when the worker's code throws
   * @throws {RequestEvictedError} when pushed out of the response buffer
   * @throws {HubClosedError} when the hub is closed
   */
  request(...args: unknown[]): Promise<unknown> {
    return this.requestWith({ args });
  }

  /**
   * Runs a request with keyword arguments, a timeout, retries or an abort signal.
   *
   * @throws {RequestTimeoutError} when no result arrives in time after every retry
   */
  requestWith(options: RequestOptions): Promise<unknown> {
    if (this.#closed) return Promise.reject(new HubClosedError());
    const timeout = options.timeout ?? 0;
    const retries = options.retries ?? 0;
    if (options.signal?.aborted) return Promise.reject(options.signal.reason);
    if (this.#pending.size >= this.#respBufferSize) {
      if (this.#overflow === "reject-new") {
        return Promise.reject(new QueueFullError(this.#respBufferSize));
      }
      const oldest = this.#pending.values().next().value!;
      this.#finish(oldest);
      oldest.reject(new RequestEvictedError(this.#respBufferSize));
    }
    const reqId = this.#nextId();
    let payload: Uint8Array;
    try {
      payload = encodeRequest(reqId, options.args ?? [], options.kwargs ?? {});
    } catch (error) {
      return Promise.reject(
        new GibbsError(`Cannot encode the request: ${error}`, { cause: error }),
      );
    }
    return new Promise((resolve, reject) => {
      const p: Pending = {
        reqId,
        payload,
        resolve,
        reject,
        state: "queued",
        timeout,
        retriesLeft: retries,
        attempts: 1,
        redispatches: 0,
        sentTo: [],
        sentAt: 0,
        timer: undefined,
        signal: options.signal,
        onAbort: undefined,
      };
      if (p.signal) {
        p.onAbort = () => {
          if (p.state === "done") return;
          this.#finish(p);
          reject(p.signal!.reason);
        };
        p.signal.addEventListener("abort", p.onAbort, { once: true });
      }
      this.#pending.set(reqId, p);
      this.#armTimer(p);
      this.#enqueue(p, false);
      this.#pump();
    });
  }

  /** Stops the hub: pending requests fail with {@linkcode HubClosedError}. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#stopSweep();
    this.#router.close();
    for (const p of [...this.#pending.values()]) {
      this.#finish(p);
      p.reject(new HubClosedError());
    }
    await this.ready.catch(() => {});
    await this.#router.whenClosed();
  }

  async #receiveLoop(): Promise<void> {
    try {
      await this.ready;
    } catch (error) {
      for (const p of [...this.#pending.values()]) {
        this.#finish(p);
        p.reject(new GibbsError(`Hub cannot listen: ${(error as Error).message}`));
      }
      this.#closed = true;
      this.#stopSweep();
      return;
    }
    for await (const message of this.#router) {
      try {
        this.#onMessage(message);
      } catch (error) {
        this.#log(`error while handling a worker message: ${(error as Error).stack}`);
      }
    }
  }

  #onMessage(message: Uint8Array[]): void {
    const id = message[0];
    const key = keyOf(id);
    let w = this.#workers.get(key);
    if (w === undefined) {
      w = this.#addWorker(id, key);
    }
    w.connected = true;
    w.lastSeen = runtime.now();
    if (message.length === 2 && message[1].length === 0) {
      // ping: [id, ""] → pong [id, "", ""]. Never queued: a worker that stops reading must
      // not make the hub buffer for it.
      this.#router.trySend([id, EMPTY, EMPTY]);
      if (w.held.length > 0 && ++w.pingsWhileHolding >= 2) {
        // A gibbs worker never pings while computing; one ping may have crossed our request,
        // a second means the request never reached it.
        this.#requeueHeld(w, "worker pinged twice while holding a request");
      }
    } else if (message.length === 3 && message[1].length === 0) {
      this.#onResponse(w, message[2]);
    } else {
      this.#log(`ignored a ${message.length - 1}-frame message from worker ${describe(id)}`);
      return;
    }
    this.#markAvailable(w);
    this.#pump();
  }

  #onResponse(w: WorkerEntry, bytes: Uint8Array): void {
    let response;
    try {
      response = decodeResponse(bytes);
    } catch (error) {
      const reason = `malformed response from worker ${describe(w.id)}: ${
        (error as Error).message
      }`;
      this.#log(`${reason}; it gets no more requests on this connection`);
      // No gibbs worker sends such bytes: whatever it holds goes to the others, and it is out.
      w.quarantined = true;
      const others = [...this.#workers.values()].some((o) => o.connected && !o.quarantined);
      for (const held of w.held.splice(0).reverse()) {
        if (others) {
          this.#retryElsewhere(held, new WorkerProtocolError(reason));
        } else if (held.state !== "done") {
          // No sound worker to turn to: a typed error now rather than an open-ended wait.
          this.#finish(held);
          held.reject(new WorkerProtocolError(reason));
        }
      }
      return;
    }
    const index = w.held.findIndex((h) => h.reqId === response.reqId);
    if (index >= 0) {
      const [held] = w.held.splice(index, 1);
      // A queued request's clock starts when the worker finished the one before it.
      const now = runtime.now();
      const sample = now - Math.max(held.sentAt, w.lastAnswer);
      w.serviceMs = w.serviceMs < 0 ? sample : 0.8 * w.serviceMs + 0.2 * sample;
      w.lastAnswer = now;
    }
    w.pingsWhileHolding = 0;
    const p = this.#pending.get(response.reqId);
    if (p === undefined) return; // late duplicate, or evicted: exactly one result was delivered
    if (!p.sentTo.includes(w)) {
      this.#log(`worker ${describe(w.id)} answered request ${response.reqId}, never sent to it`);
      return;
    }
    this.#finish(p);
    this.#completed++;
    if (response.code === 0) p.resolve(response.result);
    else p.reject(new UserCodeError(String(response.result)));
  }

  #addWorker(id: Uint8Array, key: string): WorkerEntry {
    const w: WorkerEntry = {
      id,
      key,
      lastSeen: -Infinity,
      connected: true,
      inAvailable: false,
      held: [],
      pingsWhileHolding: 0,
      quarantined: false,
      serviceMs: -1,
      lastAnswer: -Infinity,
    };
    this.#workers.set(key, w);
    return w;
  }

  #markAvailable(w: WorkerEntry): void {
    if (w.held.length < this.#credit(w) && !w.inAvailable && !w.quarantined) {
      w.inAvailable = true;
      this.#available.push(w);
    }
  }

  #onSocketEvent(event: SocketEvent): void {
    if (this.#closed) return;
    if (event.type === "disconnected" && event.routingId) {
      const key = keyOf(event.routingId);
      const w = this.#workers.get(key);
      if (w !== undefined) {
        // With handover a fresh connection may already carry this id; what the old one held
        // may be lost either way.
        if (!this.#router.hasPeer(event.routingId)) {
          w.connected = false;
          this.#workers.delete(key);
        }
        this.#requeueHeld(w, `worker disconnected${event.reason ? `: ${event.reason}` : ""}`);
        this.#pump();
      }
    }
    if (event.code && (event.type === "disconnected" || event.type === "rejected")) {
      this.#log(`dropped peer ${event.remote ?? "?"}: ${event.reason}`);
    }
  }

  /** Puts back the request a lost worker held, if re-dispatch is on. */
  #requeueHeld(w: WorkerEntry, why: string): void {
    const held = w.held;
    w.held = [];
    w.pingsWhileHolding = 0;
    if (!this.#redispatch) return; // the caller's timeout and retries decide, as in gibbs
    // Reversed so that unshifting each keeps them in their original order at the queue's head.
    for (const p of held.reverse()) {
      if (p.state !== "sent") continue;
      this.#retryElsewhere(p, new GibbsError(`Request lost ${MAX_REDISPATCH} times: ${why}`));
    }
  }

  #retryElsewhere(p: Pending, giveUp: Error): void {
    if (p.state === "done") return;
    if (++p.redispatches > MAX_REDISPATCH) {
      this.#finish(p);
      p.reject(giveUp);
      return;
    }
    this.#redispatched++;
    this.#enqueue(p, true);
  }

  #enqueue(p: Pending, front: boolean): void {
    p.state = "queued";
    this.#queued++;
    if (front) this.#queue.unshift(p);
    else this.#queue.push(p);
  }

  #armTimer(p: Pending): void {
    if (p.timeout <= 0) return;
    clearTimeout(p.timer);
    p.timer = setTimeout(() => this.#onTimeout(p), p.timeout * 1000);
  }

  #onTimeout(p: Pending): void {
    if (p.state === "done") return;
    if (p.retriesLeft === 0) {
      this.#finish(p);
      p.reject(new RequestTimeoutError(p.timeout, p.attempts));
      return;
    }
    if (p.retriesLeft > 0) p.retriesLeft--;
    p.attempts++;
    // The worker that holds it stays busy until it answers; another one gets a copy.
    if (p.state === "sent") this.#enqueue(p, true);
    this.#armTimer(p);
    this.#pump();
  }

  #finish(p: Pending): void {
    if (p.state === "queued") this.#queued--;
    p.state = "done";
    clearTimeout(p.timer);
    this.#pending.delete(p.reqId);
    if (p.onAbort) p.signal!.removeEventListener("abort", p.onAbort);
  }

  /** Sends queued requests to available, live workers. */
  #pump(): void {
    if (this.#closed) return;
    const now = runtime.now();
    while (this.#queue.length > 0) {
      const p = this.#queue.peek()!;
      if (p.state !== "queued") {
        this.#queue.shift(); // finished or already re-sent elsewhere
        continue;
      }
      const w = this.#takeWorker(now, p.redispatches > 0 ? p.sentTo : undefined);
      if (w === undefined) return;
      if (!this.#router.trySend([w.id, EMPTY, p.payload])) continue; // full or gone: skip it
      this.#queue.shift();
      this.#queued--;
      p.state = "sent";
      p.sentAt = now;
      if (!p.sentTo.includes(w)) p.sentTo.push(w);
      if (w.held.length === 0) w.pingsWhileHolding = 0;
      w.held.push(p);
      this.#markAvailable(w); // back in line if it may take more
    }
  }

  /** How many requests `w` may hold at once (see {@linkcode HubOptions.prefetch}). */
  #credit(w: WorkerEntry): number {
    if (this.#prefetch !== "auto") return this.#prefetch;
    if (w.serviceMs < 0) return 1;
    return Math.max(
      1,
      Math.min(AUTO_PREFETCH_MAX, Math.floor(AUTO_PREFETCH_BUDGET_MS / w.serviceMs)),
    );
  }

  /**
   * Takes the next available live worker, skipping stale ones (they come back when they speak)
   * and, for a request that was lost, the workers that lost it while another one is available.
   */
  #takeWorker(now: number, avoid?: WorkerEntry[]): WorkerEntry | undefined {
    let skipped: WorkerEntry[] | undefined;
    let found: WorkerEntry | undefined;
    while (this.#available.length > 0) {
      const w = this.#available.shift()!;
      w.inAvailable = false;
      if (!w.connected || w.quarantined || w.held.length >= this.#credit(w)) continue;
      if (now - w.lastSeen > this.#hbMs) continue;
      if (avoid?.includes(w)) {
        (skipped ??= []).push(w);
        continue;
      }
      found = w;
      break;
    }
    if (skipped !== undefined) {
      for (const w of skipped) this.#markAvailable(w);
      // Nobody else is there: better the worker that lost it than no worker at all. (Another one
      // that is only busy will do: handing it back to the loser spent a re-dispatch each time.)
      const other = [...this.#workers.values()].some((w) =>
        w.connected && !w.quarantined && !avoid!.includes(w)
      );
      if (found === undefined && !other) {
        found = skipped[0];
        this.#available.remove((x) => x === found);
        found.inAvailable = false;
      }
    }
    return found;
  }
}
