/**
 * The CURVE mechanism (RFC 25, CurveZMQ RFC 26), wire-compatible with libzmq's: X25519 keys,
 * XSalsa20-Poly1305 boxes, transient keys for perfect forward secrecy, and every frame after
 * the handshake sealed in a MESSAGE box.
 *
 * Handshake (C/c the client's long-term keys, S/s the server's, C'/c' and S'/s' transient):
 *
 * ```
 * client                                              server
 * HELLO    version, padding, C', Box[64 zeros](C'->S)  ->
 *                                                     <-  WELCOME  Box[S' + cookie](S->C')
 * INITIATE cookie, Box[C + vouch + metadata](C'->S')   ->   vouch = Box[C' + S](C->S')
 *                                                     <-  READY    Box[metadata](S'->C')
 * MESSAGE  Box[flags + frame](C'->S')                 <->  MESSAGE  Box[flags + frame](S'->C')
 * ```
 *
 * Rules kept as libzmq keeps them: HELLO is exactly 200 bytes (72 of them zero padding, so that
 * a HELLO never draws a larger answer); each side's short nonces count up from 1 across its
 * handshake commands and MESSAGEs, and a nonce not above the peer's last one is refused; inside
 * a MESSAGE box the flags byte is 0x01 MORE, 0x02 COMMAND (heartbeats travel sealed too); the
 * MESSAGE goes out as an ordinary frame, and one arriving as a command frame is accepted too.
 * Unlike libzmq, the server also checks that the vouch names its own long-term key.
 *
 * @module
 */

import { concatBytes } from "../bytes.ts";
import {
  describeRefusal,
  encodeError,
  encodeProperties,
  parseErrorReason,
  parseProperties,
} from "./command.ts";
import {
  boxKey,
  frameBoxes,
  generateKeyPair,
  KEY_SIZE,
  MAC_SIZE,
  NOBLE_BOXES,
  NONCE_SIZE,
  open,
  randomBytes,
  type RandomSource,
  seal,
  SEAL_SCRATCH,
  sealInPlace,
} from "./curve_crypto.ts";
import { ZmtpError } from "./errors.ts";
import type {
  AuthOutcome,
  FrameBox,
  Mechanism,
  MechanismContext,
  MechanismStep,
  PeerGreeting,
} from "./mechanism.ts";
import { z85Encode } from "./z85.ts";

const ascii = (text: string) => new TextEncoder().encode(text);
const EMPTY = new Uint8Array(0);

/** Size of the whole HELLO command body, name included. */
export const HELLO_SIZE = 200;
/** Size of the whole WELCOME command body, name included. */
export const WELCOME_SIZE = 168;
/** Smallest INITIATE command body (no metadata), name included. */
export const INITIATE_MIN_SIZE = 257;
/** Smallest READY command body (no metadata), name included. */
export const READY_MIN_SIZE = 30;
/** Bytes a MESSAGE box adds to a frame: name, short nonce, MAC, flags. */
export const MESSAGE_OVERHEAD = 8 + 8 + MAC_SIZE + 1;

// Sizes of the data after each command's name ("\x05HELLO" is 6 bytes, and so on).
const HELLO_DATA = HELLO_SIZE - 6;
const WELCOME_DATA = WELCOME_SIZE - 8;
const INITIATE_MIN_DATA = INITIATE_MIN_SIZE - 9;
const READY_MIN_DATA = READY_MIN_SIZE - 6;
const HELLO_PADDING = 72;
const COOKIE_SIZE = 16 + 80;

const PREFIX_HELLO = ascii("CurveZMQHELLO---");
const PREFIX_INITIATE = ascii("CurveZMQINITIATE");
const PREFIX_READY = ascii("CurveZMQREADY---");
const PREFIX_MESSAGE_C = ascii("CurveZMQMESSAGEC");
const PREFIX_MESSAGE_S = ascii("CurveZMQMESSAGES");
const PREFIX_WELCOME = ascii("WELCOME-");
const PREFIX_COOKIE = ascii("COOKIE--");
const PREFIX_VOUCH = ascii("VOUCH---");
const MESSAGE_NAME = ascii("\x07MESSAGE");

/** Options of a CURVE client. Keys are 32 raw bytes. */
export interface CurveClientOptions {
  /** Our long-term public key (C). */
  publicKey: Uint8Array;
  /** Our long-term secret key (c). */
  secretKey: Uint8Array;
  /** The server's long-term public key (S), which the client must know beforehand. */
  serverKey: Uint8Array;
  /** Where transient keys and nonces come from (default: WebCrypto; seeded in fuzz tests). */
  random?: RandomSource;
}

