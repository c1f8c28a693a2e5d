/**
 * One worker's connection to one hub: a DEALER of its own (a DEALER connected to several hubs
 * would spread answers and pongs across them), gibbs's heartbeat and reset, and the recognition
 * of our hub on each connection. The worker owns the requests; a link only carries them.
 *
 * @module
 */

import { Dealer } from "../socket/dealer.ts";
import type { SocketEvent } from "../socket/options.ts";
import type { SecurityOptions } from "../socket/security.ts";
import { runtime } from "../transport/runtime.ts";
import { encodeExtension, ExtKind, isExtendedPeer } from "./extension.ts";
import type { Log } from "./logger.ts";

const EMPTY = new Uint8Array(0);

/** What a {@linkcode HubLink} needs from its worker. */
export interface LinkHost {
  /** The worker's routing id (the same toward every hub). */
  readonly routingId: string;
  /** Heartbeat interval, in ms. */
  readonly heartbeatMs: number;
  /** Unanswered pings before a reset. */
  readonly resetAfter: number;
  /** CURVE or PLAIN toward the hubs. */
  readonly security: SecurityOptions | undefined;
  /** Where log lines go. */
  readonly log: Log;
  /** READY metadata for a new socket: capacity now, service. */
  metadata(): { metadata: Record<string, string>; capacity: number };
  /** A message from the hub other than a pong. */
  onMessage(link: HubLink, message: Uint8Array[]): void;
  /** A connection finished its handshake ({@linkcode HubLink.extended} says with what hub). */
  onConnect(link: HubLink): void;
  /** A connection that had finished its handshake ended (dropped, or reset after silence). */
  onDisconnect(link: HubLink, wasExtended: boolean, generation: number): void;
  /** May the link speak to its gibbs hub now? Any message marks the worker available there. */
  mayOffer(link: HubLink): boolean;
  /** The link's socket failed in a way no reconnect mends. */
  onFailure(error: unknown): void;
}

/**
 * A worker's connection to one hub. Sending is never awaited: while no hub is connected a
 * message waits in the socket, as libzmq queues it.
 */
export class HubLink {
  /** The hub's endpoint. */
  readonly endpoint: string;
  /** The hub on the current connection announced itself as ours. */
  extended = false;
  /** A hub is connected (its handshake finished, the connection has not ended). */
  connected = false;
  /** Counts connections: requests are tied to the one they came on. */
  generation = 0;
  /** The worker is taking this hub out: it gets nothing more. */
  retiring = false;
  /** Times the connection was reset after unanswered pings. */
  resets = 0;
  #host: LinkHost;
  #socket: Dealer | null = null;
  /** The capacity in the current socket's READY, and the last one told on this connection. */
  #readyCapacity = 0;
  #announced = 0;
  #waitingPong = 0;
  #lastHeard = 0;
  /** When the worker last spoke to a gibbs hub (each message marks it available there)... */
  #lastSent = -Infinity;
  /** ...and whether a request took that mark since. */
  #markTaken = true;
  #unreachable = false;
  #refusals = new Set<string>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;
  #whenClosed: Promise<void>;
  #onClosed!: () => void;

  /** A link to `endpoint`; {@linkcode HubLink.open} connects it. */
  constructor(endpoint: string, host: LinkHost) {
    this.endpoint = endpoint;
    this.#host = host;
    this.#whenClosed = new Promise((resolve) => this.#onClosed = resolve);
  }

  /** True once closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * True while a gibbs hub has this worker marked available (the worker spoke within the
   * heartbeat interval and no request took the mark since).
   */
  get offered(): boolean {
    return !this.#markTaken && runtime.now() - this.#lastSent < this.#host.heartbeatMs;
  }

  /** Connects, and serves the connection until {@linkcode HubLink.close}. */
  open(): void {
    this.#socket = this.#connect();
    this.#lastHeard = runtime.now();
    // The first ping, which tells the hub we are ready as gibbs's does, leaves once a hub is
    // connected (see #onEvent).
    this.#timer = setTimeout(() => this.#check(), this.#host.heartbeatMs);
  }

