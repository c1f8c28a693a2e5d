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
  parsePing,
} from "./command.ts";
import { ZmtpError } from "./errors.ts";
import { FrameDecoder } from "./frame_decoder.ts";
import { checkGreetingPrefix, encodeGreeting, parseGreeting } from "./greeting.ts";
import type { Mechanism, MechanismContext } from "./mechanism.ts";
import { nullMechanism } from "./null_mechanism.ts";
import { OutBuffer } from "./out_buffer.ts";
import { type SocketType, socketTypesMatch } from "./socket_type.ts";
import { ZWS_HEARTBEAT, ZwsDecoder, ZwsOutBuffer } from "./zws.ts";

const encoder = new TextEncoder();
const latin1 = new TextDecoder("latin1");
const EMPTY = new Uint8Array(0);

/** Settings of one connection. Times are in milliseconds; 0 turns a timer off. */
export interface ConnectionOptions {
  /** Our socket type, announced as `Socket-Type`. */
  socketType: SocketType;
  /** Our routing id, announced as `Identity` (empty: let the peer generate one). */
  routingId?: Uint8Array;
  /** Security mechanism for this connection (default NULL). */
  mechanism?: Mechanism;
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
}

/** Callbacks through which a connection delivers what it decoded. */
export interface ConnectionEvents {
  /** The handshake is done; messages may now flow both ways. */
  ready(peer: PeerInfo): void;
  /** A complete message arrived. */
  message(frames: Uint8Array[]): void;
}

/** Where a connection is in its life. */
export type ConnectionState = "greeting" | "handshake" | "ready" | "closed";

/**
 * A ZMTP 3.x connection. Our greeting is queued at construction; the driver writes whatever
 * {@linkcode Connection.out} holds, feeds received bytes to {@linkcode Connection.receive} and
 * calls {@linkcode Connection.tick} now and then. A {@linkcode ZmtpError} thrown by either means
 * the peer must be dropped: the driver flushes `out` (it may hold an ERROR command) and closes.
 *
 * @example
 * ```ts
 * import { Connection } from "./connection.ts";
 * const conn = new Connection({ socketType: "DEALER" }, {
 *   ready: (peer) => console.log("peer is a", peer.socketType),
 *   message: (frames) => console.log(frames.length, "frames"),
 * }, 0);
 * const greeting = conn.out.take(); // 64 bytes to write first
 * console.log(greeting?.chunks[0].length);
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
    const zws = options.framing === "zws";
    const out = this.out = zws ? new ZwsOutBuffer() : new OutBuffer();
    this.#context = {
      localProperties: properties,
      sendCommand: (body) => out.command(body),
    };
    const limits = {
      maxMessageSize: options.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE,
      maxFrames: options.maxFrames ?? DEFAULT_MAX_FRAMES,
    };
    const sink = {
      message: (frames: Uint8Array[]) => this.#onMessage(frames),
      command: (body: Uint8Array) => this.#onCommand(body),
    };
    if (zws) {
      // No greeting: the subprotocol named the mechanism, and ZWS implies ZMTP 3.1 framing.
      this.#decoder = new ZwsDecoder(limits, sink, () => out.command(ZWS_HEARTBEAT));
      this.#peerMinor = 1;
      this.#state = "handshake";
      this.#mechanism.start(this.#context);
      return;
    }
    this.#decoder = new FrameDecoder(limits, sink);
    // The whole greeting at once: libzmq waits for our signature before sending its version.
    out.raw(
      encodeGreeting(
        this.#mechanism.name,
        this.#mechanism.asServer,
        options.minorVersion ?? VERSION_MINOR,
      ),
    );
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
    return this.#decoder.idle;
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
   * frame was referred to rather than copied (see {@linkcode OutBuffer.message}).
   */
  send(frames: readonly Uint8Array[]): boolean {
    if (this.#state !== "ready") {
      throw new Error(`Cannot send on a connection in state "${this.#state}"`);
    }
    return this.out.message(frames);
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
      // ZMTP 3.0 has no PING; a 3.0 peer would take one for a protocol error.
      if (
        this.#heartbeatInterval > 0 && this.#peerMinor >= 1 &&
        now - this.#lastPingSent >= this.#heartbeatInterval
      ) {
        const ttl = Math.min(PING_TTL_MAX, Math.ceil((this.#options.heartbeatTtl ?? 0) / 100));
        this.out.command(encodePing(ttl, EMPTY));
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
    if (greeting.mechanism !== this.#mechanism.name) {
      throw new ZmtpError(
        "mechanism-mismatch",
        `peer uses mechanism ${greeting.mechanism}, we use ${this.#mechanism.name}`,
      );
    }
    this.#peerMinor = greeting.major > 3 ? 1 : greeting.minor;
    this.#version = { major: this.#greeting[10], minor: this.#greeting[11] };
    this.#state = "handshake";
    this.#mechanism.start(this.#context);
  }

  #onCommand(body: Uint8Array): void {
    const { name, data } = parseCommand(body);
    if (this.#state === "handshake") {
      const step = this.#mechanism.onCommand(name, data, this.#context);
      if (step.done) this.#onHandshakeDone(step.properties);
      return;
    }
    switch (name) {
      case "PING": {
        const ping = parsePing(data);
        this.#remoteTtl = ping.ttl * 100;
        // Always answered, whatever minor version either side announced.
        this.out.command(encodeCommand("PONG", ping.context));
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

  #onHandshakeDone(properties: Map<string, Uint8Array>): void {
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
    this.#events.ready({
      socketType,
      routingId: properties.get("identity") ?? EMPTY,
      properties,
      version: this.#version,
    });
  }

  #onMessage(frames: Uint8Array[]): void {
    if (this.#state !== "ready") {
      throw new ZmtpError(
        "unexpected-frame",
        "message frame received before the handshake finished",
      );
    }
    this.#events.message(frames);
  }

  #fail(error: unknown): never {
    this.#state = "closed";
    throw error;
  }
}
