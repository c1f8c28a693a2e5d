/**
 * ZWS 2.0 framing (ZeroMQ RFC 45), sans-IO: over WebSocket each ZeroMQ frame is one binary
 * message whose first byte holds the flags (0x01 MORE, 0x02 COMMAND) and whose rest is the
 * body. There is no length field (the WebSocket message has one) and, with the `ZWS2.0/NULL`
 * subprotocol, no greeting: the ZMTP handshake starts at once with READY commands.
 *
 * {@linkcode ZwsDecoder} and {@linkcode ZwsOutBuffer} stand in for the ZMTP frame decoder and
 * output buffer of a {@linkcode Connection} in ZWS mode; `zws_bare.ts` is the bare `ZWS2.0`
 * subprotocol (what jszmq speaks).
 *
 * @module
 */

import type { DecoderLimits, DecoderSink } from "./frame_decoder.ts";
import { ZmtpError } from "./errors.ts";

/** ZWS flag: more frames follow in this message. */
export const ZWS_FLAG_MORE = 0x01;
/** ZWS flag: the frame is a command. */
export const ZWS_FLAG_COMMAND = 0x02;
/** A command frame with no body: libzmq's WebSocket heartbeat, answered in kind. */
export const ZWS_HEARTBEAT: Uint8Array = new Uint8Array(0);
/** The subprotocol with a NULL-mechanism ZMTP handshake inside (libzmq's draft `ws_engine`). */
export const ZWS_NULL = "ZWS2.0/NULL";
/**
 * `ZWS2.0/NULL` under a name WebSocket clients can send. A subprotocol must be an HTTP token
 * (RFC 6455, 4.1) and `/` is not a token character, so browsers, Deno and Node's `ws` refuse to
 * offer `ZWS2.0/NULL` (only libzmq, which writes its HTTP by hand, does). Our clients offer the
 * same protocol as `ZWS2.0+NULL`; our servers accept both names. Other servers do not know it
 * and choose bare `ZWS2.0`, which our clients offer too.
 */
export const ZWS_NULL_TOKEN = "ZWS2.0+NULL";
/** The subprotocol without a mechanism: each side's first message is its routing id (jszmq). */
export const ZWS_BARE = "ZWS2.0";

/**
 * Subprotocols a server accepts for a socket using `mechanism`, best first: a ZMTP handshake
 * (socket types checked, metadata, heartbeats) before the bare protocol.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { zwsServerProtocols } from "./zws.ts";
 * assert.deepEqual(zwsServerProtocols("NULL"), ["ZWS2.0+NULL", "ZWS2.0/NULL", "ZWS2.0"]);
 * ```
 */
export function zwsServerProtocols(mechanism: string): string[] {
  return mechanism === "NULL"
    ? [ZWS_NULL_TOKEN, ZWS_NULL, ZWS_BARE]
    : [`ZWS2.0+${mechanism}`, `ZWS2.0/${mechanism}`];
}

/**
 * Subprotocols a client offers, in the order sent. Bare `ZWS2.0` goes first although it is the
 * lesser one: servers that take the first offer instead of choosing (jszmq's, through Node's
 * `ws` package) speak only that one, while ours and libzmq's choose among all offered.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { zwsClientProtocols } from "./zws.ts";
 * assert.deepEqual(zwsClientProtocols("NULL"), ["ZWS2.0", "ZWS2.0+NULL"]);
 * ```
 */
export function zwsClientProtocols(mechanism: string): string[] {
  return mechanism === "NULL" ? [ZWS_BARE, ZWS_NULL_TOKEN] : [`ZWS2.0+${mechanism}`];
}

/**
 * Decodes ZWS messages, one WebSocket message per {@linkcode ZwsDecoder.feed} call, into
 * ZeroMQ messages and commands, enforcing the same limits as the ZMTP decoder. The receiver
 * owns each WebSocket message, which the transports allocate to its size: frame bodies are
 * delivered as views of it, without a copy.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ZwsDecoder } from "./zws.ts";
 * const got: Uint8Array[][] = [];
 * const decoder = new ZwsDecoder({ maxMessageSize: 1024, maxFrames: 16 }, {
 *   message: (frames) => got.push(frames),
 *   command: () => {},
 * });
 * decoder.feed(new Uint8Array([0x01, 0x61])); // "a", more to come
 * decoder.feed(new Uint8Array([0x00])); // "", the last frame
 * assert.deepEqual(got, [[Uint8Array.of(0x61), new Uint8Array(0)]]);
 * ```
 */
export class ZwsDecoder {
  #limits: DecoderLimits;
  #sink: DecoderSink;
  #onHeartbeat: () => void;
  #frames: Uint8Array[] = [];
  #messageSize = 0;

  /**
   * Creates a decoder with the given limits that delivers into `sink`. A command frame with no
   * body at all is libzmq's WebSocket heartbeat (its `ws_engine` sends PING and PONG that way,
   * and drops ZMTP PING commands): it goes to `onHeartbeat`, not to `sink`.
   */
  constructor(limits: DecoderLimits, sink: DecoderSink, onHeartbeat: () => void = () => {}) {
    this.#limits = limits;
    this.#sink = sink;
    this.#onHeartbeat = onHeartbeat;
  }

  /** Never a read target: WebSocket messages arrive whole. */
  readTarget(): Uint8Array | null {
    return null;
  }

  /** True when no multipart message is partly received. */
  get idle(): boolean {
    return this.#frames.length === 0;
  }

