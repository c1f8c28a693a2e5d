/**
 * The Hub: embedded in an application, it hands requests to idle workers and awaits results.
 *
 * @module
 */

import type { SocketEvent } from "../socket/options.ts";
import type { SecurityOptions } from "../socket/security.ts";
import { Router } from "../socket/router.ts";
import { describeId, keyOf } from "../socket/routing_id.ts";
import { runtime } from "../transport/runtime.ts";
import type { WebSocketBindOptions } from "../transport/runtime_types.ts";
import { decodeResponse, encodeRequest, type Kwargs } from "./codec.ts";
import { DEFAULT_PORT } from "./defaults.ts";
import { Dispatcher, type Outcome, type Request, type WorkerState } from "./dispatcher.ts";
import { GibbsError, HubClosedError } from "./errors.ts";
import {
  checkServiceName,
  decodeExtension,
  DEFAULT_SERVICE,
  encodeExtension,
  extensionMetadata,
  ExtKind,
  isExtendedPeer,
  readCapacity,
  readService,
} from "./extension.ts";
import { ResponseStream } from "./response_stream.ts";
import type { HubEvents } from "./hub_events.ts";
import { HubObserver, type HubStatus, type MetricsSnapshot } from "./hub_observer.ts";
import { RequestIds } from "./ids.ts";
import { Log, type LoggerOption } from "./logger.ts";
import type { HubStats } from "./stats.ts";

const EMPTY = new Uint8Array(0);
/** Request payloads are encoded for one send and never changed: no copy needed. */
const NO_COPY = { copy: false } as const;
/** The options of `request(...args)`: none. */
const NO_OPTIONS: RequestOptions = Object.freeze({});
/** Shared by every request without keyword arguments: encoded, never changed. */
const NO_KWARGS: Kwargs = Object.freeze({});
/** What most requests are: no timeout, no retry, the default service, not streamed. */
const PLAIN_SUBMIT = { timeoutMs: 0, retries: 0, service: DEFAULT_SERVICE, stream: false } as const;

/** Options of a {@linkcode Hub}. Durations are in seconds, as in Python gibbs. */
export interface HubOptions {
  /** TCP port to bind on every interface (default 5019). */
  port?: number;
  /** Interface to bind (default `"*"`: all IPv4 interfaces). */
  host?: string;
  /** Full endpoint to bind instead of host and port, e.g. `"ipc:///tmp/hub"`. */
  endpoint?: string;
  /**
   * More endpoints to bind besides the main one, all serving one pool: e.g.
   * `["ws://0.0.0.0:5020"]` for workers running in browser pages (ZWS 2.0 over WebSocket). An
   * entry may carry WebSocket bind options: the page origins allowed (default: pages of the
   * same host) and, for `wss://`, the certificate and key files.
   */
  endpoints?: (string | ({ endpoint: string } & WebSocketBindOptions))[];
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
  /**
   * Where log records go (dropped peers, malformed answers, re-dispatches): a
   * {@linkcode Logger} (see {@linkcode createLogger}), or a function given each warning as a
   * line of text. Default: warnings and errors as text on standard error.
   */
  logger?: LoggerOption;
  /**
   * CURVE or PLAIN for the hub's socket, e.g. `{ curveServer: true, curveSecretKey,
   * authenticator: allowCurveKeys(workerKeys) }` (see the README's Security section).
   */
  security?: SecurityOptions;
  /**
   * Count every request for {@linkcode Hub.metrics} (default true; it costs under 3% of the
   * hub's round trips, see `bench/metrics_cost_bench.ts`). Off, requests are not counted; the
   * gauges, connection figures and {@linkcode Hub.events} stay.
   */
  metrics?: boolean;
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
  /**
   * Aborts the request; it then rejects with the signal's reason. One of our workers computing
   * it is told, and its handler sees `requestSignal()` abort.
   */
  signal?: AbortSignal;
  /** The service to run it on (default `"default"`, what every Python worker serves). */
  service?: string;
}

