/**
 * Helpers of the security tests, and the CURVE properties that join the fuzz run (the slice in
 * tests/security_fuzz.test.ts, the long run in scripts/fuzz.ts).
 */

import fc from "fast-check";
import { Connection, type ConnectionOptions, type PeerInfo } from "../src/zmtp/connection.ts";
import { generateKeyPair, type RandomSource, type RawKeyPair } from "../src/zmtp/curve_crypto.ts";
import { curveClient, curveServer } from "../src/zmtp/curve_mechanism.ts";
import { ZmtpError } from "../src/zmtp/errors.ts";
import type { AuthOutcome, AuthRequest, Mechanism } from "../src/zmtp/mechanism.ts";
import {
  COMMAND,
  concat,
  decode,
  drain,
  feedReused,
  frame,
  peerGreeting,
  prng,
  pump,
  randomSplit,
  sameMessages,
  split,
  utf8,
} from "./_wire_kit.ts";
import { applyMutation, messageArb, type Mutation } from "./_zmtp_properties.ts";

export { COMMAND, concat, frame, peerGreeting, utf8 };

/** A connection with everything it reported. */
export interface Secured {
  conn: Connection;
  peers: PeerInfo[];
  messages: Uint8Array[][];
  requests: AuthRequest[];
}

/** A connection using `mechanism`; `authenticate` requests are recorded, not answered. */
export function secured(
  socketType: "DEALER" | "ROUTER",
  mechanism: Mechanism,
  extra: Partial<ConnectionOptions> = {},
): Secured {
  const peers: PeerInfo[] = [];
  const messages: Uint8Array[][] = [];
  const requests: AuthRequest[] = [];
  const conn = new Connection({
    socketType,
    routingId: socketType === "DEALER" ? utf8("client-1") : undefined,
    mechanism,
    ...extra,
  }, {
    ready: (peer) => peers.push(peer),
    message: (frames) => messages.push(frames),
    authenticate: (request) => requests.push(request),
  }, 0);
  return { conn, peers, messages, requests };
}

/** Long-term key pairs of a server and a client. */
export interface Keys {
  server: RawKeyPair;
  client: RawKeyPair;
}

/** Fresh long-term key pairs. */
export function freshKeys(random?: RandomSource): Keys {
  return { server: generateKeyPair(random), client: generateKeyPair(random) };
}

/** A CURVE client and server connection (not yet talking). */
export function curvePair(
  keys: Keys,
  options: { authenticate?: boolean; serverRandom?: RandomSource; heartbeat?: number } = {},
): { client: Secured; server: Secured } {
  const extra = options.heartbeat
    ? { heartbeatInterval: options.heartbeat, heartbeatTimeout: 60_000 }
    : {};
  return {
    client: secured(
      "DEALER",
      curveClient({ ...keys.client, serverKey: keys.server.publicKey }),
      extra,
    ),
    server: secured(
      "ROUTER",
      curveServer({
        ...keys.server,
        authenticate: options.authenticate ?? false,
        random: options.serverRandom,
      }),
      extra,
    ),
  };
}

/** Command bodies and messages a connection queued, after the greeting when `greeting`. */
export function sent(conn: Connection, greeting = false): {
  commands: Uint8Array[];
  messages: Uint8Array[][];
  bytes: Uint8Array;
} {
  const bytes = drain(conn.out);
  const body = greeting ? bytes.subarray(64) : bytes;
  const decoded = decode([body], { maxMessageSize: 1 << 30, maxFrames: 1 << 20 });
  if (decoded.error) throw decoded.error;
  return { commands: decoded.commands, messages: decoded.messages, bytes };
}

/** The name of a command body. */
export function commandName(body: Uint8Array): string {
  return new TextDecoder().decode(body.subarray(1, 1 + body[0]));
}

/**
 * A CURVE client driven by hand, to craft what a broken or hostile client sends: the HELLO it
 * would send, and the INITIATE that answers a given WELCOME.
 */
