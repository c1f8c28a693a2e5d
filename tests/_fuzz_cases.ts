/**
 * Shared by the ZMTP tests and `scripts/fuzz.ts`: an encoder of our own for the wire format
 * (written from RFC 23/37, independent of `src/zmtp/`), helpers that drive the sans-IO core, and
 * the fast-check properties the fuzzer runs.
 *
 * Nothing here touches the network or `Deno.*`: the same file runs under `node --test`.
 *
 * @module
 */

import fc from "fast-check";
import assert from "node:assert/strict";
import process from "node:process";
import v8 from "node:v8";
import vm from "node:vm";
import { Connection, type ConnectionOptions, type PeerInfo } from "../src/zmtp/connection.ts";
import { type DecoderLimits, FrameDecoder } from "../src/zmtp/frame_decoder.ts";
import { OutBuffer } from "../src/zmtp/out_buffer.ts";
import { ZmtpError } from "../src/zmtp/errors.ts";
import type { SocketType } from "../src/zmtp/socket_type.ts";

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

// ---------------------------------------------------------------------------------------------
// Arbitraries

/** A frame body: mostly small, some around the 255/256 boundary, a few above 16 KiB. */
export const bodyArb: fc.Arbitrary<Uint8Array> = fc.oneof(
  { weight: 8, arbitrary: fc.uint8Array({ maxLength: 24 }) },
  {
    weight: 2,
    arbitrary: fc.tuple(fc.integer({ min: 250, max: 300 }), fc.integer()).map(([n, s]) =>
      pattern(n, s)
    ),
  },
  {
    weight: 1,
    arbitrary: fc.tuple(fc.integer({ min: 16 * 1024 - 4, max: 70_000 }), fc.integer()).map((
      [n, s],
    ) => pattern(n, s)),
  },
);

/** A multipart message of 1 to 6 frames. */
export const messageArb: fc.Arbitrary<Uint8Array[]> = fc.array(bodyArb, {
  minLength: 1,
  maxLength: 6,
});

/** A compatible pair of socket types: ours, then the peer's. */
const pairArb = fc.constantFrom<[SocketType, SocketType]>(
  ["DEALER", "ROUTER"],
  ["ROUTER", "DEALER"],
  ["DEALER", "DEALER"],
  ["ROUTER", "ROUTER"],
  ["REQ", "REP"],
  ["PUSH", "PULL"],
  ["PAIR", "PAIR"],
);

const commandNameArb = fc.oneof(
  fc.constantFrom("READY", "PING", "PONG", "ERROR", "SUBSCRIBE", "CANCEL", "HELLO", "ready"),
  fc.string({ maxLength: 12 }),
);

/** A command frame body, mostly plausible, sometimes broken. */
const commandBodyArb: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.tuple(commandNameArb, fc.uint8Array({ maxLength: 40 })).map(([n, d]) => commandBody(n, d)),
  fc.array(
    fc.tuple(
      fc.constantFrom("Socket-Type", "socket-type", "Identity", "IDENTITY", "Resource", "X"),
      fc.oneof(
        fc.constantFrom("DEALER", "ROUTER", "PUB", "REQ", "REP", "PAIR", "").map(utf8),
        fc.uint8Array({ maxLength: 20 }),
      ),
    ),
    { maxLength: 4 },
  ).map((list) => commandBody("READY", propertyBytes(list))),
  fc.tuple(fc.integer({ min: 0, max: 0xffff }), fc.uint8Array({ maxLength: 20 })).map((
    [ttl, ctx],
  ) => commandBody("PING", concat([Uint8Array.of(ttl >> 8, ttl & 0xff), ctx]))),
  fc.uint8Array({ maxLength: 48 }),
);

/** A declared frame size that may be a lie, up to 2^64 - 1. */
export const hugeSizeArb: fc.Arbitrary<bigint> = fc.oneof(
  fc.constantFrom(
    2n ** 62n,
    2n ** 63n,
    2n ** 64n - 1n,
    2n ** 32n + 1n,
    2n ** 32n,
    2n ** 53n + 1n,
    2n ** 31n,
    BigInt(EAGER_ALLOCATION_BYTES),
    BigInt(EAGER_ALLOCATION_BYTES + 1),
    256n * 1024n * 1024n + 1n,
  ),
  fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
  fc.bigInt({ min: 0n, max: 1n << 24n }),
);