/** What the hub keeps of a request to settle it. */
interface Handle {
  /** Its arguments, for a streamed request sent to one of our workers. */
  args: readonly unknown[];
  kwargs: Kwargs;
  /** A plain request's promise. */
  resolve: ((value: unknown) => void) | undefined;
  reject: ((error: unknown) => void) | undefined;
  /** A streamed request's reader. */
  stream: ResponseStream | undefined;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

/**
 * A gibbs hub: a ROUTER that workers connect to. `await hub.request(...args)` runs on whichever
 * worker is idle and returns its result. Wire-compatible with Python gibbs 0.3 workers.
 *
 * Unlike gibbs 0.3: requests beyond the number of idle workers simply wait; a request pushed
 * out of the response buffer fails at once; `close()` fails what is pending; a request held by
 * a worker that disconnects is re-sent to another worker at once.
 *
 * The scheduling itself lives in a sans-IO {@linkcode Dispatcher}; the hub is the I/O around it:
 * the socket, the timers, abort signals and logging.
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
  #dispatcher: Dispatcher<Handle>;
  #log: Log;
  #observer: HubObserver;
  /** The time of the worker message being handled, -1 between messages. */
  #messageNow = -1;
  #ids = new RequestIds();
  #closed = false;
  #endpoint: string | undefined;
  #endpoints: string[] = [];
  #stopSweep: () => void;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerAt = Infinity;
  #loop: Promise<void>;
  #keys = new WeakMap<Uint8Array, string>();

