/**
 * The fast-check properties of the sans-IO ZMTP core, run as a slice by the suite
 * (`zmtp_fuzz.test.ts`) and at length by `scripts/fuzz.ts`: random input, any split of valid
 * streams, two connections talking, mutated streams. Built on the wire kit (`_wire_kit.ts`).
 *
 * Nothing here touches the network or `Deno.*`: the same file runs under `node --test`.
 *
 * @module
 */

import fc from "fast-check";
import process from "node:process";
import { OutBuffer } from "../src/zmtp/out_buffer.ts";
import { ZmtpError } from "../src/zmtp/errors.ts";
import type { SocketType } from "../src/zmtp/socket_type.ts";
import {
  checkOurStream,
  COMMAND,
  commandBody,
  concat,
  decode,
  drain,
  EAGER_ALLOCATION_BYTES,
  feedReused,
  frame,
  GREETING_BYTES,
  LONG,
  longHeader,
  messageBytes,
  MORE,
  pattern,
  peerGreeting,
  pingFrame,
  POISON,
  prng,
  propertyBytes,
  pump,
  randomSplit,
  readLoop,
  readyFrame,
  recorded,
  sameBytes,
  sameMessages,
  split,
  utf8,
} from "./_wire_kit.ts";

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
// fast-check properties of different argument tuples in one table.
// deno-lint-ignore no-explicit-any
export const PROPERTIES: Record<string, () => fc.IPropertyWithHooks<any>> = {
  "random-input": randomInputProperty,
  "split-round-trip": roundTripProperty,
  "connection-pair": pairProperty,
  "mutated-stream": mutatedProperty,
};