/** Options of a CURVE server. Keys are 32 raw bytes. */
export interface CurveServerOptions {
  /** Our long-term public key (S). */
  publicKey: Uint8Array;
  /** Our long-term secret key (s). */
  secretKey: Uint8Array;
  /**
   * True when the socket has an authenticator to ask about each client's key. Without one any
   * client that knows our public key is admitted, as libzmq admits it without a ZAP handler.
   */
  authenticate: boolean;
  /** Where transient keys, cookie keys and nonces come from (default: WebCrypto). */
  random?: RandomSource;
}

function nonce(prefix: Uint8Array, tail: Uint8Array): Uint8Array {
  const out = new Uint8Array(NONCE_SIZE);
  out.set(prefix);
  out.set(tail, prefix.length);
  return out;
}

function shortNonce(n: number): Uint8Array {
  const out = new Uint8Array(8);
  writeNonce(out, 0, n);
  return out;
}

function writeNonce(to: Uint8Array, at: number, n: number): void {
  const hi = Math.floor(n / 0x1_0000_0000);
  to[at] = hi >>> 24;
  to[at + 1] = (hi >>> 16) & 0xff;
  to[at + 2] = (hi >>> 8) & 0xff;
  to[at + 3] = hi & 0xff;
  to[at + 4] = n >>> 24;
  to[at + 5] = (n >>> 16) & 0xff;
  to[at + 6] = (n >>> 8) & 0xff;
  to[at + 7] = n & 0xff;
}