  /** Sends a message; it marks the worker available at a gibbs hub. */
  send(frames: Uint8Array[]): void {
    if (this.#socket === null || this.#closed) return;
    this.#lastSent = runtime.now();
    this.#markTaken = false;
    this.#socket.send(frames).catch(() => {});
  }

  /** A gibbs ping: alive, and (to a gibbs hub) ready for a request. */
  ping(): void {
    if (this.#socket === null || this.#closed) return;
    this.send([EMPTY]);
    this.#waitingPong++;
  }

  /** Sends an extension message, only ever to our hub. */
  sendExtension(kind: ExtKind, body: unknown): void {
    if (this.extended && this.connected) this.send(encodeExtension(kind, body));
  }

  /**
   * Tells our hub the worker's capacity: when it differs from what this connection last heard,
   * or always with `force` (after a decline, it tells the hub there is room again).
   */
  announce(capacity: number, force = false): void {
    if (!this.extended || !this.connected || (!force && this.#announced === capacity)) return;
    this.#announced = capacity;
    this.sendExtension(ExtKind.capacity, capacity);
  }

  /**
   * Closes the socket, letting what was sent leave within its linger (1 s), and waits for the
   * receive loop to end.
   */
  async close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      clearTimeout(this.#timer);
      this.#socket?.close();
      this.#onClosed();
    }
    await this.#whenClosed;
  }

  /** Resolves once {@linkcode HubLink.close} has closed the link, whoever called it. */
  whenClosed(): Promise<void> {
    return this.#whenClosed;
  }

  #connect(): Dealer {
    const { metadata, capacity } = this.#host.metadata();
    this.#readyCapacity = capacity;
    this.extended = false;
    const socket: Dealer = new Dealer({
      routingId: this.#host.routingId,
      linger: 1000,
      metadata,
      onEvent: (event) => this.#onEvent(socket, event),
      ...this.#host.security,
    });
    // Handed over as they are read, a pass per turn: no promise per message.
    socket.consume((message, receivedAt) => this.#onReceived(socket, message, receivedAt));
    socket.connect(this.endpoint);
    return socket;
  }

  #onReceived(socket: Dealer, message: Uint8Array[], receivedAt: number): void {
    if (socket !== this.#socket || this.#closed) return; // an old socket after a reset
    this.#lastHeard = receivedAt;
    this.#waitingPong = 0;
    if (message.length === 2 && message[1].length === 0) return; // pong
    // A request takes the mark a gibbs hub had of this worker.
    if (message.length === 2) this.#markTaken = true;
    try {
      this.#host.onMessage(this, message);
    } catch (error) {
      this.#host.onFailure(error);
    }
  }

  // One timer, re-armed, rather than a timeout per receive: the request path stays timer-free.
  #check(): void {
    if (this.#closed) return;
    const hbMs = this.#host.heartbeatMs;
    // Silence counts from what we sent, as gibbs's poll restarts after its answer: a ping right
    // after an answer is a second "I am free" to a gibbs 0.3 hub, whose ready set then raises
    // KeyError for one of its waiting requests.
    const silent = runtime.now() - Math.max(this.#lastHeard, this.#lastSent);
    // A full worker says nothing to a gibbs hub: any message would mark it available. While no
    // hub is connected there is nobody to ping, and a reset would undo nothing.
    if (silent >= hbMs && this.connected && (this.extended || this.#host.mayOffer(this))) {
      this.#onSilence();
      this.#timer = setTimeout(() => this.#check(), hbMs);
    } else {
      this.#timer = setTimeout(() => this.#check(), Math.max(1, hbMs - silent));
    }
  }

  #onSilence(): void {
    if (this.#waitingPong < this.#host.resetAfter) return this.ping();
    const n = this.#waitingPong;
    this.#host.log.warn(
      "hub.silent",
      `hub silent after ${n} ping${
        n === 1 ? "" : "s"
      }: resetting the connection to ${this.endpoint}`,
      { endpoint: this.endpoint },
    );
    const old = this.#socket!;
    const wasConnected = this.connected;
    const wasExtended = this.extended;
    this.connected = false;
    this.#socket = this.#connect();
    // No lingering: whatever the old connection held is stale.
    old.close();
    this.resets++;
    this.#waitingPong = 0;
    if (wasConnected) this.#host.onDisconnect(this, wasExtended, this.generation);
    // The new connection pings once it is up.
  }

  /**
   * Tracks whether a hub is connected and says why not, once per outage or per reason: a hub
   * that is down ("connection refused, retrying"), a hub that refuses our handshake (a
   * security mismatch, say), a dropped connection. The socket retries every 100 ms, backing off
   * after handshakes that fail (a retry would fail the same way).
   */
  #onEvent(socket: Dealer, event: SocketEvent): void {
    if (socket !== this.#socket || this.#closed) return; // an old socket after a reset
    const log = this.#host.log;
    switch (event.type) {
      case "handshake":
        this.connected = true;
        this.generation++;
        this.#waitingPong = 0;
        this.#lastHeard = runtime.now();
        this.#lastSent = -Infinity;
        this.#markTaken = true;
        this.extended = isExtendedPeer(event.properties);
        this.#announced = this.#readyCapacity;
        if (this.#unreachable || this.#refusals.size > 0) {
          log.info("hub.connected", `connected to the hub at ${this.endpoint}`, {
            endpoint: this.endpoint,
          });
        }
        this.#unreachable = false;
        this.#refusals.clear();
        // Not from inside the socket's event: the messages go out on the next turn.
        queueMicrotask(() => {
          if (socket !== this.#socket || this.#closed || !this.connected) return;
          this.#host.onConnect(this);
          // gibbs's "I am ready"; toward a gibbs hub only when the worker has room.
          if (this.extended || this.#host.mayOffer(this)) this.ping();
        });
        break;
      case "connect:retry":
        if (!this.#unreachable) {
          this.#unreachable = true;
          const why = event.code === "ECONNREFUSED" ? "connection refused" : event.reason;
          log.warn(
            "hub.unreachable",
            `cannot reach the hub at ${this.endpoint} (${why}), retrying`,
            { endpoint: this.endpoint, code: event.code, reason: event.reason },
          );
        }
        break;
      case "handshake:error:protocol":
      case "handshake:error:auth":
      case "handshake:error:other":
        this.#refused(event, event.reason ?? event.type);
        break;
      case "disconnect":
        if (event.routingId !== undefined && this.connected) {
          const wasExtended = this.extended;
          this.connected = false;
          this.extended = false;
          if (event.code) {
            log.warn(
              "hub.dropped",
              `connection to the hub at ${this.endpoint} dropped: ${event.reason}`,
              {
                endpoint: this.endpoint,
                peer: event.remote,
                reason: event.reason,
                code: event.code,
              },
            );
          }
          this.#host.onDisconnect(this, wasExtended, this.generation);
        }
        break;
    }
  }

  /** Says once per reason that the hub refused our handshake. */
  #refused(event: SocketEvent, reason: string): void {
    if (this.#refusals.has(reason)) return;
    this.#refusals.add(reason);
    this.#host.log.warn(
      "hub.refused",
      `no handshake with the hub at ${this.endpoint}: ${reason}; retrying with backoff`,
      { endpoint: this.endpoint, peer: event.remote, code: event.code, reason },
    );
  }
}
