/**
 * One ZMTP 3.x connection as a sans-IO state machine: feed it the bytes that arrived and the
 * current time, take the bytes it wants to send. It never touches a socket or a timer.
 *
 * @module
 */

import {
  DEFAULT_MAX_FRAMES,
  DEFAULT_MAX_MESSAGE_SIZE,
  GREETING_SIZE,
  PING_TTL_MAX,
  VERSION_MINOR,
} from "./constants.ts";
import {
  encodeCommand,
  encodeError,
  encodePing,
  parseCommand,
  parseErrorReason,
  parseHandshakeCommand,
  parsePing,
} from "./command.ts";
import { ZmtpError } from "./errors.ts";
import { FrameDecoder } from "./frame_decoder.ts";
import {
  checkGreetingPrefix,
  encodeGreeting,
  parseGreeting,
  parseGreetingMechanism,
} from "./greeting.ts";
import type {
  AuthOutcome,
  AuthRequest,
  FrameBox,
  Mechanism,
  MechanismContext,
  MechanismStep,
} from "./mechanism.ts";
import { nullMechanism } from "./null_mechanism.ts";
import { OutBuffer } from "./out_buffer.ts";
import { type SocketType, socketTypesMatch } from "./socket_type.ts";
import { ZWS_HEARTBEAT, ZwsDecoder, ZwsOutBuffer } from "./zws.ts";

const encoder = new TextEncoder();
const latin1 = new TextDecoder("latin1");
const EMPTY = new Uint8Array(0);
/** Flags inside a sealed frame (CURVE's MESSAGE box). */
const BOX_MORE = 0x01;
const BOX_COMMAND = 0x02;

/** Settings of one connection. Times are in milliseconds; 0 turns a timer off. */
export interface ConnectionOptions {
  /** Our socket type, announced as `Socket-Type`. */
  socketType: SocketType;
  /** Our routing id, announced as `Identity` (empty: let the peer generate one). */
  routingId?: Uint8Array;
  /** Security mechanism for this connection (default NULL). */
  mechanism?: Mechanism;
  /**
   * Application metadata added to our READY (ZMTP 3.1 allows it; peers keep what they do not
   * know). Names should start with `X-`, as libzmq requires of its `ZMQ_METADATA`.
   */
  metadata?: ReadonlyMap<string, Uint8Array>;
  /** Minor version we announce (default 1: ZMTP 3.1). */
  minorVersion?: number;
  /** Largest message accepted, in bytes (default 256 MiB). */
  maxMessageSize?: number;
  /** Largest number of frames in one message (default 65,536). */
  maxFrames?: number;
  /** Send a PING this often, in ms (default 0: never). */
  heartbeatInterval?: number;
  /** Drop the peer when nothing arrives this long after a PING, in ms (default: the interval). */
  heartbeatTimeout?: number;
  /** TTL announced in our PINGs, in ms: the peer drops us after this much silence (default 0). */
  heartbeatTtl?: number;
  /** Drop the peer when the handshake is not done within this many ms (default 0: never). */
  handshakeTimeout?: number;
  /**
   * How frames travel: `"zmtp"` over a byte stream, greeting first (default), or `"zws"`, one
   * WebSocket message per frame and no greeting (ZWS 2.0 with a mechanism, e.g. `ZWS2.0/NULL`):
   * {@linkcode Connection.receive} then takes one whole message per call and each chunk taken
   * from {@linkcode Connection.out} is one message.
   */
  framing?: "zmtp" | "zws";
  /**
   * When our greeting leaves: `"whole"` at once (default), or `"after-peer"`, the side that
   * accepted the connection: the signature and major version at once, the rest (our mechanism)
   * once the peer's whole greeting arrived. libzmq sends its mechanism only after our major
   * version, and hangs up as soon as it reads a mechanism other than its own: a listener that
   * names its mechanism first may hear nothing from a CURVE or PLAIN client at a NULL socket,
   * which then looks like a port probe. Waiting, it always reads the peer's mechanism and can
   * say why it refused it. Never on both sides of one connection: each would wait for the other.
   */
  greeting?: "whole" | "after-peer";
}

/** What the peer told us about itself during the handshake. */
export interface PeerInfo {
  /** The peer's `Socket-Type`. */
  socketType: string;
  /** The peer's `Identity` (empty when it sent none). */
  routingId: Uint8Array;
  /** All metadata properties, names lower-cased. */
  properties: Map<string, Uint8Array>;
  /** Protocol version the peer announced. */
  version: { major: number; minor: number };
  /** The security mechanism in use (`"NULL"`, `"PLAIN"`, `"CURVE"`). */
  mechanism: string;
  /** The user id an authenticator gave this peer (server side of PLAIN and CURVE). */
  userId?: string;
  /** The peer's long-term CURVE public key (server side of CURVE). */
  publicKey?: Uint8Array;
}

