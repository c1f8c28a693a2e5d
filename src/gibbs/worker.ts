/**
 * The Worker: connects to a hub and serves its requests — one at a time as gibbs does, or
 * several at once — on the connection's thread or on handler threads of its own.
 *
 * @module
 */

import { Deque } from "../socket/deque.ts";
import { Dealer } from "../socket/dealer.ts";
import { SocketClosedError } from "../socket/errors.ts";
import type { SocketEvent } from "../socket/options.ts";
import type { SecurityOptions } from "../socket/security.ts";
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
  isExtendedPeer,
  MAX_CAPACITY,
} from "./extension.ts";
import type { Handler } from "./handler.ts";
import { moduleUrl } from "./handler_module.ts";
import { randomHexId } from "./ids.ts";
import { Log, type LoggerOption } from "./logger.ts";

const EMPTY = new Uint8Array(0);

/** Options of a {@linkcode Worker}. Durations are in seconds, as in Python gibbs. */
export interface WorkerOptions {
  /** Hub host (default `"localhost"`). */
  host?: string;
  /** Hub port (default 5019). */
  port?: number;
  /** Full hub endpoint instead of host and port, e.g. `"ipc:///tmp/hub"`. */
  endpoint?: string;
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
  #endpoint: string;
  #hbMs: number;
  #resetAfter: number;
  #log: Log;
  #handleSignals: boolean;
  #capacity: number;
  #concurrency: number;
  #batch: BatchOptions | undefined;
  #service: string;
  /** Requests being served now, by id (for cancel). */
  #serving = new Set<string>();
  /** Requests waiting to join a batch. */
  #batchQueue: Waiting[] = [];
  #batchTimer: ReturnType<typeof setTimeout> | undefined;
  #batchesRunning = 0;
  #security: SecurityOptions | undefined;
  #socket: Dealer | null = null;
  /** The capacity the current socket announced in its handshake. */
  #announced = 0;
  /** The hub on the current connection announced itself as ours. */
  #hubExtended = false;
  #waitingPong = 0;
  #lastHeard = 0;
  #lastPing = 0;
  #stopping = false;
  #inFlight = 0;
  #peakInFlight = 0;
  #waiting = new Deque<Waiting>();
  #served = 0;
  #resets = 0;
  // Connection state, from the socket's events: while no hub is connected there is nobody to
  // ping, and resetting the socket would only undo its reconnect backoff.
  #connected = false;
  #unreachable = false;
  #refusals = new Set<string>();
  #signals = 0;

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
    this.#service = checkServiceName(options.service ?? DEFAULT_SERVICE);
    this.#log = new Log(options.logger, `worker ${this.id}`);
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
    const host = options.host ?? "localhost";
    this.#endpoint = options.endpoint ?? `tcp://${host}:${options.port ?? DEFAULT_PORT}`;
    this.#hbMs = (options.heartbeatInterval ?? 1) * 1000;
    if (!(this.#hbMs > 0)) throw new RangeError("heartbeatInterval must be > 0 seconds");
    this.#resetAfter = options.resetAfterNMiss ?? 2;
    if (!Number.isInteger(this.#resetAfter) || this.#resetAfter < 1) {
      throw new RangeError("resetAfterNMiss must be an integer >= 1 (unanswered pings)");
    }
    this.#handleSignals = options.handleSignals ?? false;
    this.#security = options.security;
  }

  /** Requests served so far. */
  get served(): number {
    return this.#served;
  }

  /** Times the connection was reset after unanswered pings. */
  get resets(): number {
    return this.#resets;
  }

  /** The hub endpoint this worker connects to. */
  get endpoint(): string {
    return this.#endpoint;
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

  /** Most requests ever served at once. */
  get peakInFlight(): number {
    return this.#peakInFlight;
  }

  /**
   * Changes how many requests this worker serves at once. Our hub is told at once; a Python
   * gibbs hub learns it from the worker's pings.
   */
  setConcurrency(concurrency: number): void {
    checkConcurrency(concurrency);
    this.#concurrency = concurrency;
    this.#capacity = concurrency * (this.#batch?.maxSize ?? 1);
    this.#announce();
    this.#startWaiting();
    this.#askForWork();
  }

  /**
   * Serves requests until {@linkcode Worker.stop} (or a shutdown signal with `handleSignals`).
   * Resolves once the requests in hand are answered and the connection is closed.
   *
   * @throws {HandlerStartError} when a handler given as a module fails to load or construct
   */
  async run(): Promise<void> {
    const removeSignals = this.#handleSignals
      ? runtime.onShutdownSignal((signal) => this.#onSignal(signal))
      : () => {};
    // One timer, re-armed, rather than a timeout per receive: the request path stays timer-free.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const check = () => {
      if (this.#stopping) return;
      const silent = runtime.now() - Math.max(this.#lastHeard, this.#lastPing);
      // A full worker says nothing to a gibbs hub: any message would mark it available. While no
      // hub is connected there is nobody to ping, and a reset would undo nothing.
      if (silent >= this.#hbMs && this.#connected && (this.#hubExtended || this.#free() > 0)) {
        this.#onSilence();
        timer = setTimeout(check, this.#hbMs);
      } else {
        timer = setTimeout(check, Math.max(1, this.#hbMs - silent));
      }
    };
    try {
      try {
        await this.#executor.start();
      } catch (error) {
        this.#onStarted(error);
        throw error;
      }
      this.#onStarted();
      if (this.#stopping) return;
      this.#socket = this.#connect();
      this.#lastHeard = runtime.now();
      // The first ping, which tells the hub we are ready as gibbs's does, leaves once a hub is
      // connected (see #onConnectionEvent).
      timer = setTimeout(check, this.#hbMs);
      while (!this.#stopping) {
        let message: Uint8Array[];
        try {
          message = await this.#socket.receive();
        } catch (error) {
          if (error instanceof SocketClosedError) continue; // reset under way, or stopping
          throw error;
        }
        this.#lastHeard = runtime.now();
        this.#waitingPong = 0;
        this.#onMessage(message);
      }
    } finally {
      clearTimeout(timer);
      removeSignals();
      // Linger so that the last responses leave before the socket goes.
      this.#socket?.close();
      this.#socket = null;
      await this.#executor.close();
    }
  }

  /**
   * Stops once the requests in hand are answered; stops at once when idle. `run()` then
   * resolves. Requests received but not started are not served (our hub sends them elsewhere
   * when the connection closes).
   */
  stop(): void {
    if (this.#stopping) return;
    this.#stopping = true;
    this.#waiting.drain();
    this.#batchQueue = [];
    clearTimeout(this.#batchTimer);
    // An idle worker waits in receive(): closing ends that wait. A busy one closes after answering.
    if (this.#inFlight === 0) this.#socket?.close();
  }

  /**
   * With `handleSignals`: the first SIGINT/SIGTERM stops after the request in hand; a second
   * one while that request still runs quits at once, unanswered (exit 128 + the signal's
   * number, as a shell reports a process killed by it).
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

  #connect(): Dealer {
    this.#announced = this.#capacity;
    this.#hubExtended = false;
    const socket: Dealer = new Dealer({
      routingId: this.id,
      linger: 1000,
      metadata: extensionMetadata(this.#capacity, this.#service),
      onEvent: (event) => this.#onConnectionEvent(socket, event),
      ...this.#security,
    });
    socket.connect(this.#endpoint);
    return socket;
  }

  /** Requests this worker can still take: its capacity minus what it serves or holds. */
  #free(): number {
    return this.#capacity - this.#inFlight - this.#waiting.length - this.#batchQueue.length;
  }

  /**
   * Tracks whether a hub is connected and says why not, once per outage or per reason: a hub
   * that is down ("connection refused, retrying"), a hub that refuses our handshake (a
   * security mismatch, say), a dropped connection. The socket retries every 100 ms, backing off
   * after handshakes that fail (a retry would fail the same way).
   */
  #onConnectionEvent(socket: Dealer, event: SocketEvent): void {
    if (socket !== this.#socket) return; // an old socket after a reset
    switch (event.type) {
      case "handshake":
        this.#connected = true;
        this.#waitingPong = 0;
        this.#lastHeard = runtime.now();
        this.#hubExtended = isExtendedPeer(event.properties);
        // A reconnect of the same socket announced the capacity it was created with.
        if (this.#hubExtended && this.#announced !== this.#capacity) this.#announce();
        if (this.#unreachable || this.#refusals.size > 0) {
          this.#log.info("hub.connected", `connected to the hub at ${this.#endpoint}`);
        }
        this.#unreachable = false;
        this.#refusals.clear();
        // Not from inside the socket's event: the ping goes out on the next turn.
        queueMicrotask(() => {
          if (socket === this.#socket && !this.#stopping) this.#ping();
        });
        break;
      case "connect:retry":
        if (!this.#unreachable) {
          this.#unreachable = true;
          const why = event.code === "ECONNREFUSED" ? "connection refused" : event.reason;
          this.#log.warn(
            "hub.unreachable",
            `cannot reach the hub at ${this.#endpoint} (${why}), retrying`,
            { code: event.code, reason: event.reason },
          );
        }
        break;
      case "handshake:error:protocol":
      case "handshake:error:auth":
      case "handshake:error:other":
        this.#refused(event, event.reason ?? event.type);
        break;
      case "disconnect":
        if (event.routingId !== undefined) {
          this.#connected = false;
          this.#hubExtended = false;
          if (event.code && !this.#stopping) {
            this.#log.warn("hub.dropped", `connection dropped: ${event.reason}`, {
              peer: event.remote,
              reason: event.reason,
              code: event.code,
            });
          }
        }
        break;
    }
  }

  /** Says once per reason that the hub refused our handshake. */
  #refused(event: SocketEvent, reason: string): void {
    if (this.#refusals.has(reason)) return;
    this.#refusals.add(reason);
    this.#log.warn(
      "hub.refused",
      `no handshake with the hub at ${this.#endpoint}: ${reason}; retrying with backoff`,
      { peer: event.remote, code: event.code, reason },
    );
  }

  #ping(): void {
    this.#lastPing = runtime.now();
    // Not awaited: while no hub is connected the ping waits in the socket, as libzmq queues it.
    this.#socket!.send(EMPTY).catch(() => {});
    this.#waitingPong++;
  }

  /** Tells our hub the capacity, if it is ours and has not heard this figure. */
  #announce(): void {
    if (!this.#hubExtended || this.#socket === null || this.#announced === this.#capacity) return;
    this.#announced = this.#capacity;
    this.#socket.send(encodeExtension(ExtKind.capacity, this.#capacity)).catch(() => {});
  }

  /**
   * Toward a gibbs hub, a worker with room asks for one more request by pinging: the hub marks
   * it available once, whatever it sends, and each request it sends takes that mark away. One
   * ping per request received keeps exactly one mark while there is room.
   */
  #askForWork(): void {
    if (!this.#hubExtended && !this.#stopping && this.#socket !== null && this.#free() > 0) {
      this.#ping();
    }
  }

  #onSilence(): void {
    if (this.#waitingPong >= this.#resetAfter) {
      const n = this.#waitingPong;
      this.#log.warn(
        "hub.silent",
        `hub silent after ${n} ping${
          n === 1 ? "" : "s"
        }: resetting the connection to ${this.#endpoint}`,
      );
      const old = this.#socket!;
      this.#connected = false;
      this.#socket = this.#connect();
      // No lingering: whatever the old connection held is stale.
      old.close();
      this.#resets++;
      this.#waitingPong = 0;
      return; // the new connection pings once it is up
    }
    this.#ping();
  }

  #onMessage(message: Uint8Array[]): void {
    const workload = message[message.length - 1];
    if (message.length === 2 && workload.length === 0) return; // pong
    if (message.length === 3 && this.#hubExtended) return this.#onExtension(message);
    if (message.length !== 2) {
      this.#log.warn("message.ignored", `ignored a ${message.length}-frame message from the hub`);
      return;
    }
    let request: RequestMessage;
    try {
      request = decodeRequest(workload);
    } catch (error) {
      // Answer when at least the request id can be read, so the caller is not left waiting.
      const value = safeUnpack(workload);
      if (Array.isArray(value) && typeof value[0] === "string") {
        this.#send(encodeResponse(value[0], CODE_ERROR, String(error)));
      }
      this.#log.warn(
        "request.malformed",
        `malformed request from the hub: ${(error as Error).message}`,
      );
      return;
    }
    this.#accept({ request, payload: workload, window: undefined });
  }

  /** A message only our hub sends: a streamed request, credit for one, a cancellation. */
  #onExtension(message: Uint8Array[]): void {
    let ext;
    try {
      ext = decodeExtension(message[1], message[2]);
    } catch (error) {
      this.#log.warn("message.malformed", `malformed message from the hub: ${error}`);
      return;
    }
    switch (ext.kind) {
      case ExtKind.stream: {
        const [reqId, args, kwargs, window] = ext.body as [string, unknown[], Kwargs, number];
        this.#accept({ request: { reqId, args, kwargs }, payload: undefined, window });
        break;
      }
      case ExtKind.credit: {
        const [reqId, n] = ext.body as [string, number];
        this.#executor.credit(reqId, n);
        break;
      }
      case ExtKind.cancel:
        this.#cancel(ext.body as string);
        break;
      default:
        this.#log.warn("message.ignored", `ignored a "${ext.kind}" message from the hub`);
    }
  }

  #accept(job: Waiting): void {
    if (this.#stopping) return;
    if (this.#batch !== undefined) this.#queueForBatch(job);
    else if (this.#inFlight < this.#capacity) this.#start(job);
    else this.#waiting.push(job);
    this.#askForWork();
  }

  /** The caller gave up: a request not started is answered at once, a running one aborted. */
  #cancel(reqId: string): void {
    const reason = new Error("cancelled by the caller");
    const matches = (job: Waiting) => job.request.reqId === reqId;
    let waiting = this.#waiting.remove(matches);
    if (!waiting) {
      const at = this.#batchQueue.findIndex(matches);
      if (at >= 0) waiting = this.#batchQueue.splice(at, 1).length === 1;
    }
    if (waiting) {
      this.#send(encodeResponse(reqId, CODE_ERROR, `Cancelled: ${reason.message}`));
      this.#startWaiting();
      this.#askForWork();
      return;
    }
    if (this.#serving.has(reqId)) this.#executor.cancel(reqId, reason);
  }

  #start(job: Waiting): void {
    this.#begin(1);
    const reqId = job.request.reqId;
    this.#serving.add(reqId);
    const stream = job.window === undefined ? undefined : {
      window: job.window,
      send: (chunk: Uint8Array) => this.#sendFrames(extensionFrames(ExtKind.chunk, chunk)),
    };
    this.#executor.serve(job, stream).then((response) => {
      this.#serving.delete(reqId);
      this.#finish([response], 1);
    });
  }

  #queueForBatch(job: Waiting): void {
    this.#batchQueue.push(job);
    this.#flushBatches(false);
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
    if (this.#batchQueue.length > 0 && this.#batchTimer === undefined) {
      this.#batchTimer = setTimeout(() => {
        this.#batchTimer = undefined;
        this.#flushBatches(true);
      }, maxWaitMs);
    }
  }

