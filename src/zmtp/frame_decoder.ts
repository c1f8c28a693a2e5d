/**
 * Incremental decoder for ZMTP 3.x frames: bytes in any split, whole messages and commands out.
 *
 * @module
 */

import { FLAG_COMMAND, FLAG_LONG, FLAG_MORE } from "./constants.ts";
import { ZmtpError } from "./errors.ts";

/**
 * A frame body larger than this is not allocated from its declared size: its buffer starts at
 * {@linkcode GROWING_START} and doubles as bytes arrive, so a peer that lies about a length
 * costs at most about twice the bytes it really sends.
 */
const EAGER_ALLOCATION_LIMIT = 4 * 1024 * 1024;
const GROWING_START = 64 * 1024;
const TWO_POW_32 = 0x1_0000_0000;
/** Bodies with at least this much left are worth reading into directly. */
const DIRECT_READ_MIN = 64 * 1024;
/**
 * Short frames (up to 255 bytes) are copied into a block of this size shared by every decoder
 * instead of a buffer each, the way Node pools small Buffers: allocating an ArrayBuffer costs
 * far more than copying 64 bytes (about 1 µs against 50 ns under Deno), and it was most of a
 * small message's receive cost. A frame kept keeps its block (8 KiB at most) alive; an idle
 * connection keeps none.
 */
const POOL_SIZE = 8 * 1024;
/** Largest body carved from the shared block: what a short frame can hold. */
const POOLED_MAX = 255;

/** The block short frames are carved from (one per thread: JavaScript runs one at a time). */
let pool = new Uint8Array(0);
let poolBuffer: ArrayBufferLike = pool.buffer; // read once: `.buffer` is not free under Node
let poolUsed = 0;

const EMPTY_FRAME = new Uint8Array(0);

/** `size` bytes of the shared block, 8-byte aligned; a fresh block when it is full. */
function carve(size: number): Uint8Array {
  // Nothing can be written into an empty frame: one serves every delimiter.
  if (size === 0) return EMPTY_FRAME;
  let at = poolUsed;
  if (at + size > pool.length) {
    pool = new Uint8Array(POOL_SIZE);
    poolBuffer = pool.buffer;
    at = 0;
  }
  poolUsed = (at + size + 7) & ~7;
  return new Uint8Array(poolBuffer, at, size);
}

const enum State {
  Flags,
  Size,
  Body,
}

/** Limits the decoder enforces on what a peer sends. */
export interface DecoderLimits {
  /** Largest sum of frame sizes in one message, in bytes. */
  maxMessageSize: number;
  /** Largest number of frames in one message. */
  maxFrames: number;
}

/** Where the decoder delivers what it decoded. */
export interface DecoderSink {
  /**
   * A complete multipart message. Frames are copies the receiver owns; short ones (up to 255
   * bytes) share an 8 KiB block with other frames (see `byteOffset`), never written again.
   */
  message(frames: Uint8Array[]): void;
  /** A complete command frame body (name length, name, data). */
  command(body: Uint8Array): void;
}

/**
 * Decodes a stream of ZMTP frames. Chunks passed to {@linkcode FrameDecoder.feed} are only read
 * during the call: every delivered frame is a copy, so the caller may reuse its read buffer.
 * A message is delivered only once its last frame is complete; a connection that drops midway
 * delivers nothing of it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { FrameDecoder } from "./frame_decoder.ts";
 * const got: Uint8Array[][] = [];
 * const decoder = new FrameDecoder({ maxMessageSize: 1024, maxFrames: 16 }, {
 *   message: (frames) => got.push(frames),
 *   command: () => {},
 * });
 * decoder.feed(new Uint8Array([0x01, 0x01, 0x61, 0x00, 0x00]));
 * assert.deepEqual(got, [[new Uint8Array([0x61]), new Uint8Array(0)]]); // "a" and ""
 * ```
 */
export class FrameDecoder {
  #limits: DecoderLimits;
  #sink: DecoderSink;
  #state = State.Flags;
  #flags = 0;
  #header = new Uint8Array(8);
  #headerFill = 0;
  #headerNeed = 0;
  #size = 0;
  #body: Uint8Array | null = null;
  #bodyFill = 0;
  // The frames of the message being received, in a scratch array reused from message to
  // message: an array grown by push() from empty allocates room for 17 frames.
  #frames: (Uint8Array | undefined)[] = [];
  #frameCount = 0;
  #messageSize = 0;
  #lastWasLarge = false;
  #headerScratch = new Uint8Array(16);

  /** Creates a decoder with the given limits that delivers into `sink`. */
  constructor(limits: DecoderLimits, sink: DecoderSink) {
    this.#limits = limits;
    this.#sink = sink;
  }

  /**
   * Where the next bytes from the peer may be read straight into, skipping a copy: the unfilled
   * rest of a large frame body being received, or null. Bytes read there are then passed to
   * {@linkcode FrameDecoder.feed} as the view they were read into.
   */
  readTarget(): Uint8Array | null {
    const body = this.#body;
    if (this.#state === State.Body && body !== null) {
      return body.length - this.#bodyFill < DIRECT_READ_MIN ? null : body.subarray(this.#bodyFill);
    }
    // After a large frame, another is likely: read just its header, so that its body can then
    // be read in place instead of being copied out of a large shared read.
    return this.#lastWasLarge ? this.#headerScratch : null;
  }

  /** True when no frame or message is partly received. */
  get idle(): boolean {
    return this.#state === State.Flags && this.#frameCount === 0;
  }