/** Callbacks through which a connection delivers what it decoded. */
export interface ConnectionEvents {
  /** The handshake is done; messages may now flow both ways. */
  ready(peer: PeerInfo): void;
  /** A complete message arrived. */
  message(frames: Uint8Array[]): void;
  /**
   * The mechanism asks whether this peer may connect; answer with
   * {@linkcode Connection.authenticated}. Without this callback such peers are refused.
   */
  authenticate?(request: AuthRequest): void;
}

/** Where a connection is in its life. */
/** Bytes of our greeting sent at once with `greeting: "after-peer"`: signature, major version. */
const GREETING_REST = 11;

export type ConnectionState = "greeting" | "handshake" | "ready" | "closed";

/**
 * A ZMTP 3.x connection. Our greeting is queued at construction (its first 11 bytes only with
 * `greeting: "after-peer"`); the driver writes whatever {@linkcode Connection.out} holds, feeds
 * received bytes to {@linkcode Connection.receive} and calls {@linkcode Connection.tick} now and
 * then. A {@linkcode ZmtpError} thrown by either means
 * the peer must be dropped: the driver flushes `out` (it may hold an ERROR command) and closes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Connection } from "./connection.ts";
 * const dealer = new Connection({ socketType: "DEALER" }, {
 *   ready: () => {},
 *   message: () => {},
 * }, 0);
 * const peers: string[] = [];
 * const router = new Connection({ socketType: "ROUTER" }, {
 *   ready: (peer) => peers.push(peer.socketType),
 *   message: () => {},
 * }, 0);
 * // Each side writes its greeting and READY; feed one side's bytes to the other.
 * for (const chunk of dealer.out.take()!.chunks) router.receive(chunk, 0);
 * for (const chunk of router.out.take()!.chunks) dealer.receive(chunk, 0);
 * for (const chunk of dealer.out.take()?.chunks ?? []) router.receive(chunk, 0);
 * assert.deepEqual(peers, ["DEALER"]);
 * assert.equal(router.state, "ready");
 * ```
 */
export class Connection {
  /** Bytes (with `framing: "zws"`: messages) to send to the peer, in order. */
  readonly out: OutBuffer | ZwsOutBuffer;
  #state: ConnectionState = "greeting";
  #options: ConnectionOptions;
  #events: ConnectionEvents;
  #mechanism: Mechanism;
  #context: MechanismContext;
  #greeting = new Uint8Array(GREETING_SIZE);
  #greetingFill = 0;
  /** The part of our greeting held back until the peer's arrived (`greeting: "after-peer"`). */
  #greetingRest: Uint8Array | null = null;
  #peerMinor = 0;
  #decoder: FrameDecoder | ZwsDecoder;
  #version = { major: 3, minor: 1 };
  #startedAt: number;
  #lastReceived: number;
  #lastPingSent: number;
  #awaitingSince = -1;
  #remoteTtl = 0;
  #heartbeatInterval: number;
  #heartbeatTimeout: number;
  #limits: { maxMessageSize: number; maxFrames: number };
  /** Set by mechanisms that seal frames (CURVE) once the handshake is done. */
  #box: FrameBox | null = null;
  #sealedFrames: Uint8Array[] = [];
  #sealedSize = 0;
  #authPending = false;