/** One piece of a random input stream. */
const tokenArb: fc.Arbitrary<Uint8Array> = fc.oneof(
  { weight: 2, arbitrary: fc.uint8Array({ maxLength: 32 }) },
  {
    weight: 4,
    arbitrary: fc.tuple(
      fc.oneof(fc.integer({ min: 0, max: 7 }), fc.integer({ min: 0, max: 255 })),
      fc.uint8Array({ maxLength: 40 }),
      fc.boolean(),
    ).map(([flags, body, long]) => frame(flags & ~LONG, body, long)),
  },
  {
    weight: 3,
    arbitrary: fc.tuple(commandBodyArb, fc.boolean()).map(([body, long]) =>
      frame(COMMAND, body, long)
    ),
  },
  {
    weight: 1,
    arbitrary: fc.tuple(fc.integer({ min: 0, max: 7 }), hugeSizeArb).map(([flags, size]) =>
      longHeader(flags, size)
    ),
  },
);

/** Decoder limits: mostly defaults, sometimes tight, sometimes none at all. */
const limitsArb = fc.record({
  maxMessageSize: fc.oneof(
    fc.constant(undefined),
    fc.integer({ min: 0, max: 2000 }),
    fc.constant(Number.POSITIVE_INFINITY),
  ),
  maxFrames: fc.oneof(fc.constant(undefined), fc.integer({ min: 1, max: 8 })),
});

// ---------------------------------------------------------------------------------------------
// Properties

/** Inputs of the random-input property. */
export interface RandomInputCase {
  start: "nothing" | "greeting" | "ready" | "bent-greeting";
  pair: [SocketType, SocketType];
  peerMinor: number;
  tokens: Uint8Array[];
  cuts: number[];
  limits: { maxMessageSize?: number; maxFrames?: number };
  timers: { heartbeatInterval: number; heartbeatTimeout: number; handshakeTimeout: number };
  ticks: number[];
  bend: [number, number];
  reader: boolean;
}

const randomInputArb: fc.Arbitrary<RandomInputCase> = fc.record({
  start: fc.constantFrom("nothing", "greeting", "ready", "ready", "ready", "bent-greeting"),
  pair: pairArb,
  peerMinor: fc.constantFrom(0, 1, 2),
  tokens: fc.array(tokenArb, { maxLength: 12 }),
  cuts: fc.array(fc.nat(), { maxLength: 8 }),
  limits: limitsArb,
  timers: fc.record({
    heartbeatInterval: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 500 })),
    heartbeatTimeout: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 500 })),
    handshakeTimeout: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 500 })),
  }),
  ticks: fc.array(fc.integer({ min: 0, max: 400 }), { maxLength: 6 }),
  bend: fc.tuple(fc.integer({ min: 0, max: GREETING_BYTES - 1 }), fc.integer({ min: 1, max: 255 })),
  reader: fc.boolean(),
});

/**
 * Property (a): arbitrary bytes, after nothing, a greeting, or a greeting and READY, never make a
 * Connection throw anything but a ZmtpError; after an error it stays closed; what it delivers
 * respects its limits; what it sends is well-formed.
 */