export class HandClient {
  readonly mechanism: Mechanism;
  #sent: Uint8Array[] = [];
  #context = {
    localProperties: new Map([["Socket-Type", utf8("DEALER")], ["Identity", utf8("hand")]]),
    sendCommand: (body: Uint8Array) => this.#sent.push(body),
  };

  /** A client with these keys (which need not match, for the garbage-key cases). */
  constructor(
    keys: { publicKey: Uint8Array; secretKey: Uint8Array; serverKey: Uint8Array },
    random?: RandomSource,
  ) {
    this.mechanism = curveClient({ ...keys, random });
  }

  /** The HELLO command body (200 bytes). */
  hello(): Uint8Array {
    this.mechanism.start(this.#context, { asServer: true });
    return this.#sent.shift()!;
  }

  /** The INITIATE body answering the server's WELCOME body. */
  initiate(welcome: Uint8Array): Uint8Array {
    const nameLength = welcome[0];
    this.mechanism.onCommand("WELCOME", welcome.subarray(1 + nameLength), this.#context);
    return this.#sent.shift()!;
  }
}

/** Our CURVE server after `greeting + HELLO` from a hand client: returns its WELCOME body. */
export function welcomeFrom(server: Secured, hello: Uint8Array): Uint8Array {
  server.conn.receive(concat([peerGreeting({ mechanism: "CURVE" }), frame(COMMAND, hello)]), 0);
  const { commands } = sent(server.conn, true);
  if (commands.length !== 1 || commandName(commands[0]) !== "WELCOME") {
    throw new Error(`expected one WELCOME, got ${commands.map(commandName)}`);
  }
  return commands[0];
}

/** Answers a pending authentication on `conn`. */
export function answer(conn: Connection, outcome: Partial<AuthOutcome> & { allow: boolean }): void {
  conn.authenticated(
    { status: outcome.allow ? 200 : 400, reason: "refused by the test", ...outcome },
    0,
  );
}

/** A seeded random source (not cryptographic): deterministic keys and nonces for fuzzing. */
export function seededRandom(seed: number): RandomSource {
  const next = prng(seed);
  return (n) => {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = Math.floor(next() * 256);
    return out;
  };
}

// ---------------------------------------------------------------------------------------------
// Fuzz properties

/** Inputs of the CURVE pair property. */
export interface CurvePairCase {
  toServer: Uint8Array[][];
  toClient: Uint8Array[][];
  maxPiece: number;
  pings: number;
  seed: number;
}

const curvePairArb: fc.Arbitrary<CurvePairCase> = fc.record({
  toServer: fc.array(messageArb, { maxLength: 4 }),
  toClient: fc.array(messageArb, { maxLength: 4 }),
  maxPiece: fc.integer({ min: 1, max: 300 }),
  pings: fc.integer({ min: 0, max: 3 }),
  seed: fc.integer(),
});

// One set of long-term keys for every case: x25519 is the slow part, and the transient keys
// (fresh in every case) are what each handshake exercises.
let pairKeys: Keys | undefined;

/**
 * Property: a CURVE client and server, whatever the chunking between them, finish the handshake
 * and carry messages and (sealed) heartbeats both ways unchanged; after the handshake every
 * frame on the wire is a MESSAGE box.
 */
export function curvePairHolds(c: CurvePairCase): void {
  pairKeys ??= freshKeys();
  const { client, server } = curvePair(pairKeys, { heartbeat: c.pings > 0 ? 10 : 0 });
  const random = prng(c.seed);
  const cut = (data: Uint8Array) => randomSplit(data, random, c.maxPiece);
  pump(client.conn, server.conn, 0, cut);
  if (client.conn.state !== "ready" || server.conn.state !== "ready") {
    throw new Error("CURVE handshake stalled");
  }
  for (const m of c.toServer) client.conn.send(m);
  for (const m of c.toClient) server.conn.send(m);
  for (let i = 1; i <= c.pings; i++) {
    client.conn.tick(i * 10);
    server.conn.tick(i * 10);
  }
  // Check the wire before delivering it: MESSAGE boxes only.
  for (const side of [client, server]) {
    const { messages, commands, bytes } = sent(side.conn);
    if (commands.length > 0) throw new Error("a command frame went out unsealed");
    for (const m of messages) {
      for (const f of m) {
        if (f.length < 33 || commandName(f) !== "MESSAGE") throw new Error("a frame is no box");
      }
    }
    const other = side === client ? server : client;
    feedReused(
      bytes.length > 4096 ? randomSplit(bytes, random, 4096) : cut(bytes),
      (piece) => other.conn.receive(piece, 50),
    );
  }
  pump(client.conn, server.conn, 60, cut);
  if (!sameMessages(server.messages, c.toServer)) throw new Error("client → server changed");
  if (!sameMessages(client.messages, c.toClient)) throw new Error("server → client changed");
}

/** The CURVE pair property for fast-check. */
export function curvePairProperty(): fc.IPropertyWithHooks<[CurvePairCase]> {
  return fc.property(curvePairArb, curvePairHolds);
}

/** A valid client stream to a seeded CURVE server: what the mutated property edits. */
interface RecordedStream {
  keys: Keys;
  stream: Uint8Array;
  /** Where each whole message ends in `stream`. */
  ends: number[];
  messages: Uint8Array[][];
}

const SERVER_SEED = 0x5eed;
const recordings = new Map<string, RecordedStream>();

function recordStream(messages: Uint8Array[][]): RecordedStream {
  const key = messages.map((m) => m.map((f) => f.length).join(".")).join("|");
  const hit = recordings.get(key);
  if (hit && hit.messages.every((m, i) => sameMessages([m], [messages[i]]))) return hit;
  const keys = pairKeys ??= freshKeys();
  const { client, server } = curvePair(keys, { serverRandom: seededRandom(SERVER_SEED) });
  // Only the client's bytes are recorded: a server seeded the same way answers them the same.
  const parts: Uint8Array[] = [];
  const ends: number[] = [];
  let length = 0;
  for (let round = 0; round < 10 && client.conn.state !== "ready"; round++) {
    const c = drain(client.conn.out);
    parts.push(c);
    length += c.length;
    server.conn.receive(c, 0);
    client.conn.receive(drain(server.conn.out), 0);
  }
  for (const m of messages) {
    client.conn.send(m);
    const bytes = drain(client.conn.out);
    parts.push(bytes);
    length += bytes.length;
    ends.push(length);
  }
  const recorded = { keys, stream: concat(parts), ends, messages };
  if (recordings.size > 64) recordings.clear();
  recordings.set(key, recorded);
  return recorded;
}

/** Inputs of the mutated CURVE stream property. */
export interface CurveMutatedCase {
  messages: Uint8Array[][];
  mutation: Exclude<Mutation, { kind: "huge" }>;
  cuts: number[];
}

const curveMutatedArb: fc.Arbitrary<CurveMutatedCase> = fc.record({
  messages: fc.array(messageArb, { minLength: 1, maxLength: 3 }),
  mutation: fc.oneof(
    fc.record({
      kind: fc.constant("flip" as const),
      at: fc.nat(),
      mask: fc.integer({ min: 1, max: 255 }),
    }),
    fc.record({ kind: fc.constant("truncate" as const), at: fc.nat() }),
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
  ),
  cuts: fc.array(fc.nat(), { maxLength: 8 }),
});

/**
 * Property: a valid CURVE client stream (greeting, HELLO, INITIATE, MESSAGE boxes) with one
 * edit, fed in any split to a CURVE server, only ever ends in a ZmtpError or in messages that
 * are exactly the first messages sent: nothing altered is ever delivered (every box is
 * authenticated), and the messages wholly before the edit arrive.
 */
export function curveMutatedHolds(c: CurveMutatedCase): void {
  const recorded = recordStream(c.messages);
  const at = c.mutation.kind === "truncate"
    ? c.mutation.at % (recorded.stream.length + 1)
    : c.mutation.at % recorded.stream.length;
  const stream = applyMutation(recorded.stream, c.mutation, at);
  const server = secured(
    "ROUTER",
    curveServer({
      ...recorded.keys.server,
      authenticate: false,
      random: seededRandom(SERVER_SEED),
    }),
  );
  let error: unknown;
  try {
    feedReused(split(stream, c.cuts), (piece) => server.conn.receive(piece, 0));
  } catch (e) {
    error = e;
  }
  if (error !== undefined && !(error instanceof ZmtpError)) throw error;
  const got = server.messages;
  if (got.length > recorded.messages.length) throw new Error("more messages than were sent");
  for (let i = 0; i < got.length; i++) {
    if (!sameMessages([got[i]], [recorded.messages[i]])) {
      throw new Error(`message ${i} was delivered altered`);
    }
  }
  // Messages wholly before the edit were delivered before the edit was reached.
  const intact = recorded.ends.filter((end) => end <= at).length;
  if (c.mutation.kind === "truncate") {
    if (error !== undefined) throw new Error(`a truncated stream raised ${error}`);
    if (got.length !== intact) {
      throw new Error(`${intact} whole messages before the cut, ${got.length} delivered`);
    }
  } else if (got.length < intact) {
    throw new Error(`${intact} messages before the edit, only ${got.length} delivered`);
  }
}

/** The mutated CURVE stream property for fast-check. */
export function curveMutatedProperty(): fc.IPropertyWithHooks<[CurveMutatedCase]> {
  return fc.property(curveMutatedArb, curveMutatedHolds);
}

/**
 * Share of an even split of the long run's cases that each CURVE property gets: a CURVE case
 * costs about 7 ms (X25519), 30 times a ZMTP one.
 */
export const CURVE_CASE_SHARE = 0.05;

/** The CURVE properties, by name, for the fuzz slice and scripts/fuzz.ts. */
// fast-check properties of different argument tuples in one table.
// deno-lint-ignore no-explicit-any
export const CURVE_PROPERTIES: Record<string, () => fc.IPropertyWithHooks<any>> = {
  "curve-pair": curvePairProperty,
  "curve-mutated-stream": curveMutatedProperty,
};