  /** Creates a connection and queues our greeting. `now` is in milliseconds. */
  constructor(options: ConnectionOptions, events: ConnectionEvents, now: number) {
    this.#options = options;
    this.#events = events;
    this.#mechanism = options.mechanism ?? nullMechanism();
    this.#startedAt = now;
    this.#lastReceived = now;
    this.#lastPingSent = now;
    this.#heartbeatInterval = options.heartbeatInterval ?? 0;
    this.#heartbeatTimeout = options.heartbeatTimeout || this.#heartbeatInterval;
    const properties = new Map<string, Uint8Array>([
      ["Socket-Type", encoder.encode(options.socketType)],
    ]);
    if (["DEALER", "ROUTER", "REQ"].includes(options.socketType)) {
      properties.set("Identity", options.routingId ?? EMPTY);
    }
    if (options.metadata) {
      for (const [name, value] of options.metadata) properties.set(name, value);
    }
    const zws = options.framing === "zws";
    const out = this.out = zws ? new ZwsOutBuffer() : new OutBuffer();
    this.#context = {
      localProperties: properties,
      sendCommand: (body) => out.command(body),
    };
    this.#limits = {
      maxMessageSize: options.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE,
      maxFrames: options.maxFrames ?? DEFAULT_MAX_FRAMES,
    };
    // The decoder reads these limits on every frame: raised by a box's overhead once sealing
    // starts (the exact limits are then checked on the opened frames).
    const sink = {
      message: (frames: Uint8Array[]) => this.#onMessage(frames),
      command: (body: Uint8Array) => this.#onCommand(body),
    };
    if (zws) {
      // No greeting: the subprotocol named the mechanism, and ZWS implies ZMTP 3.1 framing.
      this.#decoder = new ZwsDecoder(this.#limits, sink, () => out.command(ZWS_HEARTBEAT));
      this.#peerMinor = 1;
      this.#state = "handshake";
      // Nor does a greeting tell the peer's role: it is the other one.
      this.#mechanism.start(this.#context, { asServer: !this.#mechanism.asServer });
      return;
    }
    this.#decoder = new FrameDecoder(this.#limits, sink);
    const greeting = encodeGreeting(
      this.#mechanism.name,
      this.#mechanism.asServer,
      options.minorVersion ?? VERSION_MINOR,
    );
    if (options.greeting === "after-peer") {
      // Signature and major version: what libzmq waits for before it sends its mechanism.
      out.raw(greeting.subarray(0, GREETING_REST));
      this.#greetingRest = greeting.subarray(GREETING_REST);
    } else {
      out.raw(greeting);
    }
  }

  /** Where the connection is in its life. */
  get state(): ConnectionState {
    return this.#state;
  }

  /**
   * A buffer the driver may read the next bytes into, saving a copy of large frames; null when
   * any buffer will do. Pass what was read there to {@linkcode Connection.receive} as the view
   * of this buffer it was read into.
   */
  readTarget(): Uint8Array | null {
    return this.#state === "ready" ? this.#decoder.readTarget() : null;
  }

  /** True when no message is partly received (nothing would be lost by closing now). */
  get idle(): boolean {
    return this.#decoder.idle && this.#sealedFrames.length === 0;
  }

  /**
   * Handles bytes received from the peer. The chunk is only read during the call. With
   * `framing: "zws"` the chunk is one whole WebSocket message, which the connection then owns.
   *
   * @throws {ZmtpError} when the peer must be dropped
   */
  receive(chunk: Uint8Array, now: number): void {
    if (this.#state === "closed") return;
    this.#lastReceived = now;
    this.#awaitingSince = -1;
    try {
      if (this.#state === "greeting") {
        const take = Math.min(GREETING_SIZE - this.#greetingFill, chunk.length);
        this.#greeting.set(chunk.subarray(0, take), this.#greetingFill);
        this.#greetingFill += take;
        checkGreetingPrefix(this.#greeting.subarray(0, this.#greetingFill));
        if (this.#greetingFill < GREETING_SIZE) return;
        this.#onGreeting();
        chunk = chunk.subarray(take);
        if (chunk.length === 0) return;
      }
      this.#decoder.feed(chunk);
    } catch (error) {
      this.#fail(error);
    }
  }

  /**
   * Queues a message for the peer. Only valid in the `ready` state. Returns true when a large
   * frame was referred to rather than copied (see {@linkcode OutBuffer.message}); `copy` copies
   * every frame. Frames before `start` are not sent.
   */
  send(frames: readonly Uint8Array[], copy = false, start = 0): boolean {
    if (this.#state !== "ready") {
      throw new Error(`Cannot send on a connection in state "${this.#state}"`);
    }
    const box = this.#box;
    if (box === null) return this.out.message(frames, copy, start);
    const last = frames.length - 1;
    const sealed = new Array<Uint8Array>(frames.length - start);
    for (let i = start; i <= last; i++) {
      sealed[i - start] = box.seal(i < last ? BOX_MORE : 0, frames[i]);
    }
    this.out.singleFrames(sealed);
    return false;
  }

  /**
   * Gives the decision an `authenticate` event asked for. Ignored once the connection closed.
   *
   * @throws {ZmtpError} when the peer is refused: the driver flushes `out` (it holds an ERROR
   *   command) and closes
   */
  authenticated(outcome: AuthOutcome, now: number): void {
    if (this.#state !== "handshake" || !this.#authPending) return;
    this.#authPending = false;
    this.#lastReceived = now;
    try {
      this.#step(this.#mechanism.onAuthenticated!(outcome, this.#context));
    } catch (error) {
      this.#fail(error);
    }
  }

  /**
   * Runs the timers: handshake timeout, our PINGs, the peer's silence. `now` is in milliseconds.
   *
   * @throws {ZmtpError} when the peer must be dropped
   */
  tick(now: number): void {
    if (this.#state === "closed") return;
    try {
      const handshakeTimeout = this.#options.handshakeTimeout ?? 0;
      if (this.#state !== "ready") {
        if (handshakeTimeout > 0 && now - this.#startedAt >= handshakeTimeout) {
          throw new ZmtpError(
            "handshake-timeout",
            `handshake not finished within ${handshakeTimeout} ms`,
          );
        }
        return;
      }
      if (this.#awaitingSince >= 0 && now - this.#awaitingSince >= this.#heartbeatTimeout) {
        throw new ZmtpError(
          "heartbeat-timeout",
          `nothing received for ${now - this.#awaitingSince} ms after our PING`,
        );
      }
      if (this.#remoteTtl > 0 && now - this.#lastReceived >= this.#remoteTtl) {
        throw new ZmtpError(
          "heartbeat-timeout",
          `peer silent past the ${this.#remoteTtl} ms TTL of its PING`,
        );
      }
      // ZMTP 3.0 has no PING; a 3.0 peer would take one for a protocol error. Without a TTL of
      // ours for the peer to enforce, what it sends proves it alive: a PING only follows a quiet
      // interval (a hub with a thousand busy workers saves a write and a read a second each).
      const interval = this.#heartbeatInterval;
      const ttlMs = this.#options.heartbeatTtl ?? 0;
      if (
        interval > 0 && this.#peerMinor >= 1 && now - this.#lastPingSent >= interval &&
        (ttlMs > 0 || now - this.#lastReceived >= interval)
      ) {
        const ttl = Math.min(PING_TTL_MAX, Math.ceil(ttlMs / 100));
        this.#command(encodePing(ttl, EMPTY));
        this.#lastPingSent = now;
        if (this.#awaitingSince < 0) this.#awaitingSince = now;
      }
    } catch (error) {
      this.#fail(error);
    }
  }

  /** Marks the connection closed; later input is ignored. */
  close(): void {
    this.#state = "closed";
  }

  #onGreeting(): void {
    const greeting = parseGreeting(this.#greeting);
    if (this.#greetingRest !== null) {
      // Sent even to a peer refused next: it learns our mechanism, and why it was refused.
      (this.out as OutBuffer).raw(this.#greetingRest);
      this.#greetingRest = null;
    }
    if (greeting.mechanism !== this.#mechanism.name) {
      throw new ZmtpError(
        "mechanism-mismatch",
        `security mechanisms differ: peer uses mechanism ${greeting.mechanism}, ` +
          `we use ${this.#mechanism.name}`,
      );
    }
    this.#peerMinor = greeting.major > 3 ? 1 : greeting.minor;
    this.#version = { major: this.#greeting[10], minor: this.#greeting[11] };
    this.#state = "handshake";
    this.#mechanism.start(this.#context, { asServer: greeting.asServer });
  }

  /**
   * What may explain a peer that closed the connection before the handshake finished, or
   * undefined. With NULL nothing is said of a peer that leaves during the greeting (port
   * scanners, health checks); with PLAIN or CURVE it is most likely a peer of another mechanism,
   * which libzmq drops as soon as it has read our greeting.
   */
  closedReason(): ZmtpError | undefined {
    const ours = this.#mechanism.name;
    if (this.#state === "greeting" && ours !== "NULL") {
      const fill = this.#greetingFill;
      const theirs = fill >= 32 ? parseGreetingMechanism(this.#greeting) : undefined;
      if (theirs !== undefined && theirs !== ours) {
        return new ZmtpError("mechanism-mismatch", `peer uses mechanism ${theirs}, we use ${ours}`);
      }
      return new ZmtpError(
        "mechanism-mismatch",
        `the peer closed the connection during the greeting, after ${fill} of its 64 bytes: ` +
          `it probably uses another mechanism than our ${ours}`,
      );
    }
    const why = this.#state === "handshake" ? this.#mechanism.closedDuringHandshake?.() : undefined;
    return why === undefined ? undefined : new ZmtpError("handshake-failed", why);
  }

  #onCommand(body: Uint8Array): void {
    if (this.#box !== null) {
      // libzmq sends MESSAGE as an ordinary frame; one sent as a command is a box all the same.
      this.#openSealed(body);
      return;
    }
    const { name, data } = this.#state === "handshake"
      ? parseHandshakeCommand(body)
      : parseCommand(body);
    if (this.#state === "handshake") {
      if (this.#authPending) {
        throw new ZmtpError(
          "handshake-failed",
          `${name} command arrived while the peer's credentials were being checked`,
        );
      }
      this.#step(this.#mechanism.onCommand(name, data, this.#context));
      return;
    }
    this.#onTrafficCommand(name, data);
  }

  #step(step: MechanismStep): void {
    if (step.done) {
      this.#onHandshakeDone(step);
      return;
    }
    if (step.authenticate === undefined) return;
    this.#authPending = true;
    if (this.#events.authenticate) {
      this.#events.authenticate(step.authenticate);
      return;
    }
    this.#authPending = false;
    this.#step(
      this.#mechanism.onAuthenticated!({
        allow: false,
        status: 500,
        reason: "this connection has no authenticator to ask",
      }, this.#context),
    );
  }

  /** Queues a command after the handshake, sealed when the mechanism seals frames. */
  #command(body: Uint8Array): void {
    if (this.#box === null) this.out.command(body);
    else this.out.singleFrames([this.#box.seal(BOX_COMMAND, body)]);
  }

  #openSealed(sealed: Uint8Array): void {
    const { flags, body } = this.#box!.open(sealed);
    if ((flags & BOX_COMMAND) !== 0) {
      const { name, data } = parseCommand(body);
      this.#onTrafficCommand(name, data);
      return;
    }
    const frames = this.#sealedFrames;
    this.#sealedSize += body.length;
    const maxSize = this.#limits.maxMessageSize - this.#box!.overhead;
    if (this.#sealedSize > maxSize) {
      throw new ZmtpError(
        "message-too-large",
        `message would reach ${this.#sealedSize} bytes, limit is ${maxSize}`,
      );
    }
    frames.push(body);
    if ((flags & BOX_MORE) !== 0) {
      if (frames.length >= this.#limits.maxFrames) {
        throw new ZmtpError(
          "too-many-frames",
          `message has more than ${this.#limits.maxFrames} frames`,
        );
      }
      return;
    }
    this.#sealedFrames = [];
    this.#sealedSize = 0;
    this.#events.message(frames);
  }

  #onTrafficCommand(name: string, data: Uint8Array): void {
    switch (name) {
      case "PING": {
        const ping = parsePing(data);
        this.#remoteTtl = ping.ttl * 100;
        // Always answered, whatever minor version either side announced.
        this.#command(encodeCommand("PONG", ping.context));
        break;
      }
      case "ERROR":
        throw new ZmtpError("peer-error", `peer sent ERROR: ${parseErrorReason(data)}`);
      default:
        // PONG only needs to count as traffic; SUBSCRIBE/CANCEL and unknown commands are
        // not ours to act on (RFC 37: ignore what you do not understand).
        break;
    }
  }

  #onHandshakeDone(step: MechanismStep & { done: true }): void {
    const properties = step.properties;
    const type = properties.get("socket-type");
    const socketType = type ? latin1.decode(type) : "";
    if (!socketTypesMatch(this.#options.socketType, socketType)) {
      const reason = `Invalid socket type: ${this.#options.socketType} cannot talk to ${
        socketType || "<none>"
      }`;
      this.out.command(encodeError(reason));
      throw new ZmtpError("socket-type-mismatch", reason);
    }
    this.#state = "ready";
    if (step.box) {
      this.#box = step.box;
      this.#limits.maxMessageSize += step.box.overhead;
    }
    this.#events.ready({
      socketType,
      routingId: properties.get("identity") ?? EMPTY,
      properties,
      version: this.#version,
      mechanism: this.#mechanism.name,
      userId: step.userId,
      publicKey: step.publicKey,
    });
  }

  #onMessage(frames: Uint8Array[]): void {
    if (this.#state !== "ready") {
      throw new ZmtpError(
        "unexpected-frame",
        "message frame received before the handshake finished",
      );
    }
    if (this.#box !== null) {
      for (let i = 0; i < frames.length; i++) this.#openSealed(frames[i]);
      return;
    }
    this.#events.message(frames);
  }

  #fail(error: unknown): never {
    this.#state = "closed";
    throw error;
  }
}
