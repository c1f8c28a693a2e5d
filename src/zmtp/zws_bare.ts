/**
 * The bare `ZWS2.0` subprotocol (RFC 45, "no mechanism"), sans-IO: what jszmq speaks. Each side's
 * first WebSocket message is its routing id as a single frame; data frames follow. There is no
 * greeting, no READY and no command: peers such as jszmq take any flag other than MORE for the
 * end of a message, so this connection never starts a command (no PING) and has no heartbeat;
 * it only answers libzmq's WebSocket heartbeat (an empty command frame) with one.
 *
 * @module
 */

import { DEFAULT_MAX_FRAMES, DEFAULT_MAX_MESSAGE_SIZE } from "./constants.ts";
import type { ConnectionEvents, ConnectionOptions, ConnectionState } from "./connection.ts";
import { ZmtpError } from "./errors.ts";
import { ZWS_FLAG_COMMAND, ZWS_FLAG_MORE, ZWS_HEARTBEAT, ZwsDecoder, ZwsOutBuffer } from "./zws.ts";

const EMPTY = new Uint8Array(0);
/** Longest routing id ZeroMQ allows. */
const ROUTING_ID_MAX = 255;

/**
 * A bare ZWS 2.0 connection, with the same driving interface as a `Connection` in ZWS mode:
 * feed it whole WebSocket messages with {@linkcode BareZwsConnection.receive}, write the chunks
 * taken from {@linkcode BareZwsConnection.out}, call {@linkcode BareZwsConnection.tick} now and
 * then. The peer's socket type is unknown (reported empty): the subprotocol does not say it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { BareZwsConnection } from "./zws_bare.ts";
 * const ids: Uint8Array[] = [];
 * const got: Uint8Array[][] = [];
 * const conn = new BareZwsConnection({ socketType: "DEALER" }, {
 *   ready: (peer) => ids.push(peer.routingId),
 *   message: (frames) => got.push(frames),
 * }, 0);
 * // Our routing id message first: [0x00] (no id: the peer makes one up).
 * assert.deepEqual(conn.out.take()?.chunks, [Uint8Array.of(0x00)]);
 * conn.receive(Uint8Array.of(0x00, 0x41), 0); // the peer's id, "A": ready
 * conn.receive(Uint8Array.of(0x00, 0x68, 0x69), 0); // a one-frame message "hi"
 * assert.deepEqual(ids, [Uint8Array.of(0x41)]);
 * assert.deepEqual(got, [[Uint8Array.of(0x68, 0x69)]]);
 * ```
 */
export class BareZwsConnection {
  /** Messages to send to the peer, one chunk per WebSocket message. */
  readonly out: ZwsOutBuffer = new ZwsOutBuffer();
  #state: ConnectionState = "handshake";
  #events: ConnectionEvents;
  #decoder: ZwsDecoder;
  #startedAt: number;
  #handshakeTimeout: number;

  /** Creates the connection and queues our routing id. `now` is in milliseconds. */
  constructor(options: ConnectionOptions, events: ConnectionEvents, now: number) {
    this.#events = events;
    this.#startedAt = now;
    this.#handshakeTimeout = options.handshakeTimeout ?? 0;
    this.#decoder = new ZwsDecoder(
      {
        maxMessageSize: options.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE,
        maxFrames: options.maxFrames ?? DEFAULT_MAX_FRAMES,
      },
      {
        message: (frames) => this.#events.message(frames),
        // No command means anything here; jszmq never sends one. Traffic only.
        command: () => {},
      },
      // libzmq's heartbeat (with its heartbeat option on) is answered in kind; a peer that
      // sends none (jszmq) never gets one.
      () => this.out.command(ZWS_HEARTBEAT),
    );
    this.out.routingId(options.routingId ?? EMPTY);
  }

  /** Where the connection is in its life (`handshake` until the peer's routing id arrived). */
  get state(): ConnectionState {
    return this.#state;
  }

  /** Never a read target: WebSocket messages arrive whole. */
  readTarget(): Uint8Array | null {
    return null;
  }

  /** True when no multipart message is partly received. */
  get idle(): boolean {
    return this.#decoder.idle;
  }

  /**
   * Handles one WebSocket message from the peer.
   *
   * @throws {ZmtpError} when the peer must be dropped
   */
  receive(message: Uint8Array, _now: number): void {
    if (this.#state === "closed") return;
    try {
      if (this.#state === "handshake") {
        this.#onRoutingId(message);
        return;
      }
      this.#decoder.feed(message);
    } catch (error) {
      this.#state = "closed";
      throw error;
    }
  }

  /**
   * Queues a message for the peer. Only valid in the `ready` state. Never refers to bodies;
   * frames before `start` are not sent.
   */
  send(frames: readonly Uint8Array[], _copy = false, start = 0): boolean {
    if (this.#state !== "ready") {
      throw new Error(`Cannot send on a connection in state "${this.#state}"`);
    }
    return this.out.message(frames, false, start);
  }

  /**
   * Runs the handshake timeout; there is no heartbeat in this subprotocol.
   *
   * @throws {ZmtpError} when the peer must be dropped
   */
  tick(now: number): void {
    if (this.#state !== "handshake" || this.#handshakeTimeout <= 0) return;
    if (now - this.#startedAt >= this.#handshakeTimeout) {
      this.#state = "closed";
      throw new ZmtpError(
        "handshake-timeout",
        `no routing id received within ${this.#handshakeTimeout} ms (ZWS2.0)`,
      );
    }
  }

  /** Marks the connection closed; later input is ignored. */
  close(): void {
    this.#state = "closed";
  }

  /** No mechanism, so nothing to say of a peer that left during the handshake. */
  closedReason(): undefined {
    return undefined;
  }

  /** No mechanism asks for authentication here: nothing to do. */
  authenticated(): void {}

  #onRoutingId(message: Uint8Array): void {
    if (message.length === 0) {
      throw new ZmtpError("unexpected-frame", "empty WebSocket message: ZWS needs a flags byte");
    }
    if ((message[0] & (ZWS_FLAG_MORE | ZWS_FLAG_COMMAND)) !== 0) {
      throw new ZmtpError(
        "handshake-failed",
        `first ZWS2.0 message must be the routing id in one frame, got flags 0x${
          message[0].toString(16)
        }`,
      );
    }
    const id = message.slice(1);
    if (id.length > ROUTING_ID_MAX) {
      throw new ZmtpError(
        "handshake-failed",
        `routing id of ${id.length} bytes, at most ${ROUTING_ID_MAX} allowed`,
      );
    }
    this.#state = "ready";
    this.#events.ready({
      socketType: "",
      routingId: id,
      properties: new Map(),
      version: { major: 3, minor: 1 },
      mechanism: "NULL",
    });
  }
}
