/**
 * One peer of a socket: a byte stream driven through a sans-IO ZMTP connection, with the
 * peer's incoming queue and outgoing accounting.
 *
 * @module
 */

import { runtime } from "../transport/runtime.ts";
import type { Stream } from "../transport/runtime_types.ts";
import {
  Connection,
  type ConnectionEvents,
  type ConnectionOptions,
  type PeerInfo,
} from "../zmtp/connection.ts";
import { ZmtpError } from "../zmtp/errors.ts";
import { type AuthDecision, type AuthRequest, toAuthOutcome } from "../zmtp/mechanism.ts";
import { ZWS_BARE, ZWS_NULL } from "../zmtp/zws.ts";
import { BareZwsConnection } from "../zmtp/zws_bare.ts";
import { Deque } from "./deque.ts";

/**
 * How long a dropped peer's last bytes (our ERROR command) may take to leave before the
 * connection is closed anyway: a peer that stops reading must not keep it open.
 */
const DROP_FLUSH_MS = 1000;
/** No sends waiting for a write (shared: never written to). */
const NONE: Array<() => void> = [];

/** What a pipe reports to the socket that owns it. */
export interface PipeOwner {
  /** The handshake finished; return false to refuse the peer. */
  pipeReady(pipe: Pipe, peer: PeerInfo): boolean;
  /** A message arrived; the pipe has queued it. */
  pipeMessage(pipe: Pipe): void;
  /** True while received messages wait to be taken: more sends are probably coming. */
  inputPending(): boolean;
  /** The pipe went from full to having room for sends. */
  pipeWritable(pipe: Pipe): void;
  /** The pipe is gone, with the reason when it was dropped for one. */
  pipeClosed(pipe: Pipe, error?: Error): void;
  /** The mechanism asks whether this peer may connect (CURVE and PLAIN servers). */
  authenticate(pipe: Pipe, request: AuthRequest): AuthDecision | Promise<AuthDecision>;
}

/** The protocol engine for a stream: ZMTP over bytes, or ZWS 2.0 over WebSocket messages. */
function openConnection(
  stream: Stream,
  options: ConnectionOptions,
  events: ConnectionEvents,
): Connection | BareZwsConnection {
  if (stream.kind === "bytes") return new Connection(options, events, runtime.now());
  if (stream.protocol === ZWS_BARE) return new BareZwsConnection(options, events, runtime.now());
  // libzmq's ws_engine drops ZMTP PINGs: a PING to it would go unanswered and time it out.
  const heartbeat = stream.protocol === ZWS_NULL ? { heartbeatInterval: 0 } : {};
  return new Connection({ ...options, framing: "zws", ...heartbeat }, events, runtime.now());
}

/** A connected peer. */
export class Pipe {
  /** The endpoint through which this peer came (bound or connected). */
  readonly endpoint: string;
  /** The peer's address. */
  readonly remote: string;
  /** Messages received and not yet taken by the socket. */
  readonly incoming: Deque<Uint8Array[]> = new Deque();
  /** Routing id under which the socket knows this peer (set by ROUTER). */
  routingId: Uint8Array = new Uint8Array(0);
  /** Key form of `routingId`. */
  routingKey = "";
  /** The peer's handshake information once ready. */
  peer: PeerInfo | null = null;
  /** True while the pipe is listed among the socket's pipes with queued input. */
  scheduled = false;
  /** When bytes were last read from the peer (`runtime.now()`, ms). */
  readAt = 0;
  /** Bytes read from the peer, as they came off the stream. */
  bytesReceived = 0;
  /** Bytes handed to the stream for the peer. */
  bytesSent = 0;

  #owner: PipeOwner;
  #stream: Stream;
  #conn: Connection | BareZwsConnection;
  #sendHighWaterMark: number;
  #receiveHighWaterMark: number;
  #pending = 0;
  #writing = false;
  #paused = false;
  #closed = false;
  #closeWhenFlushed = false;
  #deferred = false;
  #lingerTimer: ReturnType<typeof setTimeout> | undefined;
  /** Set when the peer is being dropped: the reason, while our last bytes leave. */
  #dropping: Error | null = null;
  /** True once the peer sent a byte (see #cutShort). */
  #heard = false;
  /** Resolvers of sends waiting for the write that will carry them. */
  #nextWrite: Array<() => void> = [];
  /** Messages in the write in flight, and the resolvers of those that wait for it. */
  #inFlight = 0;
  #inFlightWritten: Array<() => void> = NONE;