export function randomInputHolds(c: RandomInputCase): void {
  const [ours, theirs] = c.pair;
  const maxFrames = c.limits.maxFrames ?? 65_536;
  const maxMessageSize = c.limits.maxMessageSize ?? 256 * 1024 * 1024;
  const { conn, peers, messages } = recorded({
    socketType: ours,
    routingId: utf8("me"),
    ...c.limits,
    ...c.timers,
  });
  const prefix: Uint8Array[] = [];
  if (c.start !== "nothing") {
    const greeting = peerGreeting({ minor: c.peerMinor });
    if (c.start === "bent-greeting") greeting[c.bend[0]] ^= c.bend[1];
    prefix.push(greeting);
  }
  if (c.start === "ready") prefix.push(readyFrame([["Socket-Type", theirs]]));
  const stream = concat([...prefix, ...c.tokens]);
  const pieces = split(stream, c.cuts);
  let now = 0;
  let failed: ZmtpError | undefined;
  const step = (action: () => void) => {
    try {
      action();
    } catch (error) {
      if (!(error instanceof ZmtpError)) throw error;
      if (failed !== undefined) throw new Error(`a second error after ${failed.code}: ${error}`);
      failed = error;
    }
    if (failed !== undefined && conn.state !== "closed") {
      throw new Error(`state is ${conn.state} after ${failed.code}`);
    }
  };
  if (c.reader) {
    // Read the way the driver does, into readTarget() when offered (a lying length may get
    // the rest of the stream read into its body).
    const maxRead = 1 + ((c.cuts[0] ?? 65_536) % 70_000);
    readLoop(
      stream,
      () => conn.readTarget(),
      (chunk) => step(() => conn.receive(chunk, now)),
      maxRead,
    );
    pieces.length = 0;
  }
  const scratch = new Uint8Array(stream.length);
  for (let i = 0; i < pieces.length; i++) {
    // Through a reused buffer, poisoned after each call, as a driver's read buffer is.
    const chunk = scratch.subarray(0, pieces[i].length);
    chunk.set(pieces[i]);
    step(() => conn.receive(chunk, now));
    chunk.fill(POISON);
    if (i < c.ticks.length) {
      now += c.ticks[i];
      step(() => conn.tick(now));
    }
  }
  step(() => conn.tick(now + 10_000));
  if (peers.length > 1) throw new Error(`ready fired ${peers.length} times`);
  if (messages.length > 0 && peers.length === 0) throw new Error("message before ready");
  for (const frames of messages) {
    if (frames.length > maxFrames) throw new Error(`${frames.length} frames > ${maxFrames}`);
    const size = frames.reduce((sum, f) => sum + f.length, 0);
    if (size > maxMessageSize) throw new Error(`${size} bytes > ${maxMessageSize}`);
  }
  // A READY is a command frame, and command frames are held to maxMessageSize too (as libzmq's
  // ZMQ_MAXMSGSIZE does): only a limit above the READY's size guarantees a clean handshake.
  const roomy = (c.limits.maxMessageSize ?? Infinity) >= 64;
  if (c.start === "ready" && c.tokens.length === 0 && roomy && failed !== undefined) {
    // A clean handshake may only be ended by a timer.
    if (!failed.code.endsWith("-timeout")) throw new Error(`clean handshake failed: ${failed}`);
  }
  checkOurStream(drain(conn.out));
}

/** Property (a) as a fast-check property. */
export function randomInputProperty(): fc.IPropertyWithHooks<[RandomInputCase]> {
  return fc.property(randomInputArb, randomInputHolds);
}

/** Inputs of the split round-trip property. */
export interface RoundTripCase {
  messages: Uint8Array[][];
  commands: { before: number; body: Uint8Array }[];
  takeAfter: number[];
  cuts: number[];
}

const roundTripArb: fc.Arbitrary<RoundTripCase> = fc.record({
  messages: fc.array(messageArb, { minLength: 1, maxLength: 8 }),
  commands: fc.array(
    fc.record({ before: fc.nat(), body: fc.uint8Array({ minLength: 1, maxLength: 300 }) }),
    { maxLength: 3 },
  ),
  takeAfter: fc.array(fc.nat(), { maxLength: 4 }),
  cuts: fc.array(fc.nat(), { maxLength: 30 }),
});

/**
 * Property (b): messages and commands encoded by OutBuffer are exactly the bytes our reference
 * encoder writes, and decode to themselves however the stream is split — through a bare
 * FrameDecoder and through a Connection after a handshake.
 */