  #runBatch(jobs: Waiting[]): void {
    this.#batchesRunning++;
    this.#begin(jobs.length);
    for (const job of jobs) this.#serving.add(job.request.reqId);
    this.#executor.serveBatch(jobs).then((responses) => {
      this.#batchesRunning--;
      for (const job of jobs) this.#serving.delete(job.request.reqId);
      // A streamed request served in a batch is a stream of one chunk.
      const answers = responses.map((r, i) => jobs[i].window === undefined ? r : this.#asStream(r));
      this.#finish(answers, jobs.length);
      this.#flushBatches(false);
    });
  }

  /** Sends a batch's answer to a streamed request as one chunk, then the end of the stream. */
  #asStream(response: Uint8Array): Uint8Array {
    const [reqId, code, result] = unpack(response) as [string, number, unknown];
    if (code !== CODE_OK) return response;
    this.#sendFrames(encodeExtension(ExtKind.chunk, [reqId, result]));
    return encodeResponse(reqId, CODE_OK, 1);
  }

  #begin(n: number): void {
    this.#inFlight += n;
    if (this.#inFlight > this.#peakInFlight) this.#peakInFlight = this.#inFlight;
  }

  #finish(responses: Uint8Array[], n: number): void {
    this.#served += n;
    this.#inFlight -= n;
    for (const response of responses) this.#send(response);
    this.#startWaiting();
    if (this.#stopping && this.#inFlight === 0) this.#socket?.close();
  }

  #startWaiting(): void {
    while (!this.#stopping && this.#waiting.length > 0 && this.#inFlight < this.#capacity) {
      this.#start(this.#waiting.shift()!);
    }
  }

  #send(response: Uint8Array): void {
    this.#sendFrames([EMPTY, response]);
  }

  #sendFrames(frames: Uint8Array[]): void {
    // Silence counts from what we sent, as gibbs's poll restarts after its answer: a ping right
    // after an answer is a second "I am free" to a gibbs 0.3 hub, whose ready set then raises
    // KeyError for one of its waiting requests.
    this.#lastPing = runtime.now();
    // Not awaited: with no hub connected the answer waits in the socket for one, and a stop
    // closes the socket (with linger) rather than wait with it.
    this.#socket?.send(frames).catch(() => {});
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
