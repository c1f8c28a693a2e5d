/**
 * The Worker: connects to a hub and serves its requests, one at a time.
 *
 * @module
 */

import { Dealer } from "../socket/dealer.ts";
import { SocketClosedError } from "../socket/errors.ts";
import { runtime } from "../transport/runtime.ts";
import { decodeRequest, encodeResponse, type Kwargs, unpack } from "./codec.ts";
import { type Handler, instantiate } from "./handler.ts";
import { randomHexId } from "./ids.ts";

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
  /** Where warnings go (default `console.warn`). */
  logger?: (message: string) => void;
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
  #log: (message: string) => void;
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

  /**
   * Creates a worker. A class handler is constructed here: whatever its constructor throws is
   * thrown from this constructor, so a broken model fails before connecting.
   */
  constructor(handler: Handler, options: WorkerOptions = {}) {
    this.#serve = instantiate(handler, options.args, options.kwargs);
    this.id = options.routingId ?? randomHexId();
    const host = options.host ?? "localhost";
    this.#endpoint = options.endpoint ?? `tcp://${host}:${options.port ?? 5019}`;
    this.#hbMs = (options.heartbeatInterval ?? 1) * 1000;
    if (!(this.#hbMs > 0)) throw new RangeError("heartbeatInterval must be > 0 seconds");
    this.#resetAfter = options.resetAfterNMiss ?? 2;
    this.#log = options.logger ?? ((m) => console.warn(`[gibbs worker ${this.id}] ${m}`));
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
      ? runtime.onShutdownSignal(() => this.stop())
      : () => {};
    // One timer, re-armed, rather than a timeout per receive: the request path stays timer-free.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const check = () => {
      if (this.#stopping) return;
      const silent = runtime.now() - Math.max(this.#lastHeard, this.#lastPing);
      if (silent >= this.#hbMs && !this.#busy) {
        this.#onSilence();
        timer = setTimeout(check, this.#hbMs);
      } else {
        timer = setTimeout(check, Math.max(1, this.#hbMs - silent));
      }
    };
    try {
      this.#socket = this.#connect();
      this.#lastHeard = runtime.now();
      this.#ping(); // tells the hub we are ready, as gibbs does
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

  #connect(): Dealer {
    const socket = new Dealer({
      routingId: this.id,
      linger: 1000,
      onEvent: (event) => {
        if (event.code) this.#log(`connection dropped: ${event.reason}`);
        // Pings sent while no hub was there were never missed by one: counting them would reset
        // this fresh connection at the next check and lose what a gibbs hub sends meanwhile.
        if (event.type === "handshake" && socket === this.#socket) {
          this.#waitingPong = Math.min(this.#waitingPong, 1);
          this.#lastPing = runtime.now();
        }
      },
    });
    socket.connect(this.#endpoint);
    return socket;
  }

  #ping(): void {
    this.#lastPing = runtime.now();
    // Not awaited: while no hub is connected the ping waits in the socket, as libzmq queues it.
    // One waiting ping is enough: more would reach the hub back to back once it binds, and a
    // gibbs 0.3 hub's ready set then raises KeyError for one of its waiting requests.
    if (this.#socket!.peerCount > 0 || this.#waitingPong === 0) {
      this.#socket!.send(EMPTY).catch(() => {});
    }
    this.#waitingPong++;
  }

  #onSilence(): void {
    if (this.#waitingPong >= this.#resetAfter) {
      this.#log(
        `hub silent after ${this.#waitingPong} pings: resetting the connection to ${this.#endpoint}`,
      );
      const old = this.#socket!;
      this.#socket = this.#connect();
      // No lingering: whatever the old connection held is stale.
      old.close();
      this.#resets++;
      this.#waitingPong = 0;
    }
    this.#ping();
  }

  async #onMessage(socket: Dealer, message: Uint8Array[]): Promise<void> {
    const workload = message[message.length - 1];
    if (workload.length === 0) return; // pong
    if (message.length !== 2) {
      this.#log(`ignored a ${message.length}-frame message from the hub`);
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
        await socket.send([EMPTY, encodeResponse(value[0], 1, String(error))]);
      }
      this.#log(`malformed request from the hub: ${(error as Error).message}`);
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
    // Silence counts from the answer, as gibbs's poll restarts after it: a ping right after an
    // answer is a second "I am free" to a gibbs 0.3 hub, whose ready set then raises KeyError.
    this.#lastPing = runtime.now();
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
