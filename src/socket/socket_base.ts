/**
 * What every socket type shares: endpoints, peers, reconnection, fair-queued receiving,
 * waiting senders, timers and closing.
 *
 * @module
 */

import { type Endpoint, formatEndpoint, parseEndpoint } from "../transport/endpoint.ts";
import { TransportError } from "../transport/errors.ts";
import { runtime } from "../transport/runtime.ts";
import type {
  Listener,
  Stream,
  WebSocketBindOptions,
  WebSocketConnectOptions,
  WebSocketDialOptions,
  WebSocketListenOptions,
} from "../transport/runtime_types.ts";
import { WebSocketError } from "../transport/ws_errors.ts";
import type { ConnectionOptions, PeerInfo } from "../zmtp/connection.ts";
import { handshakeFailureKind, ZmtpError } from "../zmtp/errors.ts";
import type { SocketType } from "../zmtp/socket_type.ts";
import { zwsClientProtocols, zwsServerProtocols } from "../zmtp/zws.ts";
import { Deque } from "./deque.ts";
import { EndpointError, SocketClosedError, SocketError, TimeoutError } from "./errors.ts";
import {
  type ResolvedOptions,
  resolveOptions,
  type SocketEvent,
  type SocketOptions,
} from "./options.ts";
import { Pipe, type PipeOwner } from "./pipe.ts";

/** One frame as a caller may give it. */
export type Frame = string | Uint8Array | ArrayBuffer | ArrayBufferView;
/** A message as a caller may give it: one frame or several. */
export type Message = Frame | readonly Frame[];

const encoder = new TextEncoder();
/** Longest wait between reconnects after failed handshakes, in ms. */
const HANDSHAKE_BACKOFF_MAX_MS = 5000;
const RESOLVED: Promise<void> = Promise.resolve();

interface Waiter<T> {
  resolve(value: T): void;
  reject(error: Error): void;
  timer?: ReturnType<typeof setTimeout>;
}

/** A send waiting for room. */
export interface PendingSend extends Waiter<void> {
  frames: Uint8Array[];
}

interface Connector {
  endpoint: Endpoint;
  text: string;
  ws: WebSocketConnectOptions | undefined;
  pipe: Pipe | null;
  timer: ReturnType<typeof setTimeout> | null;
  delay: number;
  stopped: boolean;
}

/** Fails every send waiting in `queue` with `error`. */
export function failSends(queue: Deque<PendingSend>, error: Error): void {
  for (const send of queue.drain()) {
    if (send.timer) clearTimeout(send.timer);
    send.reject(error);
  }
}

function parse(endpoint: string): Endpoint {
  try {
    return parseEndpoint(endpoint);
  } catch (error) {
    if (error instanceof TransportError) throw new EndpointError(error.message, { cause: error });
    throw error;
  }
}

/** The event field naming a WebSocket stream's subprotocol. */
function protocolOf(stream: Stream): { protocol?: string } {
  return stream.kind === "messages" ? { protocol: stream.protocol } : {};
}

/** Converts caller frames to bytes. */
export function toFrames(message: Message): Uint8Array[] {
  const list = Array.isArray(message) ? message : [message as Frame];
  if (list.length === 0) throw new SocketError("EINVAL", "Cannot send a message of zero frames");
  const frames = new Array<Uint8Array>(list.length);
  for (let i = 0; i < list.length; i++) frames[i] = toBytes(list[i]);
  return frames;
}

/**
 * The frames of a message sent at once (`trySend`): the caller's own array when it holds bytes
 * only, since nothing keeps it past the call (short frames are copied, and large ones too
 * unless `copy` is off); else converted as {@linkcode toFrames} does.
 */
export function framesNow(message: Message): Uint8Array[] {
  if (!Array.isArray(message) || message.length === 0) return toFrames(message);
  for (let i = 0; i < message.length; i++) {
    if (!(message[i] instanceof Uint8Array)) return toFrames(message);
  }
  return message as Uint8Array[];
}