  /**
   * Decodes a chunk of bytes.
   *
   * @throws {ZmtpError} when the peer exceeds a limit; the connection must then be dropped
   */
  feed(chunk: Uint8Array): void {
    const len = chunk.length;
    let pos = 0;
    while (pos < len) {
      if (this.#state === State.Flags) {
        // Fast path: a whole short frame inside this chunk.
        const flags = chunk[pos];
        if ((flags & FLAG_LONG) === 0 && pos + 2 <= len) {
          const size = chunk[pos + 1];
          if (pos + 2 + size <= len) {
            this.#flags = flags;
            this.#checkSize(size);
            this.#frame(this.#pooled(chunk, pos + 2, size));
            pos += 2 + size;
            continue;
          }
        }
        this.#flags = flags;
        this.#headerNeed = (flags & FLAG_LONG) !== 0 ? 8 : 1;
        this.#headerFill = 0;
        this.#state = State.Size;
        pos++;
      } else if (this.#state === State.Size) {
        const take = Math.min(this.#headerNeed - this.#headerFill, len - pos);
        this.#header.set(chunk.subarray(pos, pos + take), this.#headerFill);
        this.#headerFill += take;
        pos += take;
        if (this.#headerFill < this.#headerNeed) break;
        const h = this.#header;
        let size: number;
        if (this.#headerNeed === 1) {
          size = h[0];
        } else {
          // Unsigned 64-bit, read as two halves: a length past 2^53 is rejected below anyway.
          const hi = ((h[0] << 24) | (h[1] << 16) | (h[2] << 8) | h[3]) >>> 0;
          const lo = ((h[4] << 24) | (h[5] << 16) | (h[6] << 8) | h[7]) >>> 0;
          size = hi * TWO_POW_32 + lo;
        }
        this.#checkSize(size);
        this.#size = size;
        this.#bodyFill = 0;
        if (size === 0) {
          this.#state = State.Flags;
          this.#frame(this.#allocate(0));
        } else {
          this.#state = State.Body;
          this.#body = this.#allocate(size);
        }
      } else {
        let target = this.#body!;
        if (this.#bodyFill === target.length) {
          const grown = new Uint8Array(Math.min(this.#size, target.length * 2));
          grown.set(target);
          this.#body = target = grown;
        }
        const take = Math.min(target.length - this.#bodyFill, len - pos);
        // Skip the copy when the bytes were read in place (see readTarget).
        const inPlace = pos === 0 && chunk.buffer === target.buffer &&
          chunk.byteOffset === target.byteOffset + this.#bodyFill;
        if (!inPlace) target.set(chunk.subarray(pos, pos + take), this.#bodyFill);
        this.#bodyFill += take;
        pos += take;
        if (this.#bodyFill < this.#size) continue;
        this.#body = null;
        this.#state = State.Flags;
        this.#frame(target);
      }
    }
  }

  /**
   * A copy of `size` bytes of `chunk` from `start` (a whole short frame), in the shared block.
   */
  #pooled(chunk: Uint8Array, start: number, size: number): Uint8Array {
    const body = this.#allocate(size);
    // A loop costs about 1 ns a byte; a view and set() about 40 ns together.
    if (size <= 32) {
      for (let i = 0; i < size; i++) body[i] = chunk[start + i];
    } else {
      body.set(new Uint8Array(chunk.buffer, chunk.byteOffset + start, size));
    }
    return body;
  }

  /**
   * Room for a frame body: carved from the shared block when short, 8-byte aligned so that a
   * Float64Array may view its bytes in place; a buffer of its own otherwise.
   */
  #allocate(size: number): Uint8Array {
    if (size > POOLED_MAX) {
      return new Uint8Array(size <= EAGER_ALLOCATION_LIMIT ? size : GROWING_START);
    }
    return carve(size);
  }

  #checkSize(size: number): void {
    if ((this.#flags & FLAG_COMMAND) !== 0) {
      if (size > this.#limits.maxMessageSize) {
        throw new ZmtpError(
          "message-too-large",
          `command frame declares ${size} bytes, limit is ${this.#limits.maxMessageSize}`,
        );
      }
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
  }

  #frame(body: Uint8Array): void {
    this.#lastWasLarge = body.length >= DIRECT_READ_MIN;
    const flags = this.#flags;
    if ((flags & FLAG_COMMAND) !== 0) {
      if ((flags & FLAG_MORE) !== 0) {
        throw new ZmtpError("malformed-command", "command frame has the MORE flag set");
      }
      this.#sink.command(body);
      return;
    }
    const scratch = this.#frames;
    const n = ++this.#frameCount;
    scratch[n - 1] = body;
    if ((flags & FLAG_MORE) !== 0) {
      if (n >= this.#limits.maxFrames) {
        throw new ZmtpError(
          "too-many-frames",
          `message has more than ${this.#limits.maxFrames} frames`,
        );
      }
      return;
    }
    // Literals of the exact size for the usual shapes; the scratch lets go of the frames.
    let frames: Uint8Array[];
    if (n === 1) frames = [body];
    else if (n === 2) frames = [scratch[0]!, body];
    else if (n === 3) frames = [scratch[0]!, scratch[1]!, body];
    else frames = scratch.slice(0, n) as Uint8Array[];
    for (let i = 0; i < n; i++) scratch[i] = undefined;
    this.#frameCount = 0;
    this.#messageSize = 0;
    this.#sink.message(frames);
  }
}
