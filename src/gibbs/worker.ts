/**
 * The Worker: connects to a hub and serves its requests, one at a time.
 *
 * @module
 */

import { Dealer } from "../socket/dealer.ts";
import { SocketClosedError } from "../socket/errors.ts";
import type { SocketEvent } from "../socket/options.ts";
import { runtime } from "../transport/runtime.ts";
import { decodeRequest, encodeResponse, type Kwargs, unpack } from "./codec.ts";
import { type Handler, instantiate } from "./handler.ts";
import { DEFAULT_PORT } from "./defaults.ts";
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
  /** Routing id (default: 32 random lowercase hex chars, like a uuid4's hex). */
  routingId?: string;
  /** Stop gracefully on SIGINT/SIGTERM (default false; the CLI turns it on). */
  handleSignals?: boolean;
  /**
   * Where log records go: a {@linkcode Logger} (see {@linkcode createLogger}), or a function
   * given each warning as a line of text. Default: warnings and errors as text on standard error.
   */
  logger?: LoggerOption;
}

/**
 * A gibbs worker, wire-compatible with Python gibbs 0.3 hubs. The handler is a function, or a
 * class constructed once with `args`/`kwargs` whose `call` method serves requests; positional
 * arguments are spread and non-empty kwargs arrive as one trailing object.
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
 * ```
 */
export class Worker {
  /** The routing id this worker announces. */
  readonly id: string;
  #serve: (args: readonly unknown[], kwargs: Kwargs) => unknown;
  #endpoint: string;
  #hbMs: number;
  #resetAfter: number;
  #log: Log;
  #handleSignals: boolean;
  #socket: Dealer | null = null;
  #waitingPong = 0;
  #lastHeard = 0;
  #lastPing = 0;
  #stopping = false;
  #busy = false;
  #onStop!: () => void;
  #stopRequested = new Promise<void>((resolve) => (this.#onStop = resolve));
  #served = 0;
  #resets = 0;
  // Connection state, from the socket's events: while no hub is connected there is nobody to
  // ping, and resetting the socket would only undo its reconnect backoff.
  #connected = false;
  #unreachable = false;
  #refusals = new Set<string>();
  #signals = 0;

