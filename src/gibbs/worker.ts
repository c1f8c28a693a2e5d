/**
 * The Worker: connects to one hub or several and serves their requests — one at a time as gibbs
 * does, or several at once — on the connection's thread or on handler threads of its own.
 *
 * @module
 */

import type { SecurityOptions } from "../socket/security.ts";
import { parseEndpoint } from "../transport/endpoint.ts";
import { runtime } from "../transport/runtime.ts";
import {
  CODE_ERROR,
  CODE_OK,
  decodeRequest,
  encodeResponse,
  type Kwargs,
  type RequestMessage,
  unpack,
} from "./codec.ts";
import { DEFAULT_PORT } from "./defaults.ts";
import { type Executor, InProcessExecutor, type Job, ThreadPoolExecutor } from "./executor.ts";
import {
  checkServiceName,
  decodeExtension,
  DEFAULT_SERVICE,
  encodeExtension,
  extensionFrames,
  extensionMetadata,
  ExtKind,
  MAX_CAPACITY,
} from "./extension.ts";
import type { Handler } from "./handler.ts";
import { moduleUrl } from "./handler_module.ts";
import { HubLink, type LinkHost } from "./hub_link.ts";
import { randomHexId } from "./ids.ts";
import { Log, type LoggerOption } from "./logger.ts";
import { type SlotActions, SlotLedger } from "./slots.ts";

const EMPTY = new Uint8Array(0);

/** Options of a {@linkcode Worker}. Durations are in seconds, as in Python gibbs. */
export interface WorkerOptions {
  /** Hub host (default `"localhost"`). */
  host?: string;
  /** Hub port (default 5019). */
  port?: number;
  /** Full hub endpoint instead of host and port, e.g. `"ipc:///tmp/hub"`. */
  endpoint?: string;
  /**
   * Several hubs to serve at once (application replicas in front of one pool of workers),
   * instead of `endpoint` or host and port; more can be added and removed while running
   * ({@linkcode Worker.addHub}, {@linkcode Worker.removeHub}). The worker's capacity is shared
   * by all of them: it never holds more than `concurrency` requests (× the batch size), and
   * declines to our hubs what it cannot take, which they send elsewhere at once. `[]` starts
   * with none.
   */
  endpoints?: string[];
  /** Ping the hub after this long without hearing from it (default 1). */
  heartbeatInterval?: number;
  /** Reset the connection after this many unanswered pings (default 2). */
  resetAfterNMiss?: number;
  /** Constructor arguments when the handler is a class. */
  args?: unknown[];
  /** Constructor keyword arguments (one trailing object) when the handler is a class. */
  kwargs?: Kwargs;
  /**
   * Handler threads, for a handler given as a module URL: each thread imports the module and
   * constructs its own instance, and the connection's thread stays free to answer heartbeats
   * while the handler computes. 0 runs the handler on the connection's thread. A handler given
   * as a function or class runs there always (JavaScript cannot send one to another thread).
   * @default {1 for a module, 0 for a function or class}
   */
  threads?: number;
  /**
   * The export of the module to serve, for a handler given as a module URL.
   * @default {"default"}
   */
  export?: string;
  /**
   * Most requests this worker serves at once: async handlers interleave on a thread, and
   * requests spread over `threads`. 1 is gibbs's rule.
   * @default {the number of threads, or 1}
   */
  concurrency?: number;
  /**
   * Serve requests in batches: the worker collects up to `maxSize` requests, or what arrived
   * within `maxWaitMs` of the first, and calls the handler's `batch(items)` once (a class
   * method, or a function marked with {@linkcode batched}); each request is answered on its
   * own, and an `Error` among the results fails that request only. `concurrency` then counts
   * batches: the worker holds up to `concurrency × maxSize` requests.
   */
  batch?: BatchOptions;
  /**
   * The service this worker serves: only requests for it reach it (`hub.service(name)`). Every
   * Python worker serves `"default"`; toward a Python hub the name has no effect.
   * @default {"default"}
   */
  service?: string;
  /** Routing id (default: 32 random lowercase hex chars, like a uuid4's hex). */
  routingId?: string;
  /** Stop gracefully on SIGINT/SIGTERM (default false; the CLI turns it on). */
  handleSignals?: boolean;
  /**
   * Where log records go: a {@linkcode Logger} (see {@linkcode createLogger}), or a function
   * given each warning as a line of text. Default: warnings and errors as text on standard error.
   */
  logger?: LoggerOption;
  /**
   * CURVE or PLAIN toward the hub, e.g. `{ curveServerKey: hubPublicKey, curveSecretKey }`
   * (see the README's Security section).
   */
  security?: SecurityOptions;
}

