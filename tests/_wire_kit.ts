/**
 * A wire-builder kit for the ZMTP tests and `scripts/fuzz.ts`: an encoder of our own for the wire
 * format (greetings, frames, commands, READY properties; written from RFC 23/37, independent of
 * `src/zmtp/`), helpers that drive the sans-IO core and decode what it wrote, byte comparisons,
 * splitters and a seeded PRNG. The fast-check properties built on it are in `_zmtp_properties.ts`.
 *
 * Nothing here touches the network or `Deno.*`: the same file runs under `node --test`.
 *
 * @module
 */

import assert from "node:assert/strict";
import process from "node:process";
import v8 from "node:v8";
import vm from "node:vm";
import { Connection, type ConnectionOptions, type PeerInfo } from "../src/zmtp/connection.ts";
import { type DecoderLimits, FrameDecoder } from "../src/zmtp/frame_decoder.ts";
import type { OutBuffer } from "../src/zmtp/out_buffer.ts";
import { ZmtpError } from "../src/zmtp/errors.ts";

// Wire constants, restated from the RFCs rather than imported, so that a wrong constant in src/
// cannot make the tests agree with it.
/** Frame flag: more frames follow. */
export const MORE = 0x01;
/** Frame flag: 8-byte size field. */
export const LONG = 0x02;
/** Frame flag: command frame. */
export const COMMAND = 0x04;
/** Largest body of a frame with a 1-byte size. */
export const SHORT_MAX = 255;
/** Bytes in a greeting. */
export const GREETING_BYTES = 64;
/** Frame bodies up to this size may be allocated from their declared size (src's choice). */
export const EAGER_ALLOCATION_BYTES = 4 * 1024 * 1024;

const encoder = new TextEncoder();
const EMPTY = new Uint8Array(0);

/** Asserts that `fn` throws a ZmtpError with the given code; returns it. */
export function throwsZmtp(fn: () => unknown, code: string): ZmtpError {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof ZmtpError, `expected ZmtpError ${code}, got ${caught}`);
  assert.equal(caught.code, code, caught.message);
  return caught;
}

/** UTF-8 bytes of a string. */
export function utf8(text: string): Uint8Array {
  return encoder.encode(text);
}

/** Concatenates byte arrays into a fresh one. */
export function concat(parts: readonly Uint8Array[]): Uint8Array {
  let size = 0;
  for (const part of parts) size += part.length;
  const out = new Uint8Array(size);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

let collect: (() => void) | undefined;

/**
 * Bytes the process keeps alive (V8 heap plus array buffers) after a full garbage collection,
 * forced through `--expose-gc` set at run time (works under Deno and Node alike).
 */
export function retainedBytes(): number {
  if (collect === undefined) {
    v8.setFlagsFromString("--expose-gc");
    collect = vm.runInNewContext("gc") as () => void;
  }
  collect();
  // Node counts the array buffers freed by a collection until the next one has run (its
  // external-memory accounting lags by a cycle): collect twice. Deno's settles after one.
  collect();
  const usage = process.memoryUsage();
  return usage.heapUsed + usage.external;
}

/** Hex dump, for assertion messages. */
export function hex(data: Uint8Array): string {
  return Array.from(data, (b) => b.toString(16).padStart(2, "0")).join(" ");
}

/** Bytes from a hex string such as `"ff 00 7f"`. */
export function fromHex(text: string): Uint8Array {
  const digits = text.replace(/\s+/g, "");
  const out = new Uint8Array(digits.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(digits.slice(2 * i, 2 * i + 2), 16);
  return out;
}

const POOL_BYTES = 256 * 1024;
let pool: Uint8Array | undefined;

/**
 * `n` bytes of a deterministic pseudo-random pattern that depends on `seed` (much cheaper than
 * fast-check's random bytes for big bodies): a copy from a fixed pool when it fits.
 */
export function pattern(n: number, seed = 0): Uint8Array {
  const offset = (seed >>> 0) % (POOL_BYTES / 2);
  if (offset + n <= POOL_BYTES) {
    pool ??= generate(POOL_BYTES, 0x5eed);
    return pool.slice(offset, offset + n);
  }
  return generate(n, seed);
}

function generate(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = (seed | 0) ^ 0x9e3779b9;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) | 0;
    out[i] = x >>> 24;
  }
  return out;
}