export function roundTripHolds(c: RoundTripCase): void {
  const out = new OutBuffer();
  const expected: Uint8Array[] = [];
  const expectedCommands: Uint8Array[] = [];
  const taken: Uint8Array[] = [];
  const takes = new Set(c.takeAfter.map((n) => n % c.messages.length));
  for (let m = 0; m < c.messages.length; m++) {
    for (const command of c.commands) {
      if (command.before % c.messages.length === m) {
        out.command(command.body);
        expected.push(frame(COMMAND, command.body));
        expectedCommands.push(command.body);
      }
    }
    out.message(c.messages[m]);
    expected.push(messageBytes(c.messages[m]));
    if (takes.has(m)) taken.push(drain(out));
  }
  taken.push(drain(out));
  const stream = concat(taken);
  const reference = concat(expected);
  if (!sameBytes(stream, reference)) {
    throw new Error(`OutBuffer wrote other bytes than the reference encoder`);
  }
  const decoded = decode(split(stream, c.cuts));
  if (decoded.error !== undefined) throw decoded.error;
  if (!sameMessages(decoded.messages, c.messages)) throw new Error("decoder changed the messages");
  if (!sameMessages([decoded.commands], [expectedCommands])) throw new Error("commands differ");
  if (!decoded.decoder.idle) throw new Error("decoder not idle after whole messages");

  // The same bytes through a Connection, after greeting and READY, split the same way.
  const { conn, messages } = recorded({ socketType: "DEALER" });
  // The random command bodies above could be PINGs or ERRORs that a Connection acts on: this
  // leg carries the messages only.
  const onlyMessages = concat([
    peerGreeting(),
    readyFrame([["Socket-Type", "ROUTER"]]),
    ...c.messages.map(messageBytes),
  ]);
  // Read the way the driver reads: into readTarget() when the connection offers one (the rest
  // of a large frame body), else into one reused buffer, at most maxRead bytes a time.
  const maxRead = 1 + ((c.cuts[0] ?? 70_000) % 100_000);
  readLoop(onlyMessages, () => conn.readTarget(), (chunk) => conn.receive(chunk, 0), maxRead);
  if (!sameMessages(messages, c.messages)) throw new Error("Connection changed the messages");
}

/** Property (b) as a fast-check property. */
export function roundTripProperty(): fc.IPropertyWithHooks<[RoundTripCase]> {
  return fc.property(roundTripArb, roundTripHolds);
}

/** Inputs of the connection-pair property. */
export interface PairCase {
  pair: [SocketType, SocketType];
  toB: Uint8Array[][];
  toA: Uint8Array[][];
  maxPiece: number;
  seed: number;
}

const pairCaseArb: fc.Arbitrary<PairCase> = fc.record({
  pair: pairArb,
  toB: fc.array(messageArb, { maxLength: 5 }),
  toA: fc.array(messageArb, { maxLength: 5 }),
  maxPiece: fc.oneof(
    { weight: 1, arbitrary: fc.integer({ min: 1, max: 8 }) },
    { weight: 4, arbitrary: fc.integer({ min: 9, max: 70_000 }) },
  ),
  seed: fc.integer(),
});

/**
 * Property (b'): two Connections wired to each other finish the handshake and carry messages
 * both ways unchanged, whatever the chunking between them.
 */
export function pairHolds(c: PairCase): void {
  const a = recorded({ socketType: c.pair[0], routingId: utf8("a") });
  const b = recorded({ socketType: c.pair[1], routingId: utf8("b") });
  const random = prng(c.seed);
  const cut = (data: Uint8Array) => randomSplit(data, random, c.maxPiece);
  pump(a.conn, b.conn, 0, cut);
  if (a.conn.state !== "ready" || b.conn.state !== "ready") throw new Error("handshake stalled");
  if (a.peers[0].socketType !== c.pair[1] || b.peers[0].socketType !== c.pair[0]) {
    throw new Error("wrong peer socket type");
  }
  for (const m of c.toB) a.conn.send(m);
  for (const m of c.toA) b.conn.send(m);
  // Byte-sized pieces of 100 kB would make this property crawl; split-round-trip covers them.
  pump(
    a.conn,
    b.conn,
    0,
    (data) => data.length > 4096 ? randomSplit(data, random, 4096) : cut(data),
  );
  if (!sameMessages(b.messages, c.toB)) throw new Error("a → b changed the messages");
  if (!sameMessages(a.messages, c.toA)) throw new Error("b → a changed the messages");
}

/** Property (b') as a fast-check property. */
export function pairProperty(): fc.IPropertyWithHooks<[PairCase]> {
  return fc.property(pairCaseArb, pairHolds);
}