/** A request received and not answered yet. */
interface Waiting extends Job {
  /** Set for a streamed request: the chunks it may send before credit. */
  window: number | undefined;
  /** The hub it came from, and the connection. */
  link: HubLink;
  generation: number;
  /** It came from our hub, which forgets it when that connection ends. */
  fromOurs: boolean;
}

/** Options of dynamic batching (see {@linkcode WorkerOptions.batch}). */
export interface BatchOptions {
  /** Most requests in one call of the handler's `batch`. */
  maxSize: number;
  /** Longest a request waits for others to join its batch, in milliseconds. */
  maxWaitMs: number;
}

/**
 * A gibbs worker, wire-compatible with Python gibbs 0.3 hubs. The handler is a function, or a
 * class constructed once with `args`/`kwargs` whose `call` method serves requests; positional
 * arguments are spread and non-empty kwargs arrive as one trailing object. Given as a module URL,
 * the handler runs on threads of its own (`threads`, default 1), so that a long synchronous
 * computation does not stop the worker from answering the hub's heartbeats.
 *
 * Toward our own hub the worker announces its capacity in the ZMTP handshake; toward a Python
 * gibbs hub it asks for more work, while it has room, by pinging (gibbs's availability rule).
 * A worker may serve several hubs (`endpoints`, {@linkcode Worker.addHub}): one connection
 * each, one capacity shared by all.
 *
 * @example
 * ```ts ignore
 * import { Worker } from "./worker.ts";
 * class Model {
 *   constructor(private factor: number) {}
 *   call(x: number, opts?: { offset?: number }) {
 *     return x * this.factor + (opts?.offset ?? 0);
 *   }
 * }
 * const worker = new Worker(Model, { port: 5019, args: [10] });
 * await worker.run(); // until worker.stop() or, with handleSignals, SIGINT/SIGTERM
 *
 * // A module's default export on 2 threads, 8 requests at once:
 * await new Worker(new URL("./model.ts", import.meta.url), { threads: 2, concurrency: 8 }).run();
 *
 * // One pool of workers behind three application replicas, each with its hub:
 * const shared = new Worker(Model, {
 *   args: [10],
 *   endpoints: ["tcp://app-1:5019", "tcp://app-2:5019", "tcp://app-3:5019"],
 * });
 * ```
 */
export class Worker {
  /** The routing id this worker announces. */
  readonly id: string;
  /**
   * Resolves once {@linkcode Worker.run} has loaded and constructed the handler (on every
   * thread), just before it connects; rejects as `run()` does when that fails.
   */
  readonly started: Promise<void>;
  #onStarted!: (error?: unknown) => void;
  #executor: Executor;
  #endpoints: string[];
  #links = new Map<string, HubLink>();
  #host: LinkHost;
  #log: Log;
  #handleSignals: boolean;
  #capacity: number;
  #concurrency: number;
  #batch: BatchOptions | undefined;
  #service: string;
  #slots: SlotLedger<HubLink, Waiting>;
  /** Requests being served now, by id (for cancel and credit). */
  #serving = new Map<string, Waiting>();
  /** Requests holding a slot while they wait to join a batch. */
  #batchQueue: Waiting[] = [];
  #batchTimer: ReturnType<typeof setTimeout> | undefined;
  #batchesRunning = 0;
  #runCalled = false;
  #running = false;
  #stopping = false;
  #inFlight = 0;
  #served = 0;
  #declined = 0;
  /** Resets of links that were removed. */
  #pastResets = 0;
  #signals = 0;
  #finished: Promise<void>;
  #finish!: () => void;
  #fail!: (error: unknown) => void;