function readU32(from: Uint8Array, at: number): number {
  return ((from[at] << 24) | (from[at + 1] << 16) | (from[at + 2] << 8) | from[at + 3]) >>> 0;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

function command(name: string, parts: readonly Uint8Array[]): Uint8Array {
  const nameBytes = ascii(name);
  return concatBytes([Uint8Array.of(nameBytes.length), nameBytes, ...parts]);
}

/**
 * The short nonces a peer has used, kept as two 32-bit halves (JavaScript numbers are exact only
 * to 2^53; a hostile peer may send any 64-bit value).
 */
class PeerNonce {
  #hi = 0;
  #lo = 0;

  /** Records the nonce at `data[at..at+8]` if it is above the last one; false otherwise. */
  advance(data: Uint8Array, at: number): boolean {
    const hi = readU32(data, at);
    const lo = readU32(data, at + 4);
    if (hi < this.#hi || (hi === this.#hi && lo <= this.#lo)) return false;
    this.#hi = hi;
    this.#lo = lo;
    return true;
  }

  /** The last nonce, for messages. */
  toString(): string {
    return (BigInt(this.#hi) * 0x1_0000_0000n + BigInt(this.#lo)).toString();
  }
}

/**
 * Seals and opens MESSAGE boxes of one connection after the handshake. Exported for tests and
 * benchmarks of the core; connections get one from the mechanism.
 */
export class CurveMessageBox implements FrameBox {
  /** Bytes a sealed frame adds. */
  readonly overhead: number = MESSAGE_OVERHEAD;
  #key: Uint8Array;
  #sendNonce: Uint8Array;
  #recvNonce: Uint8Array;
  #next: number;
  #peer: PeerNonce;

  /**
   * Creates the box for one side. `key` is the connection's shared key (C' with S'), `next` the
   * first short nonce to send, `peer` the nonces the peer used so far.
   */
  constructor(key: Uint8Array, asServer: boolean, next: number, peer: PeerNonce) {
    this.#key = key;
    this.#sendNonce = nonce(asServer ? PREFIX_MESSAGE_S : PREFIX_MESSAGE_C, new Uint8Array(8));
    this.#recvNonce = nonce(asServer ? PREFIX_MESSAGE_C : PREFIX_MESSAGE_S, new Uint8Array(8));
    this.#next = next;
    this.#peer = peer;
  }

  /** Seals one frame into a MESSAGE body. */
  seal(flags: number, body: Uint8Array): Uint8Array {
    writeNonce(this.#sendNonce, 16, this.#next++);
    const engine = frameBoxes();
    let buffer: Uint8Array;
    if (engine === NOBLE_BOXES) {
      // [scratch 32][flags 1][body]: sealed in place, the box lands at 16 and the header fits
      // in the 16 bytes before it. One copy of the body, no other allocation.
      buffer = new Uint8Array(SEAL_SCRATCH + 1 + body.length);
      buffer[SEAL_SCRATCH] = flags;
      buffer.set(body, SEAL_SCRATCH + 1);
      sealInPlace(this.#key, this.#sendNonce, buffer);
    } else {
      const plain = new Uint8Array(1 + body.length);
      plain[0] = flags;
      plain.set(body, 1);
      const box = engine.seal(this.#key, this.#sendNonce, plain);
      buffer = new Uint8Array(16 + box.length);
      buffer.set(box, 16);
    }
    buffer.set(MESSAGE_NAME, 0);
    buffer.set(this.#sendNonce.subarray(16), 8);
    return buffer;
  }

  /** Opens one MESSAGE body. */
  open(body: Uint8Array): { flags: number; body: Uint8Array } {
    if (body.length < MESSAGE_OVERHEAD || !sameBytes(body.subarray(0, 8), MESSAGE_NAME)) {
      throw new ZmtpError(
        "malformed-command",
        `a ${body.length}-byte frame arrived where a CURVE MESSAGE box was due`,
      );
    }
    const last = this.#peer.toString();
    if (!this.#peer.advance(body, 8)) {
      throw new ZmtpError(
        "bad-nonce",
        `MESSAGE nonce ${readU32(body, 8) * 0x1_0000_0000 + readU32(body, 12)} is not above ` +
          `the peer's last one (${last}): a replayed or reordered box`,
      );
    }
    this.#recvNonce.set(body.subarray(8, 16), 16);
    const plain = frameBoxes().open(this.#key, this.#recvNonce, body.subarray(16));
    if (plain === null) {
      throw new ZmtpError(
        "decryption-failed",
        "a MESSAGE box does not open: tampered with, or not sealed for this connection",
      );
    }
    return { flags: plain[0], body: plain.subarray(1) };
  }
}

/**
 * Creates the client side of CURVE for one connection, with fresh transient keys.
 *
 * @example
 * ```ts
 * import { curveClient } from "./curve_mechanism.ts";
 * import { generateKeyPair } from "./curve_crypto.ts";
 * const client = generateKeyPair();
 * const server = generateKeyPair();
 * const mechanism = curveClient({ ...client, serverKey: server.publicKey });
 * console.log(mechanism.name, mechanism.asServer); // "CURVE" false
 * ```
 */
export function curveClient(options: CurveClientOptions): Mechanism {
  const random = options.random ?? randomBytes;
  const transient = generateKeyPair(random);
  const peerNonce = new PeerNonce();
  let state: "welcome" | "ready" | "done" = "welcome";
  let next = 1;
  let helloKey: Uint8Array | null = null;
  let precomputed: Uint8Array | null = null;

  return {
    name: "CURVE",
    asServer: false,
    start(context: MechanismContext): void {
      // No role check here: libzmq (4.3) writes as-server 0 in its greeting whatever its role,
      // so a libzmq server looks like a client. Two clients meet at the second HELLO.
      helloKey = boxKey(options.serverKey, transient.secretKey);
      if (helloKey === null) {
        throw new ZmtpError("key-exchange-failed", "the server key is not a usable Curve25519 key");
      }
      const n = shortNonce(next++);
      const signature = seal(helloKey, nonce(PREFIX_HELLO, n), new Uint8Array(64));
      context.sendCommand(
        command("HELLO", [
          Uint8Array.of(1, 0),
          new Uint8Array(HELLO_PADDING),
          transient.publicKey,
          n,
          signature,
        ]),
      );
    },
    onCommand(name: string, data: Uint8Array, context: MechanismContext): MechanismStep {
      if (name === "ERROR" && state !== "done") {
        throw new ZmtpError("auth-failed", describeRefusal(parseErrorReason(data)));
      }
      if (name === "WELCOME" && state === "welcome") {
        if (data.length !== WELCOME_DATA) {
          throw new ZmtpError(
            "malformed-command",
            `CURVE WELCOME of ${data.length + 8} bytes, expected ${WELCOME_SIZE}`,
          );
        }
        const plain = open(
          helloKey!,
          nonce(PREFIX_WELCOME, data.subarray(0, 16)),
          data.subarray(16),
        );
        if (plain === null) {
          throw new ZmtpError(
            "decryption-failed",
            "the server's WELCOME does not open: it is not the server whose key we were given " +
              "(curveServerKey)",
          );
        }
        const serverTransient = plain.subarray(0, KEY_SIZE);
        const cookie = plain.subarray(KEY_SIZE, KEY_SIZE + COOKIE_SIZE);
        precomputed = boxKey(serverTransient, transient.secretKey);
        const vouchKey = boxKey(serverTransient, options.secretKey);
        if (precomputed === null || vouchKey === null) {
          throw new ZmtpError("key-exchange-failed", "the server's transient key is not usable");
        }
        const vouchNonce = random(16);
        const vouch = seal(
          vouchKey,
          nonce(PREFIX_VOUCH, vouchNonce),
          concatBytes([transient.publicKey, options.serverKey]),
        );
        const n = shortNonce(next++);
        const box = seal(
          precomputed,
          nonce(PREFIX_INITIATE, n),
          concatBytes([
            options.publicKey,
            vouchNonce,
            vouch,
            encodeProperties(context.localProperties),
          ]),
        );
        context.sendCommand(command("INITIATE", [cookie, n, box]));
        state = "ready";
        return { done: false };
      }
      if (name === "READY" && state === "ready") {
        if (data.length < READY_MIN_DATA) {
          throw new ZmtpError(
            "malformed-command",
            `CURVE READY of ${data.length + 6} bytes, at least ${READY_MIN_SIZE} expected`,
          );
        }
        peerNonce.advance(data, 0);
        const plain = open(
          precomputed!,
          nonce(PREFIX_READY, data.subarray(0, 8)),
          data.subarray(8),
        );
        if (plain === null) {
          throw new ZmtpError("decryption-failed", "the server's READY box does not open");
        }
        state = "done";
        return {
          done: true,
          properties: parseProperties(plain),
          box: new CurveMessageBox(precomputed!, false, next, peerNonce),
        };
      }
      if (name === "HELLO") {
        throw new ZmtpError(
          "handshake-failed",
          "the peer sent HELLO: it is a CURVE client too, and one side must be a CURVE server",
        );
      }
      throw new ZmtpError(
        "handshake-failed",
        `unexpected ${name} command during the CURVE handshake`,
      );
    },
    closedDuringHandshake(): string | undefined {
      return state === "welcome"
        ? "the CURVE server closed the connection without answering our HELLO: it could not " +
          "open it, so the server key we were given (curveServerKey) is probably not its key"
        : state === "ready"
        ? "the CURVE server closed the connection after our INITIATE: it refused our keys"
        : undefined;
    },
  };
}

/**
 * Creates the server side of CURVE for one connection, with fresh transient keys.
 *
 * @example
 * ```ts
 * import { curveServer } from "./curve_mechanism.ts";
 * import { generateKeyPair } from "./curve_crypto.ts";
 * const mechanism = curveServer({ ...generateKeyPair(), authenticate: false });
 * console.log(mechanism.asServer); // true
 * ```
 */
export function curveServer(options: CurveServerOptions): Mechanism {
  const random = options.random ?? randomBytes;
  const transient = generateKeyPair(random);
  const peerNonce = new PeerNonce();
  let state: "hello" | "initiate" | "auth" | "done" = "hello";
  let clientTransient: Uint8Array = EMPTY;
  let cookieKey: Uint8Array = EMPTY;
  let precomputed: Uint8Array | null = null;
  let clientKey: Uint8Array = EMPTY;
  let properties = new Map<string, Uint8Array>();

  const ready = (context: MechanismContext, userId?: string): MechanismStep => {
    state = "done";
    const n = shortNonce(1);
    const box = seal(
      precomputed!,
      nonce(PREFIX_READY, n),
      encodeProperties(context.localProperties),
    );
    context.sendCommand(command("READY", [n, box]));
    cookieKey.fill(0);
    return {
      done: true,
      properties,
      box: new CurveMessageBox(precomputed!, true, 2, peerNonce),
      userId,
      publicKey: clientKey,
    };
  };

  const hello = (data: Uint8Array, context: MechanismContext): MechanismStep => {
    if (data.length !== HELLO_DATA) {
      throw new ZmtpError(
        "malformed-command",
        `CURVE HELLO of ${data.length + 6} bytes, it must be exactly ${HELLO_SIZE}`,
      );
    }
    if (data[0] !== 1 || data[1] !== 0) {
      throw new ZmtpError(
        "malformed-command",
        `CURVE HELLO of version ${data[0]}.${data[1]}, we speak 1.0`,
      );
    }
    const at = 2 + HELLO_PADDING;
    clientTransient = data.slice(at, at + KEY_SIZE);
    const helloKey = boxKey(clientTransient, options.secretKey);
    if (helloKey === null) {
      throw new ZmtpError(
        "key-exchange-failed",
        "the client's transient key in HELLO is not a usable Curve25519 key",
      );
    }
    const n = data.subarray(at + KEY_SIZE, at + KEY_SIZE + 8);
    peerNonce.advance(n, 0);
    const signature = open(helloKey, nonce(PREFIX_HELLO, n), data.subarray(at + KEY_SIZE + 8));
    if (signature === null || !sameBytes(signature, new Uint8Array(64))) {
      throw new ZmtpError(
        "decryption-failed",
        "the client's HELLO does not open: the client was given another server key " +
          "(its curveServerKey is not our public key)",
      );
    }
    cookieKey = random(32);
    const cookieNonce = random(16);
    const cookie = seal(
      cookieKey,
      nonce(PREFIX_COOKIE, cookieNonce),
      concatBytes([clientTransient, transient.secretKey]),
    );
    const welcomeNonce = random(16);
    const box = seal(
      helloKey,
      nonce(PREFIX_WELCOME, welcomeNonce),
      concatBytes([transient.publicKey, cookieNonce, cookie]),
    );
    context.sendCommand(command("WELCOME", [welcomeNonce, box]));
    state = "initiate";
    return { done: false };
  };

  const initiate = (data: Uint8Array, context: MechanismContext): MechanismStep => {
    if (data.length < INITIATE_MIN_DATA) {
      throw new ZmtpError(
        "malformed-command",
        `CURVE INITIATE of ${data.length + 9} bytes, at least ${INITIATE_MIN_SIZE} expected`,
      );
    }
    const cookie = open(
      cookieKey,
      nonce(PREFIX_COOKIE, data.subarray(0, 16)),
      data.subarray(16, 96),
    );
    if (
      cookie === null || !sameBytes(cookie.subarray(0, KEY_SIZE), clientTransient) ||
      !sameBytes(cookie.subarray(KEY_SIZE), transient.secretKey)
    ) {
      throw new ZmtpError("decryption-failed", "the cookie in the client's INITIATE is not ours");
    }
    if (!peerNonce.advance(data, COOKIE_SIZE)) {
      throw new ZmtpError("bad-nonce", "INITIATE's short nonce is not above HELLO's");
    }
    precomputed = boxKey(clientTransient, transient.secretKey);
    const plain = precomputed &&
      open(precomputed, nonce(PREFIX_INITIATE, data.subarray(96, 104)), data.subarray(104));
    if (!plain) {
      throw new ZmtpError("decryption-failed", "the client's INITIATE box does not open");
    }
    clientKey = plain.slice(0, KEY_SIZE);
    const vouchKey = boxKey(clientKey, transient.secretKey);
    if (vouchKey === null) {
      throw new ZmtpError(
        "key-exchange-failed",
        `the client's public key ${z85Encode(clientKey)} is not a usable Curve25519 key`,
      );
    }
    const vouch = open(
      vouchKey,
      nonce(PREFIX_VOUCH, plain.subarray(32, 48)),
      plain.subarray(48, 128),
    );
    if (vouch === null) {
      throw new ZmtpError(
        "decryption-failed",
        `the client's vouch does not open: its secret key does not match its public key ` +
          z85Encode(clientKey),
      );
    }
    if (
      !sameBytes(vouch.subarray(0, KEY_SIZE), clientTransient) ||
      !sameBytes(vouch.subarray(KEY_SIZE), options.publicKey)
    ) {
      throw new ZmtpError(
        "key-exchange-failed",
        "the client's vouch names another transient key or another server",
      );
    }
    properties = parseProperties(plain.subarray(128));
    if (!options.authenticate) return ready(context);
    state = "auth";
    return {
      done: false,
      authenticate: {
        mechanism: "CURVE",
        address: "",
        domain: "",
        routingId: properties.get("identity") ?? EMPTY,
        publicKey: clientKey,
        publicKeyZ85: z85Encode(clientKey),
      },
    };
  };

  return {
    name: "CURVE",
    asServer: true,
    start(_context: MechanismContext, peer: PeerGreeting): void {
      if (peer.asServer) {
        throw new ZmtpError(
          "handshake-failed",
          "both sides are CURVE servers: the peer must be a CURVE client (curveServerKey set)",
        );
      }
    },
    onCommand(name: string, data: Uint8Array, context: MechanismContext): MechanismStep {
      if (name === "HELLO" && state === "hello") return hello(data, context);
      if (name === "INITIATE" && state === "initiate") return initiate(data, context);
      throw new ZmtpError(
        "handshake-failed",
        `unexpected ${name} command during the CURVE handshake`,
      );
    },
    onAuthenticated(outcome: AuthOutcome, context: MechanismContext): MechanismStep {
      if (state !== "auth") throw new Error("CURVE: no authentication was asked for");
      if (outcome.allow) return ready(context, outcome.userId);
      context.sendCommand(encodeError(String(outcome.status)));
      throw new ZmtpError(
        "auth-failed",
        `CURVE client key ${z85Encode(clientKey)} refused: ${outcome.reason}`,
      );
    },
  };
}