  /** Wraps `stream`, queues our greeting and starts reading. */
  constructor(
    owner: PipeOwner,
    stream: Stream,
    endpoint: string,
    connection: ConnectionOptions,
    sendHighWaterMark: number,
    receiveHighWaterMark: number,
  ) {
    this.#owner = owner;
    this.#stream = stream;
    this.endpoint = endpoint;
    this.remote = stream.remote;
    this.#sendHighWaterMark = sendHighWaterMark;
    this.#receiveHighWaterMark = receiveHighWaterMark;
    const events: ConnectionEvents = {
      ready: (peer) => {
        this.peer = peer;
        if (!this.#owner.pipeReady(this, peer)) this.close();
      },
      message: (frames) => {
        this.incoming.push(frames);
        if (this.incoming.length >= this.#receiveHighWaterMark && !this.#paused) {
          this.#paused = true;
          this.#stream.pause();
        }
        this.#owner.pipeMessage(this);
      },
      authenticate: (request) => this.#authenticate(request),
    };
    this.#conn = openConnection(stream, connection, events);
    this.#flush();
    stream.start(
      (chunk) => this.#onData(chunk),
      (error) => this.#onEnd(error),
      () => this.#conn.readTarget(),
    );
  }

  /** True once the handshake is done and until the pipe closes. */
  get ready(): boolean {
    return this.peer !== null && !this.#closed;
  }

  /** True when a send would not exceed the high-water mark. */
  get writable(): boolean {
    return this.ready && !this.#closeWhenFlushed && this.#dropping === null &&
      this.#pending < this.#sendHighWaterMark;
  }

  /** True once closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Queues a message for the peer and starts writing if idle. Returns null when the message was
   * copied, or a promise that resolves once it is written when it still refers to the caller's
   * bytes (large frames are not copied unless `copy` is set). Frames before `start` are not
   * sent (a ROUTER's routing id).
   */
  send(frames: readonly Uint8Array[], copy = false, start = 0): Promise<void> | null {
    const referenced = this.#conn.send(frames, copy, start);
    this.#pending++;
    let written: Promise<void> | null = null;
    if (referenced) {
      written = new Promise((resolve) => this.#nextWrite.push(resolve));
    }
    // A flush is due at the end of the turn, or the write in flight takes this one with it.
    if (this.#deferred || this.#writing) return written;
    if (this.#owner.inputPending()) {
      // Answers to the messages still queued will follow at once: let them share one write,
      // at the end of the turn (the socket's messages are taken within it, in microtasks).
      this.#deferred = true;
      runtime.afterTurn(this.#flushDeferred);
      return written;
    }
    this.#flush();
    return written;
  }

  /** Takes the oldest queued incoming message. */
  take(): Uint8Array[] | undefined {
    const message = this.incoming.shift();
    if (this.#paused && this.incoming.length <= this.#receiveHighWaterMark >> 1) {
      this.#paused = false;
      this.#stream.resume();
    }
    return message;
  }

  /** Runs the connection's timers. */
  tick(now: number): void {
    if (this.#closed || this.#dropping !== null) return;
    try {
      this.#conn.tick(now);
    } catch (error) {
      this.#drop(error);
      return;
    }
    this.#flush();
  }

  /**
   * Closes once queued output is written, or after `linger` ms (-1: no limit, 0: at once).
   */
  closeAfterFlush(linger: number): void {
    if (this.#closed) return;
    if (linger === 0 || (this.#pending === 0 && !this.#writing)) {
      this.close();
      return;
    }
    this.#closeWhenFlushed = true;
    if (linger > 0) this.#lingerTimer = setTimeout(() => this.close(), linger);
  }

  /** Closes at once; queued output is lost. */
  close(error?: Error): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#lingerTimer);
    for (const resolve of this.#nextWrite) resolve();
    this.#nextWrite = [];
    this.#conn.close();
    this.#stream.close();
    this.#owner.pipeClosed(this, error);
  }

  readonly #flushDeferred = (): void => {
    this.#deferred = false;
    this.#flush();
  };

  #onData(chunk: Uint8Array): void {
    this.#heard = true;
    if (this.#dropping !== null) return;
    this.bytesReceived += chunk.length;
    const now = this.readAt = runtime.now();
    try {
      this.#conn.receive(chunk, now);
    } catch (error) {
      this.#drop(error);
      return;
    }
    this.#flush();
  }

  #onEnd(error?: Error): void {
    // A CURVE server that cannot open our HELLO closes without a word: say what that means.
    const during = this.#closed || this.#dropping !== null ? undefined : this.#conn.closedReason();
    this.close(this.#dropping ?? error ?? during ?? this.#cutShort());
  }

  #authenticate(request: AuthRequest): void {
    let answer: AuthDecision | Promise<AuthDecision>;
    try {
      answer = this.#owner.authenticate(this, request);
    } catch (error) {
      answer = Promise.reject(error);
    }
    // Always answered later, never from inside the connection's own receive().
    Promise.resolve(answer).then(
      (decision) => this.#authenticated(toAuthOutcome(decision)),
      (error) => this.#authenticated(toAuthOutcome(undefined, error ?? "rejected")),
    );
  }

  #authenticated(outcome: ReturnType<typeof toAuthOutcome>): void {
    if (this.#closed || this.#dropping !== null) return;
    try {
      this.#conn.authenticated(outcome, runtime.now());
    } catch (error) {
      this.#drop(error);
      return;
    }
    this.#flush();
  }

  /**
   * A peer that hangs up mid-handshake without a word: libzmq does so when the security
   * mechanisms differ (it reads ours and closes), and it should not pass unnoticed as a plain
   * disconnect. A connection closed before any byte arrived (a port probe) is not reported.
   */
  #cutShort(): ZmtpError | undefined {
    if (this.peer !== null || this.#closed || !this.#heard) return undefined;
    return new ZmtpError(
      "handshake-failed",
      "the peer closed the connection during the ZMTP handshake, as libzmq does when the " +
        "security mechanisms differ",
    );
  }

  /**
   * Drops the peer for a protocol error once what we queued for it (an ERROR command) is
   * written, within {@linkcode DROP_FLUSH_MS}. Anything else thrown here is a bug of ours: the
   * peer is dropped for it too rather than the error escaping into the runtime's callback.
   */
  #drop(error: unknown): void {
    if (this.#closed || this.#dropping !== null) return;
    const reason = error instanceof Error ? error : new Error(String(error));
    this.#dropping = error instanceof ZmtpError
      ? reason
      : new Error(`internal error: ${reason.message}`, { cause: error });
    this.#conn.close();
    this.#stream.pause();
    this.#lingerTimer = setTimeout(() => this.close(this.#dropping!), DROP_FLUSH_MS);
    this.#flush();
  }

  #flush(): void {
    if (this.#writing || this.#closed) return;
    const bytes = this.#conn.out.bytes;
    const taken = this.#conn.out.take();
    if (taken === null) {
      if (this.#dropping !== null) this.close(this.#dropping);
      else if (this.#closeWhenFlushed) this.close();
      return;
    }
    this.#writing = true;
    this.bytesSent += bytes;
    this.#inFlight = taken.messages;
    if (this.#nextWrite.length > 0) {
      this.#inFlightWritten = this.#nextWrite;
      this.#nextWrite = [];
    }
    this.#stream.write(taken.chunks).then(this.#onWritten, this.#onWriteFailed);
  }

  /** Resolves the sends a write carried (callbacks made once: a hub flushes per request). */
  #settleWritten(): void {
    const written = this.#inFlightWritten;
    if (written === NONE) return;
    this.#inFlightWritten = NONE;
    for (const resolve of written) resolve();
  }

  readonly #onWritten = (): void => {
    this.#settleWritten();
    this.#writing = false;
    const wasFull = this.#pending >= this.#sendHighWaterMark;
    this.#pending -= this.#inFlight;
    if (this.#conn.out.messages > 0 && !this.#deferred) {
      // A write to loopback completes within a few microtasks, while a sender that awaits each
      // send queues one message per microtask: writing again now would carry a handful of
      // messages per system call. The rest of the turn's messages join them at its end.
      this.#deferred = true;
      runtime.afterTurn(this.#flushDeferred);
    } else if (!this.#deferred) {
      this.#flush();
    }
    if (wasFull && this.writable) this.#owner.pipeWritable(this);
  };

  readonly #onWriteFailed = (error: Error): void => {
    // The message is lost with the connection, as a queued one would be: its sender is free.
    this.#settleWritten();
    this.#writing = false;
    this.close(error);
  };
}