/** One edit of a valid stream. */
export type Mutation =
  | { kind: "flip"; at: number; mask: number }
  | { kind: "truncate"; at: number }
  | { kind: "huge"; frame: number; size: bigint }
  | { kind: "insert"; at: number; bytes: Uint8Array }
  | { kind: "delete"; at: number; count: number };

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({
    kind: fc.constant("flip" as const),
    at: fc.nat(),
    mask: fc.integer({ min: 1, max: 255 }),
  }),
  fc.record({ kind: fc.constant("truncate" as const), at: fc.nat() }),
  fc.record({ kind: fc.constant("huge" as const), frame: fc.nat(), size: hugeSizeArb }),
  fc.record({
    kind: fc.constant("insert" as const),
    at: fc.nat(),
    bytes: fc.uint8Array({ minLength: 1, maxLength: 12 }),
  }),
  fc.record({
    kind: fc.constant("delete" as const),
    at: fc.nat(),
    count: fc.integer({ min: 1, max: 12 }),
  }),
);

/** Inputs of the mutated-stream property. */
export interface MutatedCase {
  messages: Uint8Array[][];
  pings: number[];
  mutations: Mutation[];
  cuts: number[];
  limit: "default" | "none" | "tight";
  slack: number;
  reader: boolean;
}

const mutatedArb: fc.Arbitrary<MutatedCase> = fc.record({
  messages: fc.array(messageArb, { minLength: 1, maxLength: 6 }),
  pings: fc.array(fc.nat(), { maxLength: 2 }),
  mutations: fc.array(mutationArb, { minLength: 1, maxLength: 3 }),
  cuts: fc.array(fc.nat(), { maxLength: 12 }),
  limit: fc.constantFrom("default", "none", "tight"),
  slack: fc.integer({ min: 0, max: 3 }),
  reader: fc.boolean(),
});

/** Extra external memory a mutated case may use beyond 4 × its stream size. */
const MEMORY_SLACK = 2 * 1024 * 1024;

/**
 * Property (c): a valid stream (greeting, READY, messages, PINGs) with bytes flipped, inserted or
 * deleted, cut short, or frame lengths set to huge values, only ever yields a ZmtpError or
 * messages within the limits; messages wholly before the first edit arrive unchanged, a cut
 * stream delivers exactly its whole messages, and memory stays bounded by the bytes received
 * (a frame declaring 2^62 bytes allocates nothing of the sort).
 */