/** A long-form frame header: flags with LONG set and a 64-bit big-endian size. */
export function longHeader(flags: number, size: bigint): Uint8Array {
  const header = new Uint8Array(9);
  header[0] = flags | LONG;
  new DataView(header.buffer).setBigUint64(1, size);
  return header;
}

/** One encoded frame; `long` forces the 8-byte size form (default: only above 255 bytes). */
export function frame(flags: number, body: Uint8Array, long = body.length > SHORT_MAX): Uint8Array {
  const header = long ? longHeader(flags, BigInt(body.length)) : Uint8Array.of(flags, body.length);
  return concat([header, body]);
}

/** A multipart message: MORE on every frame but the last. */
export function messageBytes(frames: readonly Uint8Array[]): Uint8Array {
  return concat(frames.map((body, i) => frame(i < frames.length - 1 ? MORE : 0, body)));
}

/** A command body: name length, name, data. */
export function commandBody(name: string, data: Uint8Array = EMPTY): Uint8Array {
  const nameBytes = utf8(name);
  return concat([Uint8Array.of(nameBytes.length), nameBytes, data]);
}

/** A command frame. */
export function commandFrame(name: string, data: Uint8Array = EMPTY): Uint8Array {
  return frame(COMMAND, commandBody(name, data));
}

/** Metadata properties as READY carries them, names written exactly as given. */
export function propertyBytes(list: readonly [string, string | Uint8Array][]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const [name, value] of list) {
    const nameBytes = utf8(name);
    const valueBytes = typeof value === "string" ? utf8(value) : value;
    const size = new Uint8Array(4);
    new DataView(size.buffer).setUint32(0, valueBytes.length);
    parts.push(Uint8Array.of(nameBytes.length), nameBytes, size, valueBytes);
  }
  return concat(parts);
}

/** A READY command frame with the given properties. */
export function readyFrame(list: readonly [string, string | Uint8Array][]): Uint8Array {
  return commandFrame("READY", propertyBytes(list));
}

/** A PING command frame. */
export function pingFrame(ttl: number, context: Uint8Array = EMPTY): Uint8Array {
  return commandFrame("PING", concat([Uint8Array.of(ttl >> 8, ttl & 0xff), context]));
}

/** An ERROR command frame. */
export function errorFrame(reason: string): Uint8Array {
  const bytes = utf8(reason);
  return commandFrame("ERROR", concat([Uint8Array.of(bytes.length), bytes]));
}

/** The signature libzmq writes: 0xff, a length of 1 in bytes 1..8, 0x7f. */
export const LIBZMQ_SIGNATURE = fromHex("ff 00 00 00 00 00 00 00 01 7f");

/** Options of a peer greeting. */
export interface GreetingOptions {
  /** Major version (default 3). */
  major?: number;
  /** Minor version (default 1). */
  minor?: number;
  /** Mechanism name (default `"NULL"`), or its 20 raw bytes. */
  mechanism?: string | Uint8Array;
  /** As-server flag (default false). */
  asServer?: boolean;
  /** Signature bytes 0..9 (default libzmq's). */
  signature?: Uint8Array;
}

/** A 64-byte greeting as a peer would send it. */
export function peerGreeting(options: GreetingOptions = {}): Uint8Array {
  const out = new Uint8Array(GREETING_BYTES);
  out.set(options.signature ?? LIBZMQ_SIGNATURE, 0);
  out[10] = options.major ?? 3;
  out[11] = options.minor ?? 1;
  const mechanism = options.mechanism ?? "NULL";
  out.set(typeof mechanism === "string" ? utf8(mechanism) : mechanism, 12);
  out[32] = options.asServer ? 1 : 0;
  return out;
}

/** Everything an OutBuffer holds, as one array (empty when it holds nothing). */
export function drain(out: Pick<OutBuffer, "take">): Uint8Array {
  const taken = out.take();
  return taken === null ? EMPTY : concat(taken.chunks);
}

