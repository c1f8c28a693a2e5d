/**
 * WebSocket framing (RFC 6455, section 5), sans-IO: {@linkcode WsFrameDecoder} turns received
 * bytes in any split into whole binary messages and control frames; {@linkcode WsOutBuffer}
 * encodes messages and control frames into few, large chunks, so that many small messages leave
 * in one write. No extension is negotiated, so RSV bits must be zero. Text messages are refused
 * rather than decoded: ZWS 2.0 carries binary messages only.
 *
 * @module
 */

import { concatBytes } from "../bytes.ts";
import { WebSocketError } from "./ws_errors.ts";

/** Frame opcodes (RFC 6455, 5.2). */
export const Opcode = {
  continuation: 0x0,
  text: 0x1,
  binary: 0x2,
  close: 0x8,
  ping: 0x9,
  pong: 0xa,
} as const;

/** Largest payload of a control frame (RFC 6455, 5.5). */
export const CONTROL_PAYLOAD_MAX = 125;
/** A payload larger than this is allocated as it arrives, not from its declared length. */
const EAGER_ALLOCATION_LIMIT = 4 * 1024 * 1024;
const GROWING_START = 64 * 1024;
/** Payloads with at least this much left are worth reading into directly. */
const DIRECT_READ_MIN = 64 * 1024;
const TWO_POW_32 = 0x1_0000_0000;

/** Where the decoder delivers what it decoded. */
export interface WsFrameSink {
  /** A whole binary message, which the receiver owns. */
  message(payload: Uint8Array): void;
  /** A control frame: close, ping or pong, with its (unmasked) payload. */
  control(opcode: number, payload: Uint8Array): void;
}

const enum State {
  Header,
  Payload,
}

/**
 * Decodes WebSocket frames. `masked` says what the peer must do: a server requires masked
 * frames from its clients, a client unmasked ones from its server (RFC 6455, 5.1).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { WsFrameDecoder } from "./ws_frame.ts";
 * const got: Uint8Array[] = [];
 * const decoder = new WsFrameDecoder({ masked: false, maxMessageSize: 1024 }, {
 *   message: (payload) => got.push(payload),
 *   control: () => {},
 * });
 * decoder.feed(new Uint8Array([0x82, 0x02, 0x00, 0x61])); // one binary message: 00 61
 * assert.deepEqual(got, [Uint8Array.of(0x00, 0x61)]);
 * ```
 */
export class WsFrameDecoder {
  #masked: boolean;
  #maxMessageSize: number;
  #sink: WsFrameSink;
  #state = State.Header;
  #header = new Uint8Array(14);
  #headerFill = 0;
  #fin = false;
  #opcode = 0;
  #mask = new Uint8Array(4);
  #size = 0;
  #payload: Uint8Array | null = null;
  #payloadFill = 0;
  /** Fragments of a message under way (between a non-final data frame and its last one). */
  #fragments: Uint8Array[] | null = null;
  #messageSize = 0;

  /** Creates a decoder delivering into `sink`. */
  constructor(options: { masked: boolean; maxMessageSize: number }, sink: WsFrameSink) {
    this.#masked = options.masked;
    this.#maxMessageSize = options.maxMessageSize;
    this.#sink = sink;
  }

  /** True when no frame or fragmented message is partly received. */
  get idle(): boolean {
    return this.#state === State.Header && this.#headerFill === 0 && this.#fragments === null;
  }