  /**
   * Decodes one WebSocket message (one ZeroMQ frame).
   *
   * @throws {ZmtpError} when the peer breaks the framing or exceeds a limit
   */
  feed(message: Uint8Array): void {
    if (message.length === 0) {
      throw new ZmtpError("unexpected-frame", "empty WebSocket message: ZWS needs a flags byte");
    }
    const flags = message[0];
    const size = message.length - 1;
    if ((flags & ZWS_FLAG_COMMAND) !== 0) {
      if ((flags & ZWS_FLAG_MORE) !== 0) {
        throw new ZmtpError("malformed-command", "command frame has the MORE flag set");
      }
      if (size > this.#limits.maxMessageSize) {
        throw new ZmtpError(
          "message-too-large",
          `command frame of ${size} bytes, limit is ${this.#limits.maxMessageSize}`,
        );
      }
      if (size === 0) this.#onHeartbeat();
      else this.#sink.command(message.subarray(1));
      return;
    }
    if (this.#messageSize + size > this.#limits.maxMessageSize) {
      throw new ZmtpError(
        "message-too-large",
        `message would reach ${
          this.#messageSize + size
        } bytes, limit is ${this.#limits.maxMessageSize}`,
      );
    }
    this.#messageSize += size;
    this.#frames.push(message.subarray(1));
    if ((flags & ZWS_FLAG_MORE) !== 0) {
      if (this.#frames.length >= this.#limits.maxFrames) {
        throw new ZmtpError(
          "too-many-frames",
          `message has more than ${this.#limits.maxFrames} frames`,
        );
      }
      return;
    }
    const frames = this.#frames;
    this.#frames = [];
    this.#messageSize = 0;
    this.#sink.message(frames);
  }
}

const SEGMENT_MIN = 2 * 1024;
const SEGMENT_MAX = 64 * 1024;
/** Frames at least this large get a buffer of their own rather than a piece of a segment. */
const OWN_BUFFER_MIN = 16 * 1024;

/**
 * Outgoing ZWS messages of one connection: the same interface as the ZMTP `OutBuffer`, except
 * that each chunk taken is one whole WebSocket message (flags byte and body). Small frames are
 * encoded into shared segments (never written to again once taken), large ones into a buffer
 * of their own: the body is always copied, so the caller may reuse its bytes at once.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ZwsOutBuffer } from "./zws.ts";
 * const out = new ZwsOutBuffer();
 * out.message([new TextEncoder().encode("id"), new TextEncoder().encode("hi")]);
 * const taken = out.take();
 * assert.deepEqual(taken?.chunks, [Uint8Array.of(0x01, 0x69, 0x64), Uint8Array.of(0x00, 0x68, 0x69)]);
 * assert.equal(taken?.messages, 1);
 * ```
 */
export class ZwsOutBuffer {
  #segment = new Uint8Array(SEGMENT_MIN);
  #end = 0;
  #chunks: Uint8Array[] = [];
  #bytes = 0;
  #messages = 0;

  /** Bytes waiting to be taken. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Messages waiting to be taken. */
  get messages(): number {
    return this.#messages;
  }

  /** ZWS has no greeting or other raw bytes. */
  raw(_bytes: Uint8Array): never {
    throw new Error("ZWS 2.0 has no raw bytes to send (no greeting)");
  }

  /**
   * Appends a multipart message, one WebSocket message per frame. Never refers to the bodies
   * (`copy` is accepted for the ZMTP buffer's interface: ZWS always copies). Frames before
   * `start` are not sent.
   */
  message(frames: readonly Uint8Array[], _copy = false, start = 0): boolean {
    const last = frames.length - 1;
    for (let i = start; i <= last; i++) this.#frame(i < last ? ZWS_FLAG_MORE : 0, frames[i]);
    this.#messages++;
    return false;
  }

  /**
   * Appends one message made of frames that each stand alone (sealed frames, whose MORE flag is
   * inside the box): every one final, counted as one message.
   */
  singleFrames(bodies: readonly Uint8Array[]): void {
    for (let i = 0; i < bodies.length; i++) this.#frame(0, bodies[i]);
    this.#messages++;
  }

  /** Appends a command frame whose body is `name-length name data`. */
  command(body: Uint8Array): void {
    this.#frame(ZWS_FLAG_COMMAND, body);
  }

  /**
   * Appends the routing-id message that opens bare `ZWS2.0`: one final frame, part of the
   * handshake and so, like a command, not counted in {@linkcode ZwsOutBuffer.messages}.
   */
  routingId(id: Uint8Array): void {
    this.#frame(0, id);
  }

  /** Takes the messages encoded so far (see the ZMTP `OutBuffer.take`). */
  take(): { chunks: Uint8Array[]; messages: number } | null {
    if (this.#chunks.length === 0) return null;
    const chunks = this.#chunks;
    const messages = this.#messages;
    this.#chunks = [];
    this.#bytes = 0;
    this.#messages = 0;
    return { chunks, messages };
  }

  #frame(flags: number, body: Uint8Array): void {
    const size = body.length + 1;
    this.#bytes += size;
    let chunk: Uint8Array;
    if (size >= OWN_BUFFER_MIN) {
      chunk = new Uint8Array(size);
    } else {
      if (this.#end + size > this.#segment.length) {
        // Chunks already handed out view the old segment: never write into it again.
        this.#segment = new Uint8Array(Math.min(this.#segment.length * 2, SEGMENT_MAX));
        this.#end = 0;
      }
      chunk = this.#segment.subarray(this.#end, this.#end + size);
      this.#end += size;
    }
    chunk[0] = flags;
    chunk.set(body, 1);
    this.#chunks.push(chunk);
  }
}