/** Splits `data` at the given cut points (any numbers; taken modulo the length, deduplicated). */
export function split(data: Uint8Array, cuts: readonly number[]): Uint8Array[] {
  if (data.length === 0) return [];
  const points = [...new Set(cuts.map((c) => c % (data.length + 1)))]
    .filter((c) => c > 0 && c < data.length)
    .sort((a, b) => a - b);
  const pieces: Uint8Array[] = [];
  let from = 0;
  for (const point of points) {
    pieces.push(data.subarray(from, point));
    from = point;
  }
  pieces.push(data.subarray(from));
  return pieces;
}

/** `data` one byte at a time. */
export function bytewise(data: Uint8Array): Uint8Array[] {
  return Array.from({ length: data.length }, (_, i) => data.subarray(i, i + 1));
}

/** A small seeded PRNG (mulberry32), for reproducible random splits outside fast-check. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Splits `data` into random pieces of 1..maxPiece bytes. */
export function randomSplit(data: Uint8Array, random: () => number, maxPiece = 64): Uint8Array[] {
  const pieces: Uint8Array[] = [];
  let at = 0;
  while (at < data.length) {
    const n = 1 + Math.floor(random() * maxPiece);
    pieces.push(data.subarray(at, at + n));
    at += n;
  }
  return pieces;
}

/**
 * Plays the I/O driver's read loop over `stream`: before each read it asks `readTarget` for a
 * buffer to read into (null: its own buffer, reused for every read, as the Deno adapter does),
 * reads at most `maxRead` bytes there and feeds that view. Returns how many reads went into a
 * buffer that `readTarget` supplied.
 */
export function readLoop(
  stream: Uint8Array,
  readTarget: () => Uint8Array | null,
  feed: (chunk: Uint8Array) => void,
  maxRead: number,
): number {
  const own = new Uint8Array(Math.max(1, Math.min(maxRead, 64 * 1024)));
  let direct = 0;
  let at = 0;
  while (at < stream.length) {
    const target = readTarget();
    if (target !== null) direct++;
    const buffer = target ?? own;
    const n = Math.min(buffer.length, maxRead, stream.length - at);
    if (n === 0) throw new Error("readTarget() supplied an empty buffer: a driver would spin");
    buffer.set(stream.subarray(at, at + n));
    feed(buffer.subarray(0, n));
    at += n;
  }
  return direct;
}

/** What a FrameDecoder delivered, and the error that stopped it if any. */
export interface Decoded {
  messages: Uint8Array[][];
  commands: Uint8Array[];
  error?: unknown;
}

/** Default decoder limits for tests: generous, so only the limit under test matters. */
export const ROOMY: DecoderLimits = { maxMessageSize: 64 * 1024 * 1024, maxFrames: 100_000 };

/** Byte written over a read buffer once its bytes were fed: a view kept of it shows. */
export const POISON = 0xee;

/**
 * Calls `feed` with each piece in turn, passed through one reused buffer that is overwritten
 * after each call, as a driver's read buffer is. Stops at the first error and rethrows it.
 */
export function feedReused(
  pieces: Iterable<Uint8Array>,
  feed: (chunk: Uint8Array) => void,
): void {
  let scratch = new Uint8Array(64 * 1024);
  for (const piece of pieces) {
    if (piece.length > scratch.length) scratch = new Uint8Array(piece.length);
    scratch.set(piece);
    try {
      feed(scratch.subarray(0, piece.length));
    } finally {
      scratch.fill(POISON, 0, piece.length);
    }
  }
}

/**
 * Feeds chunks to a fresh FrameDecoder and records what it delivered (stops at an error). Each
 * chunk goes through one reused read buffer that is overwritten after every feed, as a driver's
 * read buffer is: a frame that kept a view of it instead of a copy comes out corrupted.
 */
export function decode(
  chunks: Iterable<Uint8Array>,
  limits: DecoderLimits = ROOMY,
): Decoded & { decoder: FrameDecoder } {
  const messages: Uint8Array[][] = [];
  const commands: Uint8Array[] = [];
  const decoder = new FrameDecoder(limits, {
    message: (frames) => messages.push(frames),
    command: (body) => commands.push(body),
  });
  try {
    feedReused(chunks, (chunk) => decoder.feed(chunk));
  } catch (error) {
    return { messages, commands, error, decoder };
  }
  return { messages, commands, decoder };
}