  /** Creates a hub and starts binding; see {@linkcode Hub.ready}. */
  constructor(options: HubOptions = {}) {
    const heartbeat = options.heartbeatInterval ?? 1;
    if (!(heartbeat > 0)) throw new RangeError("heartbeatInterval must be > 0 seconds");
    const hbMs = heartbeat * 1000;
    const respBufferSize = options.respBufferSize ?? 4096;
    if (!(respBufferSize >= 1)) throw new RangeError("respBufferSize must be at least 1");
    const prefetch = options.prefetch ?? "auto";
    if (prefetch !== "auto" && !(Number.isInteger(prefetch) && prefetch >= 1)) {
      throw new RangeError('prefetch must be "auto" or an integer >= 1');
    }
    const deadAfter = options.deadAfter ?? 10;
    if (!(deadAfter > 0)) throw new RangeError("deadAfter must be > 0 seconds");
    this.#log = new Log(options.logger, "hub");
    const overflow = options.overflow ?? "evict-oldest";
    const observer = this.#observer = new HubObserver({
      metrics: options.metrics ?? true,
      // An answer settles its request at the time its message was read: no second clock read.
      now: () => this.#messageNow >= 0 ? this.#messageNow : runtime.now(),
      overflow,
      onListenerError: (error, type) =>
        this.#log.error("events.listener", `a "${type}" listener threw: ${error}`),
    });
    this.#dispatcher = new Dispatcher<Handle>({
      heartbeatMs: hbMs,
      respBufferSize,
      overflow,
      redispatch: options.redispatch ?? true,
      prefetch,
      requestSeq: (reqId) => this.#ids.seqOf(reqId),
    }, {
      send: (w, request) => this.#send(w, request),
      cancel: (w, request) => {
        this.#router.send([w.id, ...encodeExtension(ExtKind.cancel, request.reqId)]).catch(
          () => {},
        );
      },
      pass: (w) => {
        this.#router.send([w.id, ...encodeExtension(ExtKind.pass, null)]).catch(() => {});
      },
      settle: (request, outcome, from) => {
        observer.settled(request, outcome);
        settle(request, outcome, from);
      },
      log: (level, event, message, fields) => {
        observer.logged(event, message, fields);
        this.#log[level](event, message, fields as Record<string, unknown>);
      },
    });
    const deadAfterMs = deadAfter * 1000;
    this.#router = new Router({
      handover: true, // a worker that resets its socket comes back under the same id
      heartbeatInterval: Math.min(hbMs, deadAfterMs / 2),
      heartbeatTimeout: deadAfterMs,
      maxMessageSize: options.maxMessageSize,
      handshakeTimeout: (options.handshakeTimeout ?? 10) * 1000,
      maxConnections: options.maxConnections ?? 10_000,
      linger: 0,
      // Our workers recognise us by it; Python workers never read it.
      metadata: extensionMetadata(),
      onEvent: (event) => this.#onSocketEvent(event),
      ...options.security,
    });
    const endpoint = options.endpoint ??
      `tcp://${options.host ?? "*"}:${options.port ?? DEFAULT_PORT}`;
    const more = (options.endpoints ?? []).map((e) =>
      typeof e === "string" ? this.#router.bind(e) : this.#router.bind(e.endpoint, e)
    );
    // Every bind settles before `ready` does, so that a failure leaves none half-done.
    this.ready = Promise.allSettled([this.#router.bind(endpoint), ...more]).then((results) => {
      const failed = results.find((r) => r.status === "rejected");
      if (failed) throw failed.reason;
      const bound = results.map((r) => (r as PromiseFulfilledResult<string>).value);
      this.#endpoint = bound[0];
      this.#endpoints = bound;
      return bound[0];
    });
    // Nobody may be awaiting `ready`; the failure still reaches every request.
    this.ready.catch(() => {});
    this.#stopSweep = runtime.every(hbMs, () => this.#sweep());
    this.#loop = this.#receiveLoop();
  }

  /** The endpoint bound, once {@linkcode Hub.ready} resolved. */
  get endpoint(): string | undefined {
    return this.#endpoint;
  }

  /** Every endpoint bound (the main one first, then `endpoints`), once ready resolved. */
  get endpoints(): string[] {
    return [...this.#endpoints];
  }

  /** Number of workers connected now. */
  get workers(): number {
    return this.#dispatcher.workerCount;
  }

  /** A snapshot of the hub's counters. */
  stats(): HubStats {
    return this.#dispatcher.stats();
  }

  /**
   * Whether requests are counted for {@linkcode Hub.metrics} (the `metrics` option); may be
   * switched at run time, e.g. to compare the hub's speed with and without.
   */
  get metricsEnabled(): boolean {
    return this.#observer.counting;
  }

  set metricsEnabled(on: boolean) {
    this.#observer.counting = on;
  }

  /**
   * The hub's events: workers joined and left (with the reason), quarantined, requests
   * re-dispatched, the queue full, peers refused (see {@linkcode HubEvents}).
   */
  get events(): HubEvents {
    return this.#observer.events;
  }

  /**
   * Every figure of the hub now: requests by outcome, queue-wait, service and end-to-end
   * histograms, workers, queue depth, re-dispatches, bytes, connections and handshake
   * failures. {@linkcode formatPrometheus} writes it in the Prometheus text format.
   */
  metrics(): MetricsSnapshot {
    const d = this.#dispatcher;
    return this.#observer.metrics(d.stats(), d.workers(), this.#router);
  }

  /** What the dashboard and `gibbs status` show: figures, up to `limit` workers, history, events. */
  status(limit = 1000): HubStatus {
    const d = this.#dispatcher;
    return this.#observer.status(d.stats(), d.workers(), this.#router, this.#endpoint, limit);
  }

  /**
   * Runs a request with positional arguments on an idle worker and returns its result.
   *
   * @throws {UserCodeError} when the worker's code throws
   * @throws {RequestEvictedError} when pushed out of the response buffer
   * @throws {HubClosedError} when the hub is closed
   */
  request(...args: unknown[]): Promise<unknown> {
    return this.#call(args, NO_OPTIONS);
  }

  /**
   * Runs a request with keyword arguments, a timeout, retries, an abort signal or a service.
   *
   * @throws {RequestTimeoutError} when no result arrives in time after every retry
   */
  requestWith(options: RequestOptions): Promise<unknown> {
    return this.#call(options.args ?? [], options);
  }

  /** A plain request's promise. */
  #call(args: readonly unknown[], options: RequestOptions): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const error = this.#submit(args, options, resolve, reject, undefined);
      if (error !== undefined) reject(error);
    });
  }

  /**
   * Runs a request whose handler streams its result (an async generator on our workers), and
   * returns its chunks as they come. A handler that returns one value, and every Python worker,
   * give a stream of one chunk.
   *
   * @example
   * ```ts ignore
   * for await (const token of hub.stream("Once upon a time")) console.log(token);
   * ```
   */
  stream(...args: unknown[]): ResponseStream {
    return this.streamWith({ args });
  }

  /**
   * {@linkcode Hub.stream} with keyword arguments, a timeout (until the first chunk), retries
   * (before the first chunk), an abort signal or a service. Errors arrive through the stream,
   * after the chunks that came before them.
   */
  streamWith(options: RequestOptions): ResponseStream {
    const stream = new ResponseStream();
    const error = this.#submit(options.args ?? [], options, undefined, undefined, stream);
    if (error !== undefined) stream.end(error);
    return stream;
  }

  /**
   * The requests of one service: only workers that serve it (`--service NAME`) get them.
   *
   * @example
   * ```ts ignore
   * const embed = hub.service("embeddings");
   * const vector = await embed.request("some text");
   * ```
   */
  service(name: string): ServiceClient {
    return new ServiceClient(this, checkServiceName(name));
  }

  /** Makes a request (plain or streamed); returns an error instead when it cannot be made. */
  #submit(
    args: readonly unknown[],
    options: RequestOptions,
    resolve: Handle["resolve"],
    reject: Handle["reject"],
    stream: Handle["stream"],
  ): Error | undefined {
    if (this.#closed) return new HubClosedError();
    const timeout = options.timeout ?? 0;
    const retries = options.retries ?? 0;
    if (!(timeout >= 0)) return new RangeError("timeout must be >= 0 seconds");
    if (!Number.isInteger(retries) || retries < -1) {
      return new RangeError("retries must be an integer >= -1");
    }
    let service = DEFAULT_SERVICE;
    if (options.service !== undefined) {
      try {
        service = checkServiceName(options.service);
      } catch (error) {
        return error as Error;
      }
    }
    const signal = options.signal;
    if (signal?.aborted) return signal.reason;
    const reqId = this.#ids.next();
    const kwargs = options.kwargs ?? NO_KWARGS;
    let payload: Uint8Array;
    try {
      payload = encodeRequest(reqId, args, kwargs);
    } catch (error) {
      return new GibbsError(`Cannot encode the request: ${error}`, { cause: error });
    }
    // One shape for every handle (no spread): the dispatcher's hot path sees a single map.
    const full: Handle = { args, kwargs, resolve, reject, stream, signal, onAbort: undefined };
    const plain = timeout === 0 && retries === 0 && service === DEFAULT_SERVICE &&
      stream === undefined;
    const request = this.#dispatcher.submit(
      reqId,
      payload,
      full,
      runtime.now(),
      plain ? PLAIN_SUBMIT : {
        timeoutMs: timeout * 1000,
        retries,
        service,
        stream: stream !== undefined,
      },
    );
    if (request !== null && request.state !== "done") {
      if (signal !== undefined) {
        full.onAbort = () => {
          this.#dispatcher.cancel(reqId, signal.reason);
          this.#arm();
        };
        signal.addEventListener("abort", full.onAbort, { once: true });
      }
      stream?.attach({
        credit: (n) => {
          const w = request.streamFrom;
          if (w === undefined || !w.connected || request.state === "done") return;
          const frames = encodeExtension(ExtKind.credit, [reqId, n]);
          this.#router.send([w.id, ...frames]).catch(() => {});
        },
        cancel: () => {
          this.#dispatcher.cancel(reqId, new GibbsError("The stream's reader stopped reading"));
          this.#arm();
        },
      });
    }
    this.#arm();
    return undefined;
  }

  /** Sends a request to a worker: as a stream to one of ours when the caller streams. */
  #send(w: WorkerState<Handle>, request: Request<Handle>): boolean {
    const stream = request.handle.stream;
    if (stream !== undefined && w.extended) {
      const { args, kwargs } = request.handle;
      let frames: Uint8Array[];
      try {
        frames = encodeExtension(ExtKind.stream, [request.reqId, args, kwargs, stream.window]);
      } catch {
        return false;
      }
      return this.#router.trySend([w.id, ...frames], NO_COPY);
    }
    return this.#router.trySend([w.id, EMPTY, request.payload], NO_COPY);
  }

  /** Stops the hub: pending requests fail with {@linkcode HubClosedError}. */
  async close(): Promise<void> {
    if (this.#closed) {
      // Closed by a failed bind: resolve once what was bound is released.
      await this.ready.catch(() => {});
      return await this.#router.whenClosed();
    }
    this.#closed = true;
    this.#stopSweep();
    clearTimeout(this.#timer);
    this.#router.close();
    this.#dispatcher.close(new HubClosedError());
    await this.ready.catch(() => {});
    await this.#router.whenClosed();
    await this.#loop;
  }

  async #receiveLoop(): Promise<void> {
    try {
      await this.ready;
    } catch (error) {
      this.#closed = true;
      this.#stopSweep();
      this.#router.close();
      this.#dispatcher.close(
        new GibbsError(`Hub cannot listen: ${(error as Error).message}`, { cause: error }),
      );
      return;
    }
    // Handed over synchronously, a pass per turn: no promise per message.
    this.#router.consume((message, receivedAt) => {
      try {
        this.#onMessage(message, receivedAt);
      } catch (error) {
        this.#log.error(
          "message.error",
          `error while handling a worker message: ${(error as Error).stack}`,
        );
      }
      this.#messageNow = -1;
    });
  }

  #onMessage(message: Uint8Array[], now: number): void {
    const id = message[0];
    const key = this.#keyOf(id);
    this.#messageNow = now;
    const d = this.#dispatcher;
    if (message.length === 2 && message[1].length === 0) {
      // ping: [id, ""] → pong [id, "", ""]. Never queued: a worker that stops reading must
      // not make the hub buffer for it.
      if (d.ping(key, now)) this.#router.trySend([id, EMPTY, EMPTY]);
    } else if (message.length === 3 && message[1].length === 0) {
      let response;
      try {
        response = decodeResponse(message[2]);
      } catch (error) {
        d.malformed(
          key,
          `malformed response from worker ${describeId(id)}: ${(error as Error).message}`,
          now,
        );
        this.#arm();
        return;
      }
      d.answer(key, response.reqId, response.code, response.result, now);
    } else if (message.length === 4 && message[1].length === 0 && d.worker(key)?.extended) {
      let ext;
      try {
        ext = decodeExtension(message[2], message[3]);
      } catch (error) {
        d.malformed(key, `worker ${describeId(id)}: ${(error as Error).message}`, now);
        this.#arm();
        return;
      }
      if (ext.kind === ExtKind.capacity) {
        d.setCapacity(key, ext.body as number, now);
      } else if (ext.kind === ExtKind.decline) {
        d.decline(key, ext.body as string, now);
      } else if (ext.kind === ExtKind.room) {
        d.room(key, now);
      } else if (ext.kind === ExtKind.chunk) {
        const [reqId, value] = ext.body as [string, unknown];
        const request = d.chunk(key, reqId, now);
        if (request !== undefined && !request.handle.stream!.push(value)) {
          d.malformed(key, `worker ${describeId(id)} streamed past its window`, now);
        }
      } else {
        d.malformed(key, `worker ${describeId(id)} sent a "${ext.kind}" message`, now);
      }
    } else if (d.worker(key) !== undefined) {
      // No gibbs worker sends any other shape (nor does one of ours that did not announce itself).
      d.malformed(
        key,
        `worker ${describeId(id)} sent a ${message.length - 1}-frame message no gibbs worker sends`,
        now,
      );
    }
    this.#arm();
  }

  /**
   * The map key of a routing id. The router hands out the same id bytes for every message of a
   * peer: remembering their key saves making a 32-character string per message.
   */
  #keyOf(id: Uint8Array): string {
    let key = this.#keys.get(id);
    if (key === undefined) {
      key = keyOf(id);
      this.#keys.set(id, key);
    }
    return key;
  }

  #onSocketEvent(event: SocketEvent): void {
    const now = runtime.now();
    switch (event.type) {
      case "handshake":
        if (event.routingId) {
          // One of ours announces itself and its capacity; a Python worker gets gibbs's rules.
          const capacity = isExtendedPeer(event.properties)
            ? readCapacity(event.properties) ?? 1
            : undefined;
          this.#dispatcher.join(keyOf(event.routingId), event.routingId, now, {
            name: describeId(event.routingId),
            remote: event.remote,
            capacity,
            service: capacity === undefined ? DEFAULT_SERVICE : readService(event.properties),
          });
          this.#log.debug("worker.joined", `worker ${describeId(event.routingId)} joined`, {
            peer: event.remote,
          });
        }
        break;
      case "disconnect":
        if (event.routingId) {
          // With handover the old connection is closed before the new one registers its id.
          this.#dispatcher.leave(keyOf(event.routingId), event.reason ?? "", now);
          this.#log.debug("worker.left", `worker ${describeId(event.routingId)} left`, {
            peer: event.remote,
            reason: event.reason,
          });
        }
        // A peer dropped before its handshake ended was reported as refused already.
        if (event.code && event.routingId && !this.#closed) {
          this.#log.warn("peer.dropped", `dropped peer ${event.remote ?? "?"}: ${event.reason}`, {
            peer: event.remote,
            code: event.code,
            reason: event.reason,
          });
        }
        this.#arm();
        break;
      case "handshake:error:protocol":
      case "handshake:error:auth":
      case "handshake:error:other":
      case "accept:error":
        if (!this.#closed) {
          this.#log.warn("peer.refused", `refused peer ${event.remote ?? "?"}: ${event.reason}`, {
            peer: event.remote,
            code: event.code,
            reason: event.reason,
          });
        }
        break;
    }
    this.#observer.socketEvent(event);
  }

  #tick(): void {
    if (this.#closed) return;
    this.#dispatcher.tick(runtime.now());
    this.#arm();
  }

  #sweep(): void {
    this.#tick();
    const stats = this.#dispatcher.stats();
    this.#observer.sample(stats.queued, stats.workers);
  }

  /** Keeps one timer armed for the dispatcher's next deadline. */
  #arm(): void {
    const at = this.#dispatcher.nextDeadline();
    if (at >= this.#timerAt || this.#closed) return;
    clearTimeout(this.#timer);
    this.#timerAt = at;
    if (at === Infinity) return;
    this.#timer = setTimeout(() => {
      this.#timerAt = Infinity;
      this.#tick();
    }, Math.max(0, at - runtime.now()));
  }
}