  /**
   * Where the next bytes may be read straight into: the rest of a large payload under way, or
   * null. Bytes read there are passed to {@linkcode WsFrameDecoder.feed} as that view.
   */
  readTarget(): Uint8Array | null {
    const payload = this.#payload;
    if (this.#state !== State.Payload || payload === null) return null;
    return payload.length - this.#payloadFill < DIRECT_READ_MIN
      ? null
      : payload.subarray(this.#payloadFill);
  }

  /**
   * Decodes a chunk; it is only read during the call.
   *
   * @throws {WebSocketError} when the peer breaks the framing rules or a limit
   */
  feed(chunk: Uint8Array): void {
    const len = chunk.length;
    let pos = 0;
    while (pos < len) {
      if (this.#state === State.Header) {
        // Fast path: a whole small unfragmented frame inside this chunk.
        if (this.#headerFill === 0 && pos + 2 <= len) {
          const b0 = chunk[pos];
          const b1 = chunk[pos + 1];
          const small = b1 & 0x7f;
          const headerSize = 2 + ((b1 & 0x80) !== 0 ? 4 : 0);
          if (small < 126 && pos + headerSize + small <= len) {
            this.#begin(b0, b1, small, chunk, pos + 2);
            const start = pos + headerSize;
            let payload: Uint8Array;
            if (this.#masked) {
              // Copy and unmask in one pass: small frames are the common case.
              payload = new Uint8Array(small);
              const m = this.#mask;
              for (let i = 0; i < small; i++) payload[i] = chunk[start + i] ^ m[i & 3];
            } else {
              payload = chunk.slice(start, start + small);
            }
            pos = start + small;
            this.#complete(payload);
            continue;
          }
        }
        pos = this.#readHeader(chunk, pos);
      } else {
        let target = this.#payload!;
        if (this.#payloadFill === target.length) {
          const grown = new Uint8Array(Math.min(this.#size, target.length * 2));
          grown.set(target);
          this.#payload = target = grown;
        }
        const take = Math.min(target.length - this.#payloadFill, len - pos);
        const inPlace = pos === 0 && chunk.buffer === target.buffer &&
          chunk.byteOffset === target.byteOffset + this.#payloadFill;
        if (!inPlace) target.set(chunk.subarray(pos, pos + take), this.#payloadFill);
        if (this.#masked) {
          unmask(
            target.subarray(this.#payloadFill, this.#payloadFill + take),
            this.#mask,
            this.#payloadFill,
          );
        }
        this.#payloadFill += take;
        pos += take;
        if (this.#payloadFill < this.#size) continue;
        this.#payload = null;
        this.#state = State.Header;
        this.#complete(target);
      }
    }
  }

  /** Reads header bytes from `pos`; returns the position after what it used. */
  #readHeader(chunk: Uint8Array, pos: number): number {
    const h = this.#header;
    while (pos < chunk.length) {
      h[this.#headerFill++] = chunk[pos++];
      if (this.#headerFill < 2) continue;
      const b1 = h[1];
      const lengthBytes = (b1 & 0x7f) === 126 ? 2 : (b1 & 0x7f) === 127 ? 8 : 0;
      const need = 2 + lengthBytes + ((b1 & 0x80) !== 0 ? 4 : 0);
      if (this.#headerFill === 2) this.#checkFirstBytes(h[0], b1);
      if (this.#headerFill < need) continue;
      let size = b1 & 0x7f;
      if (lengthBytes === 2) size = (h[2] << 8) | h[3];
      if (lengthBytes === 8) {
        const hi = ((h[2] << 24) | (h[3] << 16) | (h[4] << 8) | h[5]) >>> 0;
        const lo = ((h[6] << 24) | (h[7] << 16) | (h[8] << 8) | h[9]) >>> 0;
        if (hi >= 0x8000_0000) {
          throw new WebSocketError("websocket-protocol", "payload length has its top bit set");
        }
        size = hi * TWO_POW_32 + lo;
      }
      this.#headerFill = 0;
      this.#begin(h[0], b1, size, h, 2 + lengthBytes);
      if (size === 0) {
        this.#complete(new Uint8Array(0));
      } else {
        this.#state = State.Payload;
        this.#payloadFill = 0;
        this.#payload = new Uint8Array(size <= EAGER_ALLOCATION_LIMIT ? size : GROWING_START);
      }
      return pos;
    }
    return pos;
  }

  #checkFirstBytes(b0: number, b1: number): void {
    if ((b0 & 0x70) !== 0) {
      throw new WebSocketError("websocket-protocol", "RSV bits set, but no extension agreed");
    }
    if (((b1 & 0x80) !== 0) !== this.#masked) {
      throw new WebSocketError(
        "websocket-protocol",
        this.#masked ? "a client frame is not masked" : "a server frame is masked",
      );
    }
  }

  /** Checks a frame header and records its fields; `maskAt` is where its mask key is. */
  #begin(b0: number, b1: number, size: number, bytes: Uint8Array, maskAt: number): void {
    this.#checkFirstBytes(b0, b1);
    const opcode = b0 & 0x0f;
    const fin = (b0 & 0x80) !== 0;
    if (opcode >= Opcode.close) {
      if (opcode > Opcode.pong) {
        throw new WebSocketError("websocket-protocol", `unknown opcode 0x${opcode.toString(16)}`);
      }
      if (!fin || size > CONTROL_PAYLOAD_MAX) {
        throw new WebSocketError(
          "websocket-protocol",
          "a control frame is fragmented or longer than 125 bytes",
        );
      }
    } else if (opcode === Opcode.text) {
      throw new WebSocketError(
        "text-frame",
        "peer sent a text message; ZWS 2.0 carries binary messages only",
      );
    } else if (opcode === Opcode.binary) {
      if (this.#fragments !== null) {
        throw new WebSocketError(
          "websocket-protocol",
          "a new message began inside a fragmented one",
        );
      }
    } else if (opcode === Opcode.continuation) {
      if (this.#fragments === null) {
        throw new WebSocketError("websocket-protocol", "a continuation frame with no message");
      }
    } else {
      throw new WebSocketError("websocket-protocol", `unknown opcode 0x${opcode.toString(16)}`);
    }
    if (opcode < Opcode.close) {
      // Checked before anything of the payload is allocated.
      if (this.#messageSize + size > this.#maxMessageSize) {
        throw new WebSocketError(
          "message-too-large",
          `WebSocket message of ${
            this.#messageSize + size
          } bytes, limit is ${this.#maxMessageSize}`,
        );
      }
      this.#messageSize += size;
    }
    this.#fin = fin;
    this.#opcode = opcode;
    this.#size = size;
    if (this.#masked) {
      const m = this.#mask;
      m[0] = bytes[maskAt];
      m[1] = bytes[maskAt + 1];
      m[2] = bytes[maskAt + 2];
      m[3] = bytes[maskAt + 3];
    }
  }

  /** A frame's payload is complete. */
  #complete(payload: Uint8Array): void {
    const opcode = this.#opcode;
    if (opcode >= Opcode.close) {
      this.#sink.control(opcode, payload);
      return;
    }
    if (!this.#fin) {
      (this.#fragments ??= []).push(payload);
      return;
    }
    let message = payload;
    if (this.#fragments !== null) {
      this.#fragments.push(payload);
      message = concatBytes(this.#fragments, this.#messageSize);
      this.#fragments = null;
    }
    this.#messageSize = 0;
    this.#sink.message(message);
  }
}

/** Below this many bytes a byte loop beats making a word view. */
const WORDS_MIN = 256;

/** XORs `bytes` with the 4-byte mask, `offset` being the position of bytes[0] in the payload. */
export function unmask(bytes: Uint8Array, mask: Uint8Array, offset: number): void {
  const len = bytes.length;
  let i = 0;
  if (len < WORDS_MIN) {
    for (; i < len; i++) bytes[i] ^= mask[(offset + i) & 3];
    return;
  }
  // Word at a time where the bytes are 4-aligned in their buffer; byte at a time elsewhere.
  while (i < len && ((bytes.byteOffset + i) & 3) !== 0) {
    bytes[i] ^= mask[(offset + i) & 3];
    i++;
  }
  const words = (len - i) >>> 2;
  if (words > 0) {
    const m = (offset + i) & 3;
    // The mask as it lines up with this word, read little-endian as Uint32Array does here.
    const key = (mask[m] | (mask[(m + 1) & 3] << 8) | (mask[(m + 2) & 3] << 16) |
      (mask[(m + 3) & 3] << 24)) >>> 0;
    const view = new Uint32Array(bytes.buffer, bytes.byteOffset + i, words);
    for (let w = 0; w < words; w++) view[w] ^= key;
    i += words * 4;
  }
  for (; i < len; i++) bytes[i] ^= mask[(offset + i) & 3];
}

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
if (!LITTLE_ENDIAN) throw new Error("ws_frame.ts assumes a little-endian platform");

const SEGMENT_MIN = 2 * 1024;
const SEGMENT_MAX = 64 * 1024;
/** Payloads at least this large are referred to rather than copied into a segment. */
const REFER_MIN = 16 * 1024;
/** Random bytes for masks are drawn this many at a time. */
const MASK_POOL = 4096;

/**
 * Outgoing frames of one connection: headers and small payloads are encoded into shared
 * segments (never written to again once taken), large payloads referred to. With `mask` (a
 * client), every payload is masked with fresh random bytes; large payloads are masked in place,
 * so the caller hands over their ownership.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { WsOutBuffer } from "./ws_frame.ts";
 * const out = new WsOutBuffer({ mask: false });
 * out.message(new Uint8Array([0x00, 0x61]));
 * assert.deepEqual(out.take(), [Uint8Array.of(0x82, 0x02, 0x00, 0x61)]);
 * ```
 */
export class WsOutBuffer {
  #mask: boolean;
  #segment = new Uint8Array(SEGMENT_MIN);
  #start = 0;
  #end = 0;
  #chunks: Uint8Array[] = [];
  #pool = new Uint8Array(0);
  #poolAt = 0;

  /** Creates an output buffer; `mask` for a client. */
  constructor(options: { mask: boolean }) {
    this.#mask = options.mask;
  }

  /** True when nothing waits to be taken. */
  get empty(): boolean {
    return this.#chunks.length === 0 && this.#end === this.#start;
  }

  /** Appends one binary message, unfragmented. */
  message(payload: Uint8Array): void {
    this.#frame(Opcode.binary, payload);
  }

  /** Appends a control frame (close, ping, pong) with at most 125 bytes of payload. */
  control(opcode: number, payload: Uint8Array = new Uint8Array(0)): void {
    if (payload.length > CONTROL_PAYLOAD_MAX) {
      throw new RangeError("control payload over 125 bytes");
    }
    this.#frame(opcode, payload);
  }

  /** Takes everything encoded so far, as chunks to write in order, or null. */
  take(): Uint8Array[] | null {
    this.#cut();
    if (this.#chunks.length === 0) return null;
    const chunks = this.#chunks;
    this.#chunks = [];
    return chunks;
  }

  #frame(opcode: number, payload: Uint8Array): void {
    const size = payload.length;
    const header = 2 + (size < 126 ? 0 : size <= 0xffff ? 2 : 8) + (this.#mask ? 4 : 0);
    const refer = size >= REFER_MIN;
    this.#reserve(header + (refer ? 0 : size));
    const s = this.#segment;
    let at = this.#end;
    s[at++] = 0x80 | opcode;
    const maskBit = this.#mask ? 0x80 : 0;
    if (size < 126) {
      s[at++] = maskBit | size;
    } else if (size <= 0xffff) {
      s[at++] = maskBit | 126;
      s[at++] = size >>> 8;
      s[at++] = size & 0xff;
    } else {
      s[at++] = maskBit | 127;
      const hi = Math.floor(size / TWO_POW_32);
      s[at++] = hi >>> 24;
      s[at++] = (hi >>> 16) & 0xff;
      s[at++] = (hi >>> 8) & 0xff;
      s[at++] = hi & 0xff;
      s[at++] = size >>> 24;
      s[at++] = (size >>> 16) & 0xff;
      s[at++] = (size >>> 8) & 0xff;
      s[at++] = size & 0xff;
    }
    if (!this.#mask) {
      if (refer) {
        this.#end = at;
        this.#cut();
        this.#chunks.push(payload);
        return;
      }
      s.set(payload, at);
      this.#end = at + size;
      return;
    }
    if (this.#poolAt + 4 > this.#pool.length) {
      this.#pool = crypto.getRandomValues(new Uint8Array(MASK_POOL));
      this.#poolAt = 0;
    }
    const pool = this.#pool;
    const k = this.#poolAt;
    this.#poolAt += 4;
    s[at] = pool[k];
    s[at + 1] = pool[k + 1];
    s[at + 2] = pool[k + 2];
    s[at + 3] = pool[k + 3];
    const key = s.subarray(at, at + 4);
    at += 4;
    if (refer) {
      this.#end = at;
      this.#cut();
      unmask(payload, key, 0);
      this.#chunks.push(payload);
      return;
    }
    // Copy and mask in one pass.
    for (let i = 0; i < size; i++) s[at + i] = payload[i] ^ s[at - 4 + (i & 3)];
    this.#end = at + size;
  }

  #cut(): void {
    if (this.#end > this.#start) {
      this.#chunks.push(this.#segment.subarray(this.#start, this.#end));
      this.#start = this.#end;
    }
  }

  #reserve(n: number): void {
    if (this.#end + n <= this.#segment.length) return;
    this.#cut();
    const next = Math.min(this.#segment.length * 2, SEGMENT_MAX);
    this.#segment = new Uint8Array(Math.max(next, n));
    this.#start = 0;
    this.#end = 0;
  }
}