/** A Connection with its events recorded. */
export interface Recorded {
  conn: Connection;
  peers: PeerInfo[];
  messages: Uint8Array[][];
}

/** Creates a Connection that records its events. */
export function recorded(options: ConnectionOptions, now = 0): Recorded {
  const peers: PeerInfo[] = [];
  const messages: Uint8Array[][] = [];
  const conn = new Connection(options, {
    ready: (peer) => peers.push(peer),
    message: (frames) => messages.push(frames),
  }, now);
  return { conn, peers, messages };
}

/**
 * Moves bytes between two connections until neither has anything to send, cutting each
 * direction's bytes with `cut` (default: whole chunks as taken).
 */
export function pump(
  a: Connection,
  b: Connection,
  now: number,
  cut: (data: Uint8Array) => Uint8Array[] = (data) => [data],
): void {
  for (let rounds = 0; rounds < 1000; rounds++) {
    const ab = a.out.take();
    const ba = b.out.take();
    if (ab === null && ba === null) return;
    if (ab !== null) feedReused(cut(concat(ab.chunks)), (piece) => b.receive(piece, now));
    if (ba !== null) feedReused(cut(concat(ba.chunks)), (piece) => a.receive(piece, now));
  }
  throw new Error("pump: connections kept talking for 1000 rounds");
}

/** Byte-wise equality of two lists of messages, with a readable failure. */
export function sameMessages(actual: Uint8Array[][], expected: readonly Uint8Array[][]): boolean {
  if (actual.length !== expected.length) return false;
  for (let m = 0; m < actual.length; m++) {
    if (actual[m].length !== expected[m].length) return false;
    for (let f = 0; f < actual[m].length; f++) {
      if (!sameBytes(actual[m][f], expected[m][f])) return false;
    }
  }
  return true;
}

/**
 * Throws a short, readable error unless `actual` and `expected` hold the same bytes. (A failing
 * `assert.deepEqual` on megabyte arrays builds a diff of every element and can exhaust memory.)
 */
export function assertBytes(actual: Uint8Array, expected: Uint8Array, label = "bytes"): void {
  if (sameBytes(actual, expected)) return;
  let at = 0;
  while (at < actual.length && at < expected.length && actual[at] === expected[at]) at++;
  throw new Error(
    `${label}: ${actual.length} bytes, expected ${expected.length}; first difference at ${at}: ` +
      `[${hex(actual.subarray(at, at + 8))}] vs [${hex(expected.subarray(at, at + 8))}]`,
  );
}

/** Byte-wise equality. */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Checks that what a Connection sent is a well-formed ZMTP stream from our side: our greeting,
 * then command frames only (we send no message in these properties), each a command we know.
 * Returns the command names.
 */
export function checkOurStream(bytes: Uint8Array): string[] {
  if (bytes.length < GREETING_BYTES) {
    throw new Error(`we sent ${bytes.length} bytes, less than a greeting`);
  }
  if (bytes[0] !== 0xff || bytes[9] !== 0x7f || bytes[10] !== 3) {
    throw new Error(`our greeting is malformed: ${hex(bytes.subarray(0, 12))}`);
  }
  const decoded = decode([bytes.subarray(GREETING_BYTES)], {
    maxMessageSize: Number.MAX_SAFE_INTEGER,
    maxFrames: Number.MAX_SAFE_INTEGER,
  });
  if (decoded.error !== undefined) throw new Error(`we sent a malformed frame: ${decoded.error}`);
  if (decoded.messages.length > 0) throw new Error("we sent a message nobody asked for");
  if (!decoded.decoder.idle) throw new Error("we sent a partial frame");
  return decoded.commands.map((body) => {
    const name = new TextDecoder().decode(body.subarray(1, 1 + body[0]));
    if (!["READY", "PING", "PONG", "ERROR"].includes(name)) {
      throw new Error(`we sent an unknown command ${name}`);
    }
    if (name === "PONG" && body.length - 5 > 16) throw new Error("we sent an oversized PONG");
    return name;
  });
}