export function mutatedHolds(c: MutatedCase): void {
  // Build the stream, remembering where each frame header starts and each message ends.
  const parts: Uint8Array[] = [peerGreeting(), readyFrame([["Socket-Type", "ROUTER"]])];
  const headers: number[] = [GREETING_BYTES];
  const ends: number[] = [];
  let at = parts[0].length + parts[1].length;
  const pings = new Set(c.pings.map((n) => n % c.messages.length));
  for (let m = 0; m < c.messages.length; m++) {
    if (pings.has(m)) {
      const ping = pingFrame(0, Uint8Array.of(m));
      headers.push(at);
      parts.push(ping);
      at += ping.length;
    }
    const frames = c.messages[m];
    for (let f = 0; f < frames.length; f++) {
      const bytes = frame(f < frames.length - 1 ? MORE : 0, frames[f]);
      headers.push(at);
      parts.push(bytes);
      at += bytes.length;
    }
    ends.push(at);
  }
  const readyBody = parts[1].length - 2;
  let stream = concat(parts);
  const original = stream.length;

  // Apply edits from the end backwards so that each one's position is in original coordinates.
  const positioned = c.mutations.map((mutation) => ({
    mutation,
    at: mutation.kind === "huge"
      ? headers[mutation.frame % headers.length]
      : mutation.at % (original + 1),
  })).sort((x, y) => y.at - x.at);
  for (const { mutation, at } of positioned) stream = applyMutation(stream, mutation, at);
  const firstEdit = positioned[positioned.length - 1].at;
  const onlyTruncated = c.mutations.every((m) => m.kind === "truncate");

  const largestMessage = Math.max(...c.messages.map((m) => m.reduce((s, f) => s + f.length, 0)));
  const mostFrames = Math.max(...c.messages.map((m) => m.length));
  const limits: { maxMessageSize?: number; maxFrames?: number } = c.limit === "default"
    ? {}
    : c.limit === "none"
    ? { maxMessageSize: Number.POSITIVE_INFINITY, maxFrames: Number.POSITIVE_INFINITY }
    // Command frames are held to maxMessageSize too (libzmq does the same with
    // ZMQ_MAXMSGSIZE), so a tight limit still has to let the READY and the PINGs through.
    : {
      maxMessageSize: Math.max(largestMessage, readyBody) + c.slack,
      maxFrames: mostFrames + c.slack,
    };
  const maxMessageSize = limits.maxMessageSize ?? 256 * 1024 * 1024;
  const maxFrames = limits.maxFrames ?? 65_536;

  const { conn, messages } = recorded({ socketType: "DEALER", ...limits });
  const pieces = split(stream, c.cuts);
  const before = process.memoryUsage().external;
  let failed: unknown;
  try {
    if (c.reader) {
      const maxRead = 1 + ((c.cuts[0] ?? 65_536) % 70_000);
      readLoop(stream, () => conn.readTarget(), (chunk) => conn.receive(chunk, 0), maxRead);
    } else {
      feedReused(pieces, (piece) => conn.receive(piece, 0));
    }
  } catch (error) {
    failed = error;
  }
  const grown = process.memoryUsage().external - before;
  if (failed !== undefined && !(failed instanceof ZmtpError)) throw failed;
  const bound = EAGER_ALLOCATION_BYTES + 4 * stream.length + MEMORY_SLACK;
  if (grown > bound) {
    throw new Error(`external memory grew by ${grown} bytes for a ${stream.length}-byte stream`);
  }
  for (const frames of messages) {
    if (frames.length > maxFrames) throw new Error(`${frames.length} frames > ${maxFrames}`);
    const size = frames.reduce((sum, f) => sum + f.length, 0);
    if (size > maxMessageSize) throw new Error(`${size} bytes > ${maxMessageSize}`);
  }
  const intact = ends.filter((end) => end <= firstEdit).length;
  if (!sameMessages(messages.slice(0, intact), c.messages.slice(0, intact))) {
    throw new Error(`the ${intact} messages before the first edit did not arrive unchanged`);
  }
  if (onlyTruncated) {
    if (failed !== undefined) throw new Error(`a truncated valid stream raised ${failed}`);
    if (messages.length !== intact) {
      throw new Error(`a stream cut at ${firstEdit} delivered ${messages.length} messages`);
    }
  }
}

/** Applies one edit at position `at` (in the coordinates of `stream`). */
export function applyMutation(stream: Uint8Array, mutation: Mutation, at: number): Uint8Array {
  switch (mutation.kind) {
    case "flip": {
      if (at >= stream.length) return stream;
      const copy = stream.slice();
      copy[at] ^= mutation.mask;
      return copy;
    }
    case "truncate":
      return stream.subarray(0, Math.min(at, stream.length));
    case "insert":
      return concat([stream.subarray(0, at), mutation.bytes, stream.subarray(at)]);
    case "delete":
      return concat([stream.subarray(0, at), stream.subarray(at + mutation.count)]);
    case "huge": {
      if (at >= stream.length) return stream;
      const flags = stream[at];
      const headerSize = (flags & LONG) !== 0 ? 9 : 2;
      return concat([
        stream.subarray(0, at),
        longHeader(flags & (MORE | COMMAND), mutation.size),
        stream.subarray(at + headerSize),
      ]);
    }
  }
}

/** Property (c) as a fast-check property. */
export function mutatedProperty(): fc.IPropertyWithHooks<[MutatedCase]> {
  return fc.property(mutatedArb, mutatedHolds);
}

/** The fuzz properties by name, in the order the fuzzer runs them. */
export const PROPERTIES: Record<string, () => fc.IPropertyWithHooks<any>> = {
  "random-input": randomInputProperty,
  "split-round-trip": roundTripProperty,
  "connection-pair": pairProperty,
  "mutated-stream": mutatedProperty,
};
