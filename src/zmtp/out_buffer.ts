/**
 * Outgoing bytes of one connection, with frames encoded straight into a staging buffer so that
 * many small messages leave in one write.
 *
 * @module
 */

import { FLAG_COMMAND, FLAG_LONG, FLAG_MORE, SHORT_FRAME_MAX } from "./constants.ts";

/**
 * Segments start small, since a hub may hold thousands of mostly idle connections, and double
 * each time one fills, up to the largest size.
 */
const SEGMENT_MIN = 2 * 1024;
const SEGMENT_MAX = 64 * 1024;
/**
 * Bodies at least this large are not copied: the chunk list refers to the caller's bytes, which
 * must then stay unchanged until written (see {@linkcode OutBuffer.message}).
 */
export const ZERO_COPY_MIN = 64 * 1024;
/**
 * Bodies up to this size are copied in a loop rather than with `set`: under Deno a loop costs
 * about 1 ns per byte, `set` about 20 ns whatever the size (a gibbs request of 55 bytes: 51 ns
 * against 23).
 */
const SHORT_COPY_MAX = 16;

/**
 * Accumulates encoded frames until the I/O driver takes them with {@linkcode OutBuffer.take}.
 * Small bodies are copied in; bodies of {@linkcode ZERO_COPY_MIN} bytes or more are referred to,
 * saving a copy of every large message.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { OutBuffer } from "./out_buffer.ts";
 * const out = new OutBuffer();
 * out.message([new TextEncoder().encode("hi")]);
 * const taken = out.take();
 * assert.deepEqual(taken, { chunks: [new Uint8Array([0x00, 0x02, 0x68, 0x69])], messages: 1 });
 * ```
 */
export class OutBuffer {
  #segment = new Uint8Array(SEGMENT_MIN);
  #start = 0;
  #end = 0;
  // Chunks since the last take, in a scratch array reused from take to take (an array grown by
  // push() from empty allocates room for 17).
  #chunks: (Uint8Array | undefined)[] = [];
  #chunkCount = 0;
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

  /** Appends raw bytes (the greeting). */
  raw(bytes: Uint8Array): void {
    this.#reserve(bytes.length);
    this.#segment.set(bytes, this.#end);
    this.#end += bytes.length;
    this.#bytes += bytes.length;
  }

  /**
   * Appends a multipart message, one frame per entry. Returns true when a body was referred to
   * rather than copied: the caller's bytes must then stay unchanged until they are written.
   * With `copy`, every body is copied and false is returned. Frames before `start` are skipped
   * (a ROUTER's routing id).
   */
  message(frames: readonly Uint8Array[], copy = false, start = 0): boolean {
    const last = frames.length - 1;
    let referenced = false;
    for (let i = start; i <= last; i++) {
      const body = frames[i];
      const flags = i < last ? FLAG_MORE : 0;
      if (body.length <= SHORT_COPY_MAX) this.#short(flags, body);
      else referenced = this.#frame(flags, body, copy) || referenced;
    }
    this.#messages++;
    return referenced;
  }

  /** A short frame, copied byte by byte: cheaper than `set` for a few dozen bytes. */
  #short(flags: number, body: Uint8Array): void {
    const size = body.length;
    if (this.#end + 2 + size > this.#segment.length) this.#reserve(2 + size);
    const s = this.#segment;
    let at = this.#end;
    s[at++] = flags;
    s[at++] = size;
    for (let i = 0; i < size; i++) s[at++] = body[i];
    this.#end = at;
    this.#bytes += 2 + size;
  }

  /**
   * Appends one message sent as a run of single-frame messages, the way sealed frames travel
   * (CURVE's MESSAGE boxes carry the MORE flag inside). Bodies here are never the caller's.
   */
  singleFrames(bodies: readonly Uint8Array[]): void {
    for (let i = 0; i < bodies.length; i++) this.#frame(0, bodies[i]);
    this.#messages++;
  }

  /** Appends a command frame whose body is `name-length name data`. */
  command(body: Uint8Array): void {
    this.#frame(FLAG_COMMAND, body);
  }

  /**
   * Takes everything encoded so far, as chunks to write in order, and counts of the messages in
   * them. The returned chunks are never written to again.
   */
  take(): { chunks: Uint8Array[]; messages: number } | null {
    this.#cut();
    const scratch = this.#chunks;
    const n = this.#chunkCount;
    if (n === 0) return null;
    // The usual take is one chunk: a literal of its size.
    const chunks = n === 1 ? [scratch[0]!] : scratch.slice(0, n) as Uint8Array[];
    for (let i = 0; i < n; i++) scratch[i] = undefined;
    this.#chunkCount = 0;
    const messages = this.#messages;
    this.#bytes = 0;
    this.#messages = 0;
    return { chunks, messages };
  }

  #frame(flags: number, body: Uint8Array, copy = false): boolean {
    const size = body.length;
    const long = size > SHORT_FRAME_MAX;
    const header = long ? 9 : 2;
    this.#bytes += header + size;
    if (size >= ZERO_COPY_MIN) {
      if (copy) body = body.slice();
      this.#header(flags, size, long, header);
      this.#cut();
      this.#chunks[this.#chunkCount++] = body;
      return !copy;
    }
    this.#reserve(header + size);
    this.#header(flags, size, long, header);
    this.#segment.set(body, this.#end);
    this.#end += size;
    return false;
  }

  #header(flags: number, size: number, long: boolean, header: number): void {
    this.#reserve(header);
    const s = this.#segment;
    let at = this.#end;
    if (long) {
      s[at++] = flags | FLAG_LONG;
      const hi = Math.floor(size / 0x1_0000_0000);
      s[at++] = hi >>> 24;
      s[at++] = (hi >>> 16) & 0xff;
      s[at++] = (hi >>> 8) & 0xff;
      s[at++] = hi & 0xff;
      s[at++] = size >>> 24;
      s[at++] = (size >>> 16) & 0xff;
      s[at++] = (size >>> 8) & 0xff;
      s[at++] = size & 0xff;
    } else {
      s[at++] = flags;
      s[at++] = size;
    }
    this.#end = at;
  }

  /** Closes the current run of the segment as a chunk of its own. */
  #cut(): void {
    if (this.#end > this.#start) {
      const segment = this.#segment;
      // A view made directly: about half what subarray() costs (which looks up a species).
      this.#chunks[this.#chunkCount++] = new Uint8Array(
        segment.buffer,
        segment.byteOffset + this.#start,
        this.#end - this.#start,
      );
      this.#start = this.#end;
    }
  }

  #reserve(n: number): void {
    if (this.#end + n <= this.#segment.length) return;
    this.#cut();
    // Chunks already handed out may still view the old segment: never write into it again.
    const next = Math.min(this.#segment.length * 2, SEGMENT_MAX);
    this.#segment = new Uint8Array(Math.max(next, n));
    this.#start = 0;
    this.#end = 0;
  }
}