function toBytes(frame: Frame): Uint8Array {
  if (frame instanceof Uint8Array) return frame;
  if (typeof frame === "string") return encoder.encode(frame);
  if (frame instanceof ArrayBuffer) return new Uint8Array(frame);
  if (ArrayBuffer.isView(frame)) {
    return new Uint8Array(frame.buffer, frame.byteOffset, frame.byteLength);
  }
  throw new SocketError("EINVAL", `Cannot send a frame of type ${typeof frame}`);
}

/**
 * The shared core of {@linkcode Dealer} and {@linkcode Router}. Not constructed directly.
 */
export abstract class SocketBase implements AsyncIterable<Uint8Array[]> {
  /**
   * The options in force, defaults applied.
   *
   * @ignore
   */
  protected readonly options: ResolvedOptions;
  /**
   * Peers that finished the handshake, in connection order.
   *
   * @ignore
   */
  protected readonly pipes: Pipe[] = [];
  /**
   * Sends waiting for room.
   *
   * @ignore
   */
  protected readonly pendingSends: Deque<PendingSend> = new Deque();
  #type: SocketType;
  #active = new Deque<Pipe>();
  #receivers = new Deque<Waiter<Uint8Array[]>>();
  #listeners = new Map<string, Listener>();
  #connectors = new Map<string, Connector>();
  #allPipes = new Set<Pipe>();
  #stopTimer: (() => void) | null = null;
  #closed = false;
  #lastEndpoint: string | undefined;
  #released: Promise<void> = Promise.resolve();
  #reportedCallbackError = false;
  #consumer: ((message: Uint8Array[], receivedAt: number) => void) | null = null;
  #drainScheduled = false;
  /** A pass handed messages over in this turn: what is sent until its end shares writes. */
  #passedThisTurn = false;
  #closedBytesReceived = 0;
  #closedBytesSent = 0;
  /** What this socket's pipes report to; kept off the public surface. */
  #owner: PipeOwner = {
    pipeReady: (pipe, peer) => this.#pipeReady(pipe, peer),
    pipeMessage: (pipe) => this.#pipeMessage(pipe),
    inputPending: () => this.#inputPending(),
    pipeWritable: (pipe) => this.#pipeWritable(pipe),
    pipeClosed: (pipe, error) => this.#pipeClosed(pipe, error),
    authenticate: (pipe, request) =>
      this.options.authenticator!({
        ...request,
        address: pipe.remote,
        domain: this.options.zapDomain,
      }),
  };

  /**
   * Sets the socket type and options.
   *
   * @ignore
   */
  protected constructor(type: SocketType, options: SocketOptions) {
    this.#type = type;
    this.options = resolveOptions(options);
  }

  /** True once {@linkcode SocketBase.close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** The endpoint most recently bound, with the real port when port 0 or `*` was asked for. */
  get lastEndpoint(): string | undefined {
    return this.#lastEndpoint;
  }

  /** Number of peers whose handshake is done. */
  get peerCount(): number {
    return this.pipes.length;
  }

  /** Bytes read from every connection so far, ZMTP framing and handshakes included. */
  get bytesReceived(): number {
    let n = this.#closedBytesReceived;
    for (const pipe of this.#allPipes) n += pipe.bytesReceived;
    return n;
  }

  /** Bytes written to every connection so far, ZMTP framing and handshakes included. */
  get bytesSent(): number {
    let n = this.#closedBytesSent;
    for (const pipe of this.#allPipes) n += pipe.bytesSent;
    return n;
  }

  /**
   * Binds to an endpoint and accepts peers on it. Resolves with the endpoint really bound.
   * `ws://` and `wss://` endpoints (ZWS 2.0, for browsers and jszmq) take `options`: which
   * page origins may connect, and for `wss://` the certificate and key files.
   *
   * @example
   * ```ts ignore
   * const endpoint = await router.bind("tcp://127.0.0.1:0"); // "tcp://127.0.0.1:40123"
   * await router.bind("ws://0.0.0.0:5020"); // browser pages of the same host may connect
   * await router.bind("wss://0.0.0.0:5443", { certFile: "cert.pem", keyFile: "key.pem" });
   * ```
   */
  async bind(endpoint: string, options?: WebSocketBindOptions): Promise<string> {
    this.#checkOpen("bind");
    const parsed = parse(endpoint);
    let listener: Listener;
    try {
      listener = await runtime.listen(
        parsed,
        (stream) => this.#accept(stream, text),
        (error) =>
          this.#emit({
            type: "accept:error",
            endpoint: text,
            code: error.code,
            reason: error.message,
          }),
        this.#listenOptions(endpoint, options),
      );
    } catch (cause) {
      const error = cause instanceof TransportError
        ? new SocketError(cause.code, cause.message, { cause })
        : cause;
      this.#emit({
        type: "bind:error",
        endpoint,
        code: (error as SocketError).code,
        reason: (error as Error).message,
      });
      throw error;
    }
    const text = formatEndpoint(listener.endpoint);
    if (this.#closed) {
      await listener.close();
      throw new SocketClosedError("bind");
    }
    this.#listeners.set(text, listener);
    if (text !== endpoint) this.#listeners.set(endpoint, listener);
    this.#lastEndpoint = text;
    this.#emit({ type: "bind", endpoint: text });
    return text;
  }

  /**
   * Stops accepting on an endpoint given to {@linkcode SocketBase.bind}; resolves once it can be
   * bound again. Peers stay connected.
   */
  unbind(endpoint: string): Promise<void> {
    const listener = this.#listeners.get(endpoint);
    if (!listener) return Promise.reject(new SocketError("EINVAL", `Not bound to ${endpoint}`));
    for (const [key, value] of this.#listeners) if (value === listener) this.#listeners.delete(key);
    return listener.close();
  }

  /**
   * Resolves once a closed socket has released its endpoints (their ports and paths can be
   * bound again). `close()` itself returns at once, as zeromq.js's does.
   */
  whenClosed(): Promise<void> {
    return this.#released;
  }

  /**
   * Connects to an endpoint, now and again whenever the connection drops, backing off from
   * `reconnectInterval` to `reconnectMaxInterval`. A `wss://` endpoint may take a CA file to
   * trust (`options.caFile`), for hubs with a self-signed certificate.
   */
  connect(endpoint: string, options?: WebSocketConnectOptions): void {
    this.#checkOpen("connect");
    const parsed = parse(endpoint);
    if (this.#connectors.has(endpoint)) return;
    const connector: Connector = {
      endpoint: parsed,
      text: endpoint,
      ws: options,
      pipe: null,
      timer: null,
      delay: this.options.reconnectInterval,
      stopped: false,
    };
    this.#connectors.set(endpoint, connector);
    this.#dial(connector);
  }

  /** Stops connecting to an endpoint and drops the peer reached through it. */
  disconnect(endpoint: string): void {
    const connector = this.#connectors.get(endpoint);
    if (!connector) throw new SocketError("EINVAL", `Not connected to ${endpoint}`);
    this.#connectors.delete(endpoint);
    connector.stopped = true;
    if (connector.timer) clearTimeout(connector.timer);
    connector.pipe?.close();
  }

  /**
   * Receives the next message, fair-queued across peers. Rejects with
   * {@linkcode SocketClosedError} once the socket is closed, and with {@linkcode TimeoutError}
   * after `receiveTimeout`.
   */
  receive(): Promise<Uint8Array[]> {
    if (this.#consumer !== null) {
      return Promise.reject(
        new SocketError("EINVAL", "This socket hands its messages to a consumer (consume())"),
      );
    }
    const message = this.#takeMessage();
    if (message !== undefined) return Promise.resolve(message);
    if (this.#closed) return Promise.reject(new SocketClosedError("receive"));
    return new Promise((resolve, reject) => {
      const waiter: Waiter<Uint8Array[]> = { resolve, reject };
      const timeout = this.options.receiveTimeout;
      if (timeout >= 0) {
        waiter.timer = setTimeout(() => {
          this.#receivers.remove((w) => w === waiter);
          reject(new TimeoutError("receive", timeout));
        }, timeout);
      }
      this.#receivers.push(waiter);
    });
  }

  /**
   * Hands every received message to `handler`, in the order {@linkcode SocketBase.receive}
   * would return them, instead of `receive()` or `for await`: the messages read in one turn of
   * the event loop are handed over together in one microtask, without a promise each (a hub
   * with a thousand peers reads about one message per read). While `handler` runs, the
   * messages still to come in that pass count as pending input, so replies sent meanwhile
   * share a write. `receivedAt` is when the peer's bytes were last read (`performance.now()`
   * milliseconds; within the same turn, so a consumer needs no clock of its own). `handler` must
   * not throw: an exception is reported once on the console and the message counted as
   * handled. Once set, `receive()` rejects with `EINVAL`.
   *
   * @example
   * ```ts ignore
   * const router = new Router();
   * await router.bind("tcp://127.0.0.1:5555");
   * router.consume(([id, ...frames]) => router.trySend([id, ...frames]));
   * ```
   *
   * @throws {SocketError} `EINVAL` when a consumer is already set or a receive is waiting
   */
  consume(handler: (message: Uint8Array[], receivedAt: number) => void): void {
    if (this.#consumer !== null) {
      throw new SocketError("EINVAL", "This socket already has a consumer");
    }
    if (this.#receivers.length > 0) {
      throw new SocketError("EINVAL", "A receive() is waiting on this socket");
    }
    this.#consumer = handler;
    if (this.#active.length > 0) this.#scheduleDrain();
  }

  /** Iterates over received messages until the socket is closed. */
  [Symbol.asyncIterator](): AsyncIterator<Uint8Array[]> {
    return {
      next: () => {
        // A message already queued: one promise per message, not two (none is taken from a
        // consumer's queue: receive() below says why).
        const value = this.#consumer === null ? this.#takeMessage() : undefined;
        if (value !== undefined) return Promise.resolve({ value, done: false });
        return this.receive().then(
          (value) => ({ value, done: false }),
          (error) => {
            if (error instanceof SocketClosedError) {
              return { value: undefined, done: true } as IteratorResult<Uint8Array[]>;
            }
            throw error;
          },
        );
      },
      return: () => Promise.resolve({ value: undefined, done: true }),
    };
  }

  /**
   * Closes the socket: stops listening and reconnecting, fails waiting sends and receives with
   * {@linkcode SocketClosedError}, and lets unsent messages try to leave for `linger` ms.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const closing = [...new Set(this.#listeners.values())].map((l) => l.close());
    this.#released = Promise.all(closing).then(() => {});
    this.#listeners.clear();
    for (const connector of this.#connectors.values()) {
      connector.stopped = true;
      if (connector.timer) clearTimeout(connector.timer);
    }
    this.#connectors.clear();
    for (const waiter of this.#receivers.drain()) {
      if (waiter.timer) clearTimeout(waiter.timer);
      waiter.reject(new SocketClosedError("receive"));
    }
    this.failWaitingSends(new SocketClosedError("send"));
    for (const pipe of this.#allPipes) pipe.closeAfterFlush(this.options.linger);
    // Lingering pipes still need their heartbeats and timeouts: the timer stops with the last.
    if (this.#allPipes.size === 0) {
      this.#stopTimer?.();
      this.#stopTimer = null;
    }
    this.#emit({ type: "end", endpoint: "" });
  }

  /** Sends a message; the subclass decides where it goes. */
  abstract send(message: Message): Promise<void>;

  /**
   * Called when a peer's handshake is done, before it may take messages.
   *
   * @ignore
   */
  protected abstract attach(pipe: Pipe, peer: PeerInfo): boolean;

  /**
   * Called when a peer is gone.
   *
   * @ignore
   */
  protected abstract detach(pipe: Pipe): void;

  /**
   * Lets a subclass shape a received message (ROUTER prepends the routing id).
   *
   * @ignore
   */
  protected abstract deliver(pipe: Pipe, frames: Uint8Array[]): Uint8Array[];

  /**
   * Called when sends may proceed again: a peer was attached or drained below its mark.
   *
   * @ignore
   */
  protected abstract retrySends(pipe: Pipe): void;

  /**
   * Fails every send still waiting for room (on close). A subclass keeping queues of its own
   * fails them too.
   *
   * @ignore
   */
  protected failWaitingSends(error: Error): void {
    failSends(this.pendingSends, error);
  }

  /**
   * Number of queues of waiting sends the socket holds (for tests of its bookkeeping).
   *
   * @ignore
   */
  protected sendQueueCount(): number {
    return 1;
  }

  /**
   * Queues a send in `queue` to retry later, honouring `sendTimeout`. A subclass using queues
   * of its own fails them in {@linkcode SocketBase.failWaitingSends}.
   *
   * @ignore
   */
  protected waitToSend(
    frames: Uint8Array[],
    queue: Deque<PendingSend> = this.pendingSends,
  ): Promise<void> {
    if (this.#closed) return Promise.reject(new SocketClosedError("send"));
    return new Promise((resolve, reject) => {
      const pending: PendingSend = { frames, resolve, reject };
      const timeout = this.options.sendTimeout;
      if (timeout >= 0) {
        pending.timer = setTimeout(() => {
          queue.remove((p) => p === pending);
          reject(new TimeoutError("send", timeout));
        }, timeout);
      }
      queue.push(pending);
    });
  }

  /**
   * Completes a pending send through `pipe`.
   *
   * @ignore
   */
  protected completeSend(pending: PendingSend, pipe: Pipe): void {
    if (pending.timer) clearTimeout(pending.timer);
    const written = pipe.send(pending.frames);
    if (written === null) pending.resolve();
    else written.then(pending.resolve);
  }

  /**
   * A promise already resolved, so the fast path allocates nothing.
   *
   * @ignore
   */
  protected get resolved(): Promise<void> {
    return RESOLVED;
  }

  /**
   * Reports an event to `onEvent`. The callback is user code: whatever it throws stays here,
   * so that it never breaks the connection it reports on, nor escapes a runtime callback.
   */
  #emit(event: SocketEvent): void {
    const onEvent = this.options.onEvent;
    if (onEvent === undefined) return;
    try {
      onEvent(event);
    } catch (error) {
      this.#reportCallbackError("onEvent", error);
    }
  }

  #reportCallbackError(callback: string, error: unknown): void {
    if (this.#reportedCallbackError) return;
    this.#reportedCallbackError = true;
    // The socket layer has no logger; a throwing callback is a bug worth one line.
    console.error(`[gibbs] ${this.#type} ${callback} callback threw (reported once): ${error}`);
  }

  #checkOpen(operation: string): void {
    if (this.#closed) throw new SocketClosedError(operation);
  }

  #connectionOptions(): ConnectionOptions {
    const o = this.options;
    return {
      socketType: this.#type,
      routingId: o.routingId,
      mechanism: o.mechanism?.(),
      metadata: o.metadata,
      maxMessageSize: o.maxMessageSize,
      heartbeatInterval: o.heartbeatInterval,
      heartbeatTimeout: o.heartbeatTimeout,
      heartbeatTtl: o.heartbeatTimeToLive,
      handshakeTimeout: o.handshakeTimeout,
    };
  }

  /** The WebSocket side of a bind: limits, and refusals reported as `accept:error` events. */
  #listenOptions(
    endpoint: string,
    options: WebSocketBindOptions | undefined,
  ): WebSocketListenOptions {
    const o = this.options;
    return {
      ...options,
      protocols: zwsServerProtocols(o.mechanism?.().name ?? "NULL"),
      // One frame per WebSocket message, plus its flags byte.
      maxMessageSize: o.maxMessageSize + 1,
      handshakeTimeout: o.handshakeTimeout,
      onRejected: (remote, code, reason) =>
        this.#emit({ type: "accept:error", endpoint, remote, code, reason }),
    };
  }

  #dialOptions(connector: Connector): WebSocketDialOptions {
    return {
      ...connector.ws,
      protocols: zwsClientProtocols(this.options.mechanism?.().name ?? "NULL"),
      maxMessageSize: this.options.maxMessageSize + 1,
      handshakeTimeout: this.options.handshakeTimeout,
    };
  }

  #startPipe(stream: Stream, endpoint: string, accepted: boolean): Pipe {
    const options = this.#connectionOptions();
    const pipe = new Pipe(
      this.#owner,
      stream,
      endpoint,
      // The accepting side names its mechanism last (see ConnectionOptions.greeting).
      accepted ? { ...options, greeting: "after-peer" } : options,
      this.options.sendHighWaterMark,
      this.options.receiveHighWaterMark,
    );
    if (!pipe.closed) this.#allPipes.add(pipe);
    this.#ensureTimer();
    return pipe;
  }

  #accept(stream: Stream, endpoint: string): void {
    if (this.#closed) {
      stream.close();
      return;
    }
    const max = this.options.maxConnections;
    if (max > 0 && this.#allPipes.size >= max) {
      stream.close();
      this.#emit({
        type: "accept:error",
        endpoint,
        remote: stream.remote,
        code: "too-many-connections",
        reason: `connection limit of ${max} reached`,
      });
      return;
    }
    this.#emit({ type: "accept", endpoint, remote: stream.remote, ...protocolOf(stream) });
    this.#startPipe(stream, endpoint, true);
  }

  #dial(connector: Connector): void {
    connector.timer = null;
    runtime.connect(connector.endpoint, this.#dialOptions(connector)).then((stream) => {
      if (connector.stopped || this.#closed) {
        stream.close();
        return;
      }
      this.#emit({
        type: "connect",
        endpoint: connector.text,
        remote: stream.remote,
        ...protocolOf(stream),
      });
      connector.pipe = this.#startPipe(stream, connector.text, false);
    }, (error) => {
      if (connector.stopped || this.#closed) return;
      const interval = this.#scheduleReconnect(connector);
      this.#emit({
        type: "connect:retry",
        endpoint: connector.text,
        code: error instanceof TransportError ? error.code : undefined,
        reason: error instanceof Error ? error.message : String(error),
        interval,
      });
    });
  }

  /** Arms the next attempt; returns its delay in ms. */
  #scheduleReconnect(connector: Connector): number | undefined {
    if (connector.stopped || this.#closed || connector.timer) return undefined;
    const delay = connector.delay;
    const max = this.options.reconnectMaxInterval;
    if (max > this.options.reconnectInterval) connector.delay = Math.min(delay * 2, max);
    connector.timer = setTimeout(() => this.#dial(connector), delay);
    return delay;
  }

  #ensureTimer(): void {
    if (this.#stopTimer || this.#closed) return;
    const o = this.options;
    const periods = [1000];
    if (o.heartbeatInterval > 0) periods.push(o.heartbeatInterval / 2);
    if (o.handshakeTimeout > 0) periods.push(o.handshakeTimeout / 4);
    const period = Math.max(10, Math.min(...periods));
    this.#stopTimer = runtime.every(period, () => {
      const now = runtime.now();
      for (const pipe of this.#allPipes) pipe.tick(now);
    });
  }

  #takeMessage(): Uint8Array[] | undefined {
    const pipe = this.#active.shift();
    return pipe === undefined ? undefined : this.#takeFrom(pipe);
  }

  /** Takes `pipe`'s oldest message (it was next in turn), leaving it in line if it has more. */
  #takeFrom(pipe: Pipe): Uint8Array[] {
    const frames = pipe.take()!;
    if (pipe.incoming.length > 0) this.#active.push(pipe);
    else pipe.scheduled = false;
    return this.deliver(pipe, frames);
  }

  // What the pipes report (see #owner).

  #pipeReady(pipe: Pipe, peer: PeerInfo): boolean {
    if (this.#closed) return false;
    if (!this.attach(pipe, peer)) return false;
    this.pipes.push(pipe);
    const connector = this.#connectors.get(pipe.endpoint);
    if (connector && connector.pipe === pipe) connector.delay = this.options.reconnectInterval;
    this.#emit({
      type: "handshake",
      endpoint: pipe.endpoint,
      remote: pipe.remote,
      routingId: pipe.routingId,
      properties: peer.properties,
      userId: peer.userId,
    });
    this.retrySends(pipe);
    return true;
  }

  #pipeMessage(pipe: Pipe): void {
    if (this.#consumer !== null) {
      if (!pipe.scheduled) {
        pipe.scheduled = true;
        this.#active.push(pipe);
      }
      this.#scheduleDrain();
      return;
    }
    const receiver = this.#receivers.shift();
    if (receiver !== undefined) {
      // Nothing else is queued when someone waits, so handing this one over stays fair.
      if (receiver.timer) clearTimeout(receiver.timer);
      receiver.resolve(this.deliver(pipe, pipe.take()!));
      return;
    }
    if (!pipe.scheduled) {
      pipe.scheduled = true;
      this.#active.push(pipe);
    }
  }

  #scheduleDrain(): void {
    if (this.#drainScheduled) return;
    this.#drainScheduled = true;
    // A microtask, not at once: the reads completed in this turn resume first, so their
    // messages are queued when the pass starts and the replies they cause share writes.
    queueMicrotask(this.#drain);
  }

  readonly #drain = (): void => {
    const consumer = this.#consumer!;
    let pipe;
    let handed = 0;
    while ((pipe = this.#active.shift()) !== undefined) {
      // A pass of several messages: their replies will come in a burst (see #inputPending).
      if (++handed === 2 && !this.#passedThisTurn) {
        this.#passedThisTurn = true;
        runtime.afterTurn(this.#turnEnded);
      }
      const message = this.#takeFrom(pipe);
      try {
        consumer(message, pipe.readAt);
      } catch (error) {
        this.#reportCallbackError("consume", error);
      }
    }
    this.#drainScheduled = false;
  };

  readonly #turnEnded = (): void => {
    this.#passedThisTurn = false;
  };

  #inputPending(): boolean {
    // Replies to what a consumer was handed in a pass of several messages come in its
    // microtasks (a handler's promise, a caller's next request): until the turn ends, more of
    // them follow, so they wait for it. A lone message's reply leaves at once.
    return this.#active.length > 0 || this.#passedThisTurn;
  }

  #pipeWritable(pipe: Pipe): void {
    this.retrySends(pipe);
  }

  #pipeClosed(pipe: Pipe, error?: Error): void {
    if (this.#allPipes.delete(pipe)) {
      this.#closedBytesReceived += pipe.bytesReceived;
      this.#closedBytesSent += pipe.bytesSent;
    }
    const index = this.pipes.indexOf(pipe);
    const attached = index >= 0;
    if (attached) {
      this.pipes.splice(index, 1);
      this.detach(pipe);
    }
    const protocol = error instanceof ZmtpError;
    if (!attached && error !== undefined && pipe.peer === null) {
      this.#emit({
        type: protocol
          ? `handshake:error:${handshakeFailureKind(error.code)}`
          : "handshake:error:other",
        endpoint: pipe.endpoint,
        remote: pipe.remote,
        reason: error.message,
        code: protocol ? error.code : (error as { code?: string }).code,
      });
    }
    this.#emit({
      type: "disconnect",
      endpoint: pipe.endpoint,
      remote: pipe.remote,
      reason: error?.message,
      code: protocol || error instanceof WebSocketError ? error.code : undefined,
      routingId: attached ? pipe.routingId : undefined,
    });
    for (const connector of this.#connectors.values()) {
      if (connector.pipe === pipe) {
        connector.pipe = null;
        // A handshake that failed would fail the same way at once (another mechanism, a key
        // refused): back off, up to HANDSHAKE_BACKOFF_MAX_MS, until one succeeds.
        if (!attached && error !== undefined) {
          connector.delay = Math.min(
            Math.max(connector.delay * 2, this.options.reconnectInterval),
            Math.max(HANDSHAKE_BACKOFF_MAX_MS, this.options.reconnectMaxInterval),
          );
        }
        this.#scheduleReconnect(connector);
      }
    }
    if (this.#closed && this.#allPipes.size === 0) {
      this.#stopTimer?.();
      this.#stopTimer = null;
    }
  }

  /**
   * Reports a refused peer (used by subclasses).
   *
   * @ignore
   */
  protected reject(pipe: Pipe, code: string, reason: string): void {
    this.#emit({
      type: "handshake:error:other",
      endpoint: pipe.endpoint,
      remote: pipe.remote,
      code,
      reason,
    });
  }
}