  /**
   * Creates a worker. A class handler given as a value is constructed here: whatever its
   * constructor throws is thrown from this constructor, so a broken model fails before
   * connecting. A handler given as a module is loaded by {@linkcode Worker.run}, which rejects
   * before connecting when the module or its constructor fails.
   */
  constructor(handler: Handler | URL | string, options: WorkerOptions = {}) {
    this.id = options.routingId ?? randomHexId();
    this.started = new Promise<void>((resolve, reject) => {
      this.#onStarted = (error) => (error === undefined ? resolve() : reject(error));
    });
    // Nobody may be awaiting it: run() reports the same failure.
    this.started.catch(() => {});
    this.#finished = new Promise<void>((resolve, reject) => {
      this.#finish = resolve;
      this.#fail = reject;
    });
    this.#finished.catch(() => {});
    const args = options.args ?? [];
    const kwargs = options.kwargs ?? {};
    const isModule = handler instanceof URL || typeof handler === "string";
    const threads = options.threads ?? (isModule ? 1 : 0);
    if (!(Number.isInteger(threads) && threads >= 0 && threads <= 256)) {
      throw new RangeError(`threads must be an integer 0 to 256, got ${threads}`);
    }
    if (threads > 0 && !isModule) {
      throw new RangeError(
        "threads need the handler as a module URL: a function or class cannot be sent to " +
          "another thread (pass new URL('./model.ts', import.meta.url), or threads: 0)",
      );
    }
    this.#batch = options.batch;
    if (this.#batch !== undefined) checkBatch(this.#batch);
    this.#concurrency = options.concurrency ?? (this.#batch ? 1 : Math.max(1, threads));
    checkConcurrency(this.#concurrency);
    this.#capacity = this.#concurrency * (this.#batch?.maxSize ?? 1);
    checkConcurrency(this.#capacity);
    this.#slots = new SlotLedger(this.#capacity);
    this.#service = checkServiceName(options.service ?? DEFAULT_SERVICE);
    this.#log = new Log(options.logger, `worker ${this.id}`);
    this.#endpoints = endpointsOf(options);
    const hbMs = (options.heartbeatInterval ?? 1) * 1000;
    if (!(hbMs > 0)) throw new RangeError("heartbeatInterval must be > 0 seconds");
    const resetAfter = options.resetAfterNMiss ?? 2;
    if (!Number.isInteger(resetAfter) || resetAfter < 1) {
      throw new RangeError("resetAfterNMiss must be an integer >= 1 (unanswered pings)");
    }
    this.#handleSignals = options.handleSignals ?? false;
    this.#host = {
      routingId: this.id,
      heartbeatMs: hbMs,
      resetAfter,
      security: options.security,
      log: this.#log,
      metadata: () => ({
        metadata: extensionMetadata(this.#capacity, this.#service),
        capacity: this.#capacity,
      }),
      onMessage: (link, message) => this.#onMessage(link, message),
      onConnect: (link) => this.#onConnect(link),
      onDisconnect: (link, wasOurs, generation) => this.#onDisconnect(link, wasOurs, generation),
      mayOffer: (link) => this.#mayOffer(link),
      onFailure: (error) => this.#fail(error),
    };
    if (isModule) {
      const url = moduleUrl(handler, runtime.cwd());
      const name = options.export ?? "default";
      this.#executor = threads > 0
        ? new ThreadPoolExecutor(
          url,
          name,
          threads,
          args,
          kwargs,
          (message) => this.#log.error("thread.failed", message),
        )
        : new InProcessExecutor({ module: url, export: name }, args, kwargs);
    } else {
      this.#executor = new InProcessExecutor(handler, args, kwargs);
    }
  }

  /** Requests served so far. */
  get served(): number {
    return this.#served;
  }

  /** Requests declined so far, because other hubs held its capacity. */
  get declined(): number {
    return this.#declined;
  }

  /** Times a connection was reset after unanswered pings. */
  get resets(): number {
    let n = this.#pastResets;
    for (const link of this.#links.values()) n += link.resets;
    return n;
  }

  /** The hub endpoint this worker connects to (the first, when it serves several). */
  get endpoint(): string {
    return this.#endpoints[0] ?? "";
  }

  /** The hub endpoints this worker serves, in the order they were given. */
  get endpoints(): readonly string[] {
    return [...this.#endpoints];
  }

  /** Handler threads (0: the handler runs on the connection's thread). */
  get threads(): number {
    return this.#executor.threads;
  }

  /** Most requests served at once (with batching: batches at once). */
  get concurrency(): number {
    return this.#concurrency;
  }

  /** Most requests this worker holds at once: its concurrency, times the batch size. */
  get capacity(): number {
    return this.#capacity;
  }

  /** The service this worker serves. */
  get service(): string {
    return this.#service;
  }

  /** Requests being served now. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /**
   * Most requests ever held at once, across all hubs: served, or waiting in a batch about to
   * start. Never above the capacity (unless the capacity was lowered meanwhile).
   */
  get peakInFlight(): number {
    return this.#slots.peak;
  }

  /**
   * Changes how many requests this worker serves at once. Our hubs are told at once; a Python
   * gibbs hub learns it from the worker's pings.
   */
  setConcurrency(concurrency: number): void {
    checkConcurrency(concurrency);
    const capacity = concurrency * (this.#batch?.maxSize ?? 1);
    checkConcurrency(capacity);
    this.#concurrency = concurrency;
    this.#capacity = capacity;
    this.#apply(this.#slots.setCapacity(capacity));
    for (const link of this.#links.values()) {
      if (!link.extended || link.retiring) continue;
      link.announce(capacity);
      this.#slots.announced(link);
    }
    if (this.#batch !== undefined) this.#flushBatches(false);
    this.#offerRoom();
  }

  /**
   * Serves one more hub, at once when running (else from {@linkcode Worker.run} on).
   *
   * @throws {RangeError} for a malformed endpoint, or one already served
   */
  addHub(endpoint: string): void {
    if (this.#stopping) throw new Error("the worker is stopping: it takes no more hubs");
    checkEndpoint(endpoint);
    if (this.#endpoints.includes(endpoint)) {
      throw new RangeError(`the worker already serves the hub at ${endpoint}`);
    }
    this.#endpoints.push(endpoint);
    if (this.#running) {
      this.#log.info("hub.added", `serving one more hub: ${endpoint}`, { endpoint });
      this.#open(endpoint);
    }
  }

  /**
   * Stops serving a hub: it gets nothing more (our hub is declined what it sends, and what
   * waits for a slot, so it goes elsewhere at once), the requests it has being served are
   * answered, then its connection closes. Resolves once closed.
   *
   * @throws {RangeError} for an endpoint the worker does not serve
   */
  async removeHub(endpoint: string): Promise<void> {
    const at = this.#endpoints.indexOf(endpoint);
    if (at < 0) throw new RangeError(`the worker does not serve a hub at ${endpoint}`);
    this.#endpoints.splice(at, 1);
    const link = this.#links.get(endpoint);
    if (link === undefined) return;
    this.#log.info("hub.removed", `no longer serving the hub at ${endpoint}`, { endpoint });
    this.#retire(link);
    await link.whenClosed();
  }

  /**
   * Serves requests until {@linkcode Worker.stop} (or a shutdown signal with `handleSignals`).
   * Resolves once the requests in hand are answered and the connections are closed.
   *
   * @throws {HandlerStartError} when a handler given as a module fails to load or construct
   */
  async run(): Promise<void> {
    if (this.#runCalled) throw new Error("run() was called already");
    this.#runCalled = true;
    const removeSignals = this.#handleSignals
      ? runtime.onShutdownSignal((signal) => this.#onSignal(signal))
      : () => {};
    try {
      try {
        await this.#executor.start();
      } catch (error) {
        this.#onStarted(error);
        throw error;
      }
      this.#onStarted();
      if (this.#stopping) return;
      this.#running = true;
      for (const endpoint of this.#endpoints) this.#open(endpoint);
      await this.#finished;
    } finally {
      this.#stopping = true;
      removeSignals();
      clearTimeout(this.#batchTimer);
      // Linger so that the last responses leave before the sockets go.
      await Promise.all([...this.#links.values()].map((link) => link.close()));
      await this.#executor.close();
    }
  }

  /**
   * Stops once the requests in hand are answered; stops at once when idle. `run()` then
   * resolves. Requests received but not started are not served: our hubs are told at once, so
   * they send them elsewhere; a Python hub's caller sees its timeout, as with gibbs.
   */
  stop(): void {
    if (this.#stopping) return;
    this.#stopping = true;
    clearTimeout(this.#batchTimer);
    this.#batchTimer = undefined;
    for (const { job } of this.#slots.drain()) this.#decline(job);
    for (const job of this.#batchQueue.splice(0)) {
      this.#slots.release(job.link); // nothing waits any more: nothing starts
      this.#decline(job);
    }
    for (const link of this.#links.values()) this.#closeIfIdle(link);
    this.#checkFinished();
  }

  /**
   * With `handleSignals`: the first SIGINT/SIGTERM stops after the requests in hand; a second
   * one while requests still run quits at once, unanswered (exit 128 + the signal's number, as
   * a shell reports a process killed by it).
   */
  #onSignal(signal: string): void {
    this.#signals++;
    if (this.#signals > 1 && this.#inFlight > 0) {
      this.#log.warn(
        "worker.quit",
        `second ${signal}: quitting without answering the request in hand`,
      );
      runtime.exit(signal === "SIGINT" ? 130 : 143);
    }
    if (this.#inFlight > 0) {
      this.#log.info(
        "worker.stopping",
        `${signal}: finishing the request in hand, then stopping (again to quit now)`,
      );
    }
    this.stop();
  }

  #open(endpoint: string): void {
    const link = new HubLink(endpoint, this.#host);
    this.#links.set(endpoint, link);
    link.open();
  }

  /** Takes a hub out: nothing more for it; it closes once its requests are answered. */
  #retire(link: HubLink): void {
    link.retiring = true;
    const { dropped, actions } = this.#slots.forget(link);
    for (const job of dropped) this.#decline(job);
    this.#apply(actions);
    const batched = this.#batchQueue.filter((job) => job.link === link);
    if (batched.length > 0) {
      this.#batchQueue = this.#batchQueue.filter((job) => job.link !== link);
      for (const job of batched) {
        this.#apply(this.#slots.release(link));
        this.#decline(job);
      }
    }
    this.#closeIfIdle(link);
  }

  #closeIfIdle(link: HubLink): void {
    if (!(this.#stopping || link.retiring) || this.#slots.heldBy(link) > 0) return;
    if (!link.closed) {
      this.#pastResets += link.resets;
      link.resets = 0;
      link.close();
    }
    if (link.retiring && this.#links.get(link.endpoint) === link) {
      this.#links.delete(link.endpoint);
    }
    this.#checkFinished();
  }

  #checkFinished(): void {
    if (!this.#stopping || this.#inFlight > 0) return;
    for (const link of this.#links.values()) if (!link.closed) return;
    this.#finish();
  }

  /** Applies what the slots decided: serve, decline, offer room, let hubs send again. */
  #apply(actions: SlotActions<HubLink, Waiting>): void {
    for (const { job } of actions.start) {
      if (this.#batch !== undefined) this.#batchQueue.push(job);
      else this.#start(job);
    }
    if (this.#batch !== undefined && actions.start.length > 0) this.#flushBatches(false);
    for (const { job } of actions.decline) this.#decline(job);
    if (this.#stopping) return;
    for (const link of actions.offer) {
      if (!link.retiring) link.sendExtension(ExtKind.room, null);
    }
    for (const link of actions.resume) {
      if (!link.retiring) link.announce(this.#capacity, true);
    }
  }

  /** Tells our hub that a request was not taken, so that it goes elsewhere at once. */
  #decline(job: Waiting): void {
    const link = job.link;
    // A connection that ended took the request with it: its hub already sent it elsewhere.
    if (!job.fromOurs || link.closed || !link.extended || job.generation !== link.generation) {
      return;
    }
    this.#declined++;
    link.sendExtension(ExtKind.decline, job.request.reqId);
  }

  /**
   * Toward gibbs hubs, a worker with room asks for one more request by pinging: a gibbs hub
   * marks it available once, whatever it sends, and each request it sends takes that mark
   * away. A hub whose mark is taken (or stale) is asked again while there is room. Our hubs
   * need no asking: they know the capacity, and hear of room after a decline.
   */
  #offerRoom(): void {
    if (this.#stopping) return;
    for (const link of this.#links.values()) {
      if (!link.extended && link.connected && !link.offered && this.#mayOffer(link)) link.ping();
    }
  }

  /**
   * May the worker say anything to a gibbs hub now (any message marks it available there)?
   * While it has a free slot; and, while other hubs fill it, to a gibbs hub that has nothing in
   * the worker: a gibbs hub cannot be told to wait in line, so it is always offered one
   * request, which takes the next free slot before anything else.
   */
  #mayOffer(link: HubLink): boolean {
    if (this.#stopping || link.retiring) return false;
    return this.#slots.free > 0 ||
      (this.#slots.heldBy(link) === 0 && this.#slots.waitingFor(link) === 0);
  }

  #onConnect(link: HubLink): void {
    // A reconnect of the same socket announced the capacity it was created with.
    if (link.extended && !link.retiring) link.announce(this.#capacity);
  }

  /** A connection ended. Our hub has sent what it held elsewhere: those requests are dropped. */
  #onDisconnect(link: HubLink, wasOurs: boolean, generation: number): void {
    if (!wasOurs) return; // a gibbs hub may still take the answers on a new connection
    this.#apply(this.#slots.forget(link).actions);
    const gone = (job: Waiting) => job.link === link && job.generation === generation;
    const batched = this.#batchQueue.filter(gone);
    if (batched.length > 0) {
      this.#batchQueue = this.#batchQueue.filter((job) => !gone(job));
      for (const _ of batched) this.#apply(this.#slots.release(link));
    }
    const reason = new Error(`the hub at ${link.endpoint} went away`);
    for (const job of [...this.#serving.values()]) {
      if (gone(job)) this.#executor.cancel(job.request.reqId, reason);
    }
    this.#closeIfIdle(link);
    this.#offerRoom();
  }

  #onMessage(link: HubLink, message: Uint8Array[]): void {
    const workload = message[message.length - 1];
    if (message.length === 3 && link.extended) return this.#onExtension(link, message);
    if (message.length !== 2) {
      this.#log.warn(
        "message.ignored",
        `ignored a ${message.length}-frame message from the hub at ${link.endpoint}`,
      );
      return;
    }
    let request: RequestMessage;
    try {
      request = decodeRequest(workload);
    } catch (error) {
      // Answer when at least the request id can be read, so the caller is not left waiting.
      const value = safeUnpack(workload);
      if (Array.isArray(value) && typeof value[0] === "string") {
        link.send([EMPTY, encodeResponse(value[0], CODE_ERROR, String(error))]);
      }
      this.#log.warn(
        "request.malformed",
        `malformed request from the hub at ${link.endpoint}: ${(error as Error).message}`,
      );
      this.#offerRoom();
      return;
    }
    this.#arrive(link, request, workload, undefined);
  }

  /** A message only our hub sends: a streamed request, credit for one, a cancellation. */
  #onExtension(link: HubLink, message: Uint8Array[]): void {
    let ext;
    try {
      ext = decodeExtension(message[1], message[2]);
    } catch (error) {
      this.#log.warn(
        "message.malformed",
        `malformed message from the hub at ${link.endpoint}: ${error}`,
      );
      return;
    }
    switch (ext.kind) {
      case ExtKind.stream: {
        const [reqId, args, kwargs, window] = ext.body as [string, unknown[], Kwargs, number];
        this.#arrive(link, { reqId, args, kwargs }, undefined, window);
        break;
      }
      case ExtKind.credit: {
        const [reqId, n] = ext.body as [string, number];
        if (this.#serving.get(reqId)?.link === link) this.#executor.credit(reqId, n);
        break;
      }
      case ExtKind.cancel:
        this.#cancel(link, ext.body as string);
        break;
      case ExtKind.pass:
        this.#apply(this.#slots.pass(link));
        this.#offerRoom();
        break;
      default:
        this.#log.warn(
          "message.ignored",
          `ignored a "${ext.kind}" message from the hub at ${link.endpoint}`,
        );
    }
  }

  #arrive(
    link: HubLink,
    request: RequestMessage,
    payload: Uint8Array | undefined,
    window: number | undefined,
  ): void {
    const job: Waiting = {
      request,
      payload,
      window,
      link,
      generation: link.generation,
      fromOurs: link.extended,
    };
    // A gibbs hub cannot be told no: what it sends now is dropped, as a stopping gibbs worker
    // drops it.
    if (this.#stopping || link.retiring) return this.#decline(job);
    this.#apply(this.#slots.arrive(link, job, job.fromOurs));
    this.#offerRoom();
  }

  /** The caller gave up: a request not started is answered at once, a running one aborted. */
  #cancel(link: HubLink, reqId: string): void {
    const reason = new Error("cancelled by the caller");
    const matches = (job: Waiting) => job.request.reqId === reqId && job.link === link;
    let job = this.#slots.withdraw(link, matches);
    if (job === undefined) {
      const at = this.#batchQueue.findIndex(matches);
      if (at >= 0) {
        job = this.#batchQueue.splice(at, 1)[0];
        this.#apply(this.#slots.release(link));
      }
    }
    if (job !== undefined) {
      this.#respond(job, encodeResponse(reqId, CODE_ERROR, `Cancelled: ${reason.message}`));
      this.#closeIfIdle(link);
      this.#offerRoom();
      return;
    }
    if (this.#serving.get(reqId)?.link === link) this.#executor.cancel(reqId, reason);
  }

  #start(job: Waiting): void {
    this.#inFlight++;
    const reqId = job.request.reqId;
    this.#serving.set(reqId, job);
    const stream = job.window === undefined ? undefined : {
      window: job.window,
      send: (chunk: Uint8Array) => this.#sendFrames(job, extensionFrames(ExtKind.chunk, chunk)),
    };
    this.#executor.serve(job, stream).then((response) => {
      if (this.#serving.get(reqId) === job) this.#serving.delete(reqId);
      this.#done([job], [response]);
    });
  }

  /** Starts the batches that are full, or due (`timerFired`), while batch slots are free. */
  #flushBatches(timerFired: boolean): void {
    const { maxSize, maxWaitMs } = this.#batch!;
    while (
      this.#batchQueue.length > 0 && this.#batchesRunning < this.#concurrency &&
      (this.#batchQueue.length >= maxSize || timerFired)
    ) {
      clearTimeout(this.#batchTimer);
      this.#batchTimer = undefined;
      this.#runBatch(this.#batchQueue.splice(0, maxSize));
      timerFired = false;
    }
    if (this.#batchQueue.length > 0 && this.#batchTimer === undefined && !this.#stopping) {
      this.#batchTimer = setTimeout(() => {
        this.#batchTimer = undefined;
        this.#flushBatches(true);
      }, maxWaitMs);
    }
  }

  #runBatch(jobs: Waiting[]): void {
    this.#batchesRunning++;
    this.#inFlight += jobs.length;
    for (const job of jobs) this.#serving.set(job.request.reqId, job);
    this.#executor.serveBatch(jobs).then((responses) => {
      this.#batchesRunning--;
      for (const job of jobs) {
        if (this.#serving.get(job.request.reqId) === job) this.#serving.delete(job.request.reqId);
      }
      // A streamed request served in a batch is a stream of one chunk.
      const answers = responses.map((r, i) =>
        jobs[i].window === undefined ? r : this.#asStream(jobs[i], r)
      );
      this.#done(jobs, answers);
      if (!this.#stopping) this.#flushBatches(false);
    });
  }

  /** Sends a batch's answer to a streamed request as one chunk, then the end of the stream. */
  #asStream(job: Waiting, response: Uint8Array): Uint8Array {
    const [reqId, code, result] = unpack(response) as [string, number, unknown];
    if (code !== CODE_OK) return response;
    this.#sendFrames(job, encodeExtension(ExtKind.chunk, [reqId, result]));
    return encodeResponse(reqId, CODE_OK, 1);
  }

  /** Requests answered: the answers go to their hubs, and their slots are free. */
  #done(jobs: Waiting[], responses: Uint8Array[]): void {
    this.#served += jobs.length;
    this.#inFlight -= jobs.length;
    for (let i = 0; i < jobs.length; i++) this.#respond(jobs[i], responses[i]);
    for (const job of jobs) this.#apply(this.#slots.release(job.link));
    for (const job of jobs) this.#closeIfIdle(job.link);
    this.#offerRoom();
    this.#checkFinished();
  }

  #respond(job: Waiting, response: Uint8Array): void {
    this.#sendFrames(job, [EMPTY, response]);
  }

  #sendFrames(job: Waiting, frames: Uint8Array[]): void {
    // Our hub forgot the requests of a connection that ended (it sent them elsewhere); a gibbs
    // hub may still take an answer on a new connection.
    if (job.fromOurs && job.generation !== job.link.generation) return;
    job.link.send(frames);
  }
}

/** The endpoints a worker's options name: `endpoints`, or `endpoint`, or host and port. */
function endpointsOf(options: WorkerOptions): string[] {
  if (options.endpoints !== undefined) {
    if (
      options.endpoint !== undefined || options.host !== undefined || options.port !== undefined
    ) {
      throw new RangeError("endpoints replaces endpoint, host and port: give one or the other");
    }
    const endpoints: string[] = [];
    for (const endpoint of options.endpoints) {
      checkEndpoint(endpoint);
      if (endpoints.includes(endpoint)) {
        throw new RangeError(`endpoints names ${endpoint} twice`);
      }
      endpoints.push(endpoint);
    }
    return endpoints;
  }
  const host = options.host ?? "localhost";
  return [options.endpoint ?? `tcp://${host}:${options.port ?? DEFAULT_PORT}`];
}

function checkEndpoint(endpoint: string): void {
  try {
    parseEndpoint(endpoint);
  } catch (error) {
    throw new RangeError((error as Error).message, { cause: error });
  }
}

function checkBatch(batch: BatchOptions): void {
  if (!(Number.isInteger(batch.maxSize) && batch.maxSize >= 1 && batch.maxSize <= 4096)) {
    throw new RangeError(`batch.maxSize must be an integer 1 to 4096, got ${batch.maxSize}`);
  }
  if (!(batch.maxWaitMs >= 0 && batch.maxWaitMs <= 60_000)) {
    throw new RangeError(`batch.maxWaitMs must be 0 to 60000, got ${batch.maxWaitMs}`);
  }
}

function checkConcurrency(concurrency: number): void {
  if (!(Number.isInteger(concurrency) && concurrency >= 1 && concurrency <= MAX_CAPACITY)) {
    throw new RangeError(`concurrency must be an integer 1 to ${MAX_CAPACITY}, got ${concurrency}`);
  }
}

function safeUnpack(bytes: Uint8Array): unknown {
  try {
    return unpack(bytes);
  } catch {
    return undefined;
  }
}