function settle(request: Request<Handle>, outcome: Outcome, from?: WorkerState<Handle>): void {
  const handle = request.handle;
  if (handle.onAbort) handle.signal!.removeEventListener("abort", handle.onAbort);
  const stream = handle.stream;
  if (stream === undefined) {
    if (outcome.ok) handle.resolve!(outcome.value);
    else handle.reject!(outcome.error);
    return;
  }
  if (!outcome.ok) return stream.end(outcome.error);
  // One of ours streamed its chunks and ends with their count; a plain worker's whole result
  // (or a Python worker's) is the one chunk.
  if (from !== undefined && !from.extended) stream.push(outcome.value);
  stream.end();
}

/**
 * The requests of one service of a hub (see {@linkcode Hub.service}): the same methods as the
 * hub's, for workers that serve this service only.
 */
export class ServiceClient {
  /** The service's name. */
  readonly name: string;
  #hub: Hub;

  /** @ignore */
  constructor(hub: Hub, name: string) {
    this.#hub = hub;
    this.name = name;
  }

  /** {@linkcode Hub.request} on this service. */
  request(...args: unknown[]): Promise<unknown> {
    return this.#hub.requestWith({ args, service: this.name });
  }

  /** {@linkcode Hub.requestWith} on this service. */
  requestWith(options: Omit<RequestOptions, "service">): Promise<unknown> {
    return this.#hub.requestWith({ ...options, service: this.name });
  }

  /** {@linkcode Hub.stream} on this service. */
  stream(...args: unknown[]): ResponseStream {
    return this.#hub.streamWith({ args, service: this.name });
  }

  /** {@linkcode Hub.streamWith} on this service. */
  streamWith(options: Omit<RequestOptions, "service">): ResponseStream {
    return this.#hub.streamWith({ ...options, service: this.name });
  }
}