  /**
   * Creates a worker. A class handler is constructed here: whatever its constructor throws is
   * thrown from this constructor, so a broken model fails before connecting.
   */
  constructor(handler: Handler, options: WorkerOptions = {}) {
    this.#serve = instantiate(handler, options.args, options.kwargs);
    this.id = options.routingId ?? randomHexId();
    const host = options.host ?? "localhost";
    this.#endpoint = options.endpoint ?? `tcp://${host}:${options.port ?? DEFAULT_PORT}`;
    this.#hbMs = (options.heartbeatInterval ?? 1) * 1000;
    if (!(this.#hbMs > 0)) throw new RangeError("heartbeatInterval must be > 0 seconds");
    this.#resetAfter = options.resetAfterNMiss ?? 2;
    if (!Number.isInteger(this.#resetAfter) || this.#resetAfter < 1) {
      throw new RangeError("resetAfterNMiss must be an integer >= 1 (unanswered pings)");
    }
    this.#log = new Log(options.logger, `worker ${this.id}`);
    this.#handleSignals = options.handleSignals ?? false;
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

  /**
   * Serves requests until {@linkcode Worker.stop} (or a shutdown signal with `handleSignals`).
   * Resolves once the request in hand is answered and the connection is closed.
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
      if (silent >= this.#hbMs && !this.#busy && this.#connected) {
        this.#onSilence();
        timer = setTimeout(check, this.#hbMs);
      } else {
        timer = setTimeout(check, Math.max(1, this.#hbMs - silent));
      }
    };
    try {
      this.#socket = this.#connect();
      this.#lastHeard = runtime.now();
      // The first ping, which tells the hub we are ready as gibbs's does, leaves once a hub is
      // connected (see #onConnectionEvent).
      timer = setTimeout(check, this.#hbMs);
      while (!this.#stopping) {
        const socket = this.#socket;
        let message: Uint8Array[];
        try {
          message = await socket.receive();
        } catch (error) {
          if (error instanceof SocketClosedError) continue; // reset under way, or stopping
          throw error;
        }
        this.#lastHeard = runtime.now();
        this.#waitingPong = 0;
        await this.#onMessage(socket, message);
      }
    } finally {
      clearTimeout(timer);
      removeSignals();
      // Linger so that the last response leaves before the socket goes.
      this.#socket?.close();
      this.#socket = null;
    }
  }

  /**
   * Stops after the request in hand is answered; stops at once when idle. `run()` then resolves.
   */
  stop(): void {
    if (this.#stopping) return;
    this.#stopping = true;
    this.#onStop();
    // An idle worker waits in receive(): closing ends that wait. A busy one closes after answering.
    if (!this.#busy) this.#socket?.close();
  }

  /**
   * With `handleSignals`: the first SIGINT/SIGTERM stops after the request in hand; a second
   * one while that request still runs quits at once, unanswered (exit 128 + the signal's
   * number, as a shell reports a process killed by it).
   */
  #onSignal(signal: string): void {
    this.#signals++;
    if (this.#signals > 1 && this.#busy) {
      this.#log.warn(
        "worker.quit",
        `second ${signal}: quitting without answering the request in hand`,
      );
      runtime.exit(signal === "SIGINT" ? 130 : 143);
    }
    if (this.#busy) {
      this.#log.info(
        "worker.stopping",
        `${signal}: finishing the request in hand, then stopping (again to quit now)`,
      );
    }
    this.stop();
  }

  #connect(): Dealer {
    const socket: Dealer = new Dealer({
      routingId: this.id,
      linger: 1000,
      // Retry at least once per heartbeat interval while the hub is away, so that a restarted
      // hub is found as soon as its workers would have noticed it missing.
      reconnectMaxInterval: Math.min(1000, this.#hbMs),
      onEvent: (event) => this.#onConnectionEvent(socket, event),
    });
    socket.connect(this.#endpoint);
    return socket;
  }

  /**
   * Tracks whether a hub is connected and says why not, once per outage or per reason: a hub
   * that is down ("connection refused, retrying"), a hub that refuses our handshake (a
   * security mismatch, say), a dropped connection. The socket's reconnect backoff (up to 1 s)
   * paces the attempts meanwhile.
   */
  #onConnectionEvent(socket: Dealer, event: SocketEvent): void {
    if (socket !== this.#socket) return; // an old socket after a reset
    switch (event.type) {
      case "handshake":
        this.#connected = true;
        this.#waitingPong = 0;
        this.#lastHeard = runtime.now();
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

  async #onMessage(socket: Dealer, message: Uint8Array[]): Promise<void> {
    const workload = message[message.length - 1];
    if (workload.length === 0) return; // pong
    if (message.length !== 2) {
      this.#log.warn("message.ignored", `ignored a ${message.length}-frame message from the hub`);
      return;
    }
    let reqId: string;
    let args: unknown[];
    let kwargs: Kwargs;
    try {
      ({ reqId, args, kwargs } = decodeRequest(workload));
    } catch (error) {
      // Answer when at least the request id can be read, so the caller is not left waiting.
      const value = safeUnpack(workload);
      if (Array.isArray(value) && typeof value[0] === "string") {
        const sent = socket.send([EMPTY, encodeResponse(value[0], 1, String(error))]);
        // Closed by a reset or stop meanwhile: the answer has nowhere to go, and run() goes on.
        sent.catch(() => {});
        await Promise.race([sent, this.#stopRequested]);
      }
      this.#log.warn(
        "request.malformed",
        `malformed request from the hub: ${(error as Error).message}`,
      );
      return;
    }
    this.#busy = true;
    let response: Uint8Array;
    try {
      const result = await this.#serve(args, kwargs);
      response = encodeResponse(reqId, 0, result);
    } catch (error) {
      response = encodeResponse(reqId, 1, errorText(error));
    }
    this.#served++;
    const sent = socket.send([EMPTY, response]);
    sent.catch(() => {}); // a send cut short by close() has nowhere to go
    // With no hub connected the send waits for one; a stop must not wait with it. Closing the
    // socket (with linger) then still delivers the answer if a connection holds it.
    await Promise.race([sent, this.#stopRequested]);
    this.#busy = false;
  }
}

function safeUnpack(bytes: Uint8Array): unknown {
  try {
    return unpack(bytes);
  } catch {
    return undefined;
  }
}

/** The text sent back for a failure: the stack when there is one, as gibbs sends a traceback. */
export function errorText(error: unknown): string {
  if (error instanceof Error) return error.stack ?? `${error.name}: ${error.message}`;
  return `Thrown: ${String(error)}`;
}
